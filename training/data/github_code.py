"""codeparrot/github-code: parquet shards from the hub (streamed) or local parquet of that schema.

Columns: `content` (or `code`), `repo_name`, `path`, `copies`, `size`, `license`. There is no
language column: JavaScript is decided by the path's extension (`data.extensions`); the
license label must be in `data.licenses`. The dataset's loading script no longer runs in
current `datasets`, so the generic parquet loader reads the shards
(`hf://datasets/codeparrot/github-code/data/train-*-of-01126.parquet`).
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from server import hub
from training.data.config import GITHUB_CODE_HUB_DATASET, GITHUB_CODE_HUB_FILES, DataConfig
from training.data.filters import path_reason
from training.data.licenses import label_allowed
from training.data.records import Drop, Record

TEXT_COLUMNS = ("content", "code")  # raw shards say content; the old loading script said code


def resolve_files(pattern: str, default_hub_files: str, what: str, hint: str) -> str | list[str]:
    """Hub pattern (after a reachability check) or the sorted local files a glob matches."""
    if not pattern or pattern.startswith("hf://"):
        hub.ensure_reachable(what, hint, hub.DATASETS_OFFLINE_VARS)
        return pattern or default_hub_files
    files = sorted(glob.glob(str(Path(pattern).expanduser()), recursive=True))
    if not files:
        raise FileNotFoundError(f"data.files={pattern!r} matches no file")
    return files


def load_rows(builder: str, files: str | list[str], cfg: DataConfig) -> Any:
    """Rows of parquet/json files. Local files are always streamed (read once, no Arrow cache
    copy); hub files are streamed when `data.streaming`, else downloaded to the datasets cache
    (worth it for small sets like eli5 that several runs reuse)."""
    from datasets import load_dataset

    stream = cfg.streaming or isinstance(files, list)
    return load_dataset(builder, data_files=files, split="train", streaming=stream)


def hub_files(cfg: DataConfig, default_repo: str, default_files: str) -> str:
    """Default hub files, following `data.hub_dataset` when it names another repo."""
    if cfg.hub_dataset and cfg.hub_dataset != default_repo:
        return default_files.replace(default_repo, cfg.hub_dataset)
    return default_files


def source_rows(cfg: DataConfig, builder: str, hub: tuple[str, str], what: str, hint: str) -> Any:
    """Rows of a parquet/json source: the local files `data.files` matches, else the (repo, files)
    of `hub` (after a reachability check; `what` and `hint` word the error when it fails)."""
    files = resolve_files(cfg.files, hub_files(cfg, *hub), what, hint)
    return load_rows(builder, files, cfg)


def text_of(row: dict[str, Any], column: str) -> str | None:
    value = row.get(column) if column else next((row[c] for c in TEXT_COLUMNS if c in row), None)
    return value if isinstance(value, str) else None


def iter_github_code_records(cfg: DataConfig, drop: Drop) -> Iterator[Record]:
    hub = (GITHUB_CODE_HUB_DATASET, GITHUB_CODE_HUB_FILES)
    hint = "pass local parquet shards with --set data.files='DIR/*.parquet'"
    rows = source_rows(cfg, "parquet", hub, "data.source=github-code", hint)
    seen = 0
    for row in rows:
        path = str(row.get("path") or "")
        why = path_reason(path, cfg.extensions)
        if why:
            drop(why)
            continue
        license_label = str(row.get("license") or "")
        if not label_allowed(license_label, cfg.licenses):
            drop("license_not_permissive")
            continue
        text = text_of(row, cfg.text_column)
        if text is None:
            drop("no_text")
            continue
        if len(text.encode("utf-8")) > cfg.max_file_bytes:
            drop("too_large")
            continue
        yield Record.make(text, "github-code", str(row.get("repo_name") or ""), "", license_label, path)
        seen += 1
        if cfg.max_files and seen >= cfg.max_files:
            return
