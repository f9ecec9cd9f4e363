"""The source dispatcher.

Each source reader (`npm.py` for npm/local package dirs, `github_code.py`, `eli5.py`) yields
`Record`s (`records.py`) that already passed the source-specific checks (path, license, reserved
packages) and reports every skipped file through `drop(reason)`. `build.iter_texts` then applies
the generic quality filters and deduplication.
"""

from __future__ import annotations

from collections.abc import Iterator

from training.data.config import SOURCES, DataConfig
from training.data.eli5 import iter_eli5_records
from training.data.github_code import iter_github_code_records
from training.data.npm import iter_npm_records
from training.data.records import Drop, Record


def iter_raw(cfg: DataConfig, drop: Drop) -> Iterator[Record]:
    """Records from the configured source after its own path/license/reserved checks."""
    if cfg.source not in SOURCES:
        raise ValueError(f"data.source must be one of {', '.join(SOURCES)}, got {cfg.source!r}")
    if cfg.source in ("npm", "local"):
        return iter_npm_records(cfg, drop)
    if cfg.source == "github-code":
        return iter_github_code_records(cfg, drop)
    return iter_eli5_records(cfg, drop)
