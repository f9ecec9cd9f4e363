"""What every source reader yields: `Record`s with their provenance, and `drop(reason)` for
every skipped file (counted in the manifest)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

Drop = Callable[[str], None]


class DataError(ValueError):
    """The configured data cannot produce a dataset (nothing left after filters, too few tokens)."""


@dataclass(frozen=True)
class Record:
    """One document with its provenance (a source file, or one eli5 question's answers)."""

    text: str
    source: str  # "npm" | "local" | "github-code" | "eli5"
    package_or_repo: str  # npm package name, github repo, or eli5 question id
    version: str  # package version ("" when unknown)
    license: str  # SPDX expression / license label as declared
    path: str  # path inside the package / repo ("" for eli5)
    sha256: str  # of the UTF-8 text

    @staticmethod
    def make(text: str, source: str, package_or_repo: str, version: str, license: str, path: str) -> Record:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return Record(text, source, package_or_repo, version, license, path, digest)

    def manifest_row(self) -> dict[str, Any]:
        row = asdict(self)
        del row["text"]
        key = row.pop("package_or_repo")
        row["repo" if self.source == "github-code" else "package"] = key
        return row


def is_code_source(source: str) -> bool:
    return source != "eli5"
