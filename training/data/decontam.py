"""Decontamination: npm packages reserved for evaluation never enter training/tokenizer data.

The list is `training/data/eval_reserved_npm_packages.txt`, a verbatim copy of
`../shared/data/eval-reserved-npm-packages.txt` (one package name a line, `#` comments).
Names match exactly (scoped names included), case-insensitively as npm names are lowercase.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

RESERVED_FILE = Path(__file__).with_name("eval_reserved_npm_packages.txt")


class ContaminationError(RuntimeError):
    """A reserved evaluation package reached the training data."""


def parse_reserved(text: str) -> frozenset[str]:
    names = (line.split("#", 1)[0].strip().lower() for line in text.splitlines())
    return frozenset(n for n in names if n)


@lru_cache(maxsize=1)
def reserved_packages() -> frozenset[str]:
    return parse_reserved(RESERVED_FILE.read_text(encoding="utf-8"))


def package_name(spec: str) -> str:
    """`name@version` / `@scope/name@version` → the bare package name."""
    spec = spec.strip()
    at = spec.rfind("@")
    return spec[:at] if at > 0 else spec


def is_reserved(name: str) -> bool:
    return package_name(name).lower() in reserved_packages()


DERIVED_SEPARATORS = ".-_"  # lodash.debounce, express-session, mime_types: copies or forks of the reserved code


def is_derived(name: str) -> bool:
    """Reserved, or named after a reserved package: `lodash.*`, `express-*`, `@types/express`,
    `@express/x`, `@node-red/runtime-x` (the corpus selection refuses these too, to keep copies
    of reserved code out)."""
    name = package_name(name).lower()
    scope, base = name[1:].split("/", 1) if name.startswith("@") and "/" in name else ("", name)
    for reserved in reserved_packages():
        if reserved.startswith("@"):  # scoped: only names in the same scope can derive from it
            hit = name == reserved or any(name.startswith(reserved + sep) for sep in DERIVED_SEPARATORS)
        else:
            hit = reserved in (base, scope) or any(base.startswith(reserved + sep) for sep in DERIVED_SEPARATORS)
        if hit:
            return True
    return False


def repo_is_reserved(repo: str) -> bool:
    """github-code: a repo named like a reserved package (`owner/express`) is its source: refuse it."""
    return bool(repo) and repo.rsplit("/", 1)[-1].lower() in reserved_packages()


def check_manifest(rows: Iterable[Mapping[str, Any]]) -> None:
    """Raise ContaminationError if any kept row comes from a reserved package."""
    bad = sorted(
        {
            str(r.get("package") or r.get("repo"))
            for r in rows
            if (r.get("package") and is_reserved(str(r["package"])))
            or (r.get("repo") and repo_is_reserved(str(r["repo"])))
        }
    )
    if bad:
        raise ContaminationError(f"reserved evaluation packages in the training data: {', '.join(bad)}")
