"""Records and the source dispatcher.

Each source reader (`npm.py` for npm/local package dirs, `github_code.py`, `eli5.py`) yields
`Record`s that already passed the source-specific checks (path, license, reserved packages) and
reports every skipped file through `drop(reason)`. `build.iter_texts` then applies the generic
quality filters and deduplication.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from training.data.config import SOURCES, DataConfig

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


def iter_raw(cfg: DataConfig, drop: Drop) -> Iterator[Record]:
    """Records from the configured source after its own path/license/reserved checks."""
    if cfg.source not in SOURCES:
        raise ValueError(f"data.source must be one of {', '.join(SOURCES)}, got {cfg.source!r}")
    if cfg.source in ("npm", "local"):
        from training.data.npm import iter_npm_records

        return iter_npm_records(cfg, drop)
    if cfg.source == "github-code":
        from training.data.github_code import iter_github_code_records

        return iter_github_code_records(cfg, drop)
    from training.data.eli5 import iter_eli5_records

    return iter_eli5_records(cfg, drop)
