"""ELI5 (eli5_category) as json data files, flattened as in the Hugging Face causal-LM guide.

Each row is one question with `answers: {"text": [...], ...}` (or a list of answer objects);
the document is the answers' texts joined with spaces (`data.text_column` = "answers.text" by
default), optionally preceded by title and selftext (`data.eli5_include_question`). The hub
files default to `hf://datasets/rexarski/eli5_category/data/train.json.gz` (assumed layout of
the repo's data files; override with `data.files`), local json/jsonl files of the same shape
work the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from training.data.config import ELI5_HUB_DATASET, ELI5_HUB_FILES, DataConfig
from training.data.github_code import source_rows
from training.data.records import Drop, Record

DEFAULT_TEXT_COLUMN = "answers.text"


def nested(row: Any, dotted: str) -> Any:
    """`answers.text` on dicts, and on lists of dicts (collecting each item's field)."""
    value = row
    for key in dotted.split("."):
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list):
            value = [v.get(key) for v in value if isinstance(v, dict)]
        else:
            return None
    return value


def flatten_text(row: dict[str, Any], column: str, include_question: bool) -> str:
    value = nested(row, column)
    parts = [str(v) for v in value if v] if isinstance(value, list) else ([str(value)] if value else [])
    if include_question:
        parts = [str(row[k]) for k in ("title", "selftext") if row.get(k)] + parts
    return " ".join(parts)


def iter_eli5_records(cfg: DataConfig, drop: Drop) -> Iterator[Record]:
    hint = "pass local json files with --set data.files='DIR/*.json'"
    rows = source_rows(cfg, "json", (ELI5_HUB_DATASET, ELI5_HUB_FILES), "data.source=eli5", hint)
    column = cfg.text_column or DEFAULT_TEXT_COLUMN
    for seen, row in enumerate(rows, start=1):
        text = flatten_text(row, column, cfg.eli5_include_question)
        if not text.strip():
            drop("empty")
        else:
            group = str(row.get("q_id") or row.get("category") or "")
            yield Record.make(text, "eli5", group, "", "unknown", "")
        if cfg.max_files and seen >= cfg.max_files:
            return
