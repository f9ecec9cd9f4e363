"""Data manifest: one row per kept file, plus kept/dropped reason counts.

Written beside the model as `data_manifest.jsonl` (rows: source, package or repo, version,
license, path, sha256, split) and `data_manifest_summary.json` (counts per drop reason, per
license, token totals, which packages/repos were held out for evaluation). The shipped model keeps
the rows xz-compressed (`data_manifest.jsonl.xz`, `training.ship`): the same rows in a fifth of the
bytes, inside the 60 MB the shipped model may take.
"""

from __future__ import annotations

import json
import lzma
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.data.records import Record

MANIFEST_FILE = "data_manifest.jsonl"
SHIPPED_MANIFEST_FILE = MANIFEST_FILE + ".xz"
SUMMARY_FILE = "data_manifest_summary.json"


@dataclass
class Manifest:
    rows: list[dict[str, Any]] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    extra: dict[str, Any] = field(default_factory=dict)  # token counts, split info, set by build

    def drop(self, reason: str) -> None:
        self.dropped[reason] += 1

    def add(self, record: Record, split: str = "train") -> None:
        self.rows.append({**record.manifest_row(), "split": split})

    def summary(self) -> dict[str, Any]:
        by_license = Counter(str(r.get("license", "")) for r in self.rows)
        groups = {str(r.get("package") or r.get("repo") or "") for r in self.rows}
        return {
            "kept": len(self.rows),
            "dropped_total": sum(self.dropped.values()),
            "dropped": dict(sorted(self.dropped.items())),
            "by_license": dict(sorted(by_license.items())),
            "packages_or_repos": len(groups),
            "sources": sorted({str(r.get("source")) for r in self.rows}),
            **self.extra,
        }

    def write(self, out_dir: Path) -> tuple[Path, Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        rows_path, summary_path = out_dir / MANIFEST_FILE, out_dir / SUMMARY_FILE
        write_manifest(rows_path, self.rows)
        summary_path.write_text(json.dumps(self.summary(), indent=2) + "\n", encoding="utf-8")
        return rows_path, summary_path


def manifest_path(model_dir: Path) -> Path | None:
    """The manifest beside a model: the shipped (xz) one, else the plain one; None without one."""
    for name in (SHIPPED_MANIFEST_FILE, MANIFEST_FILE):
        if (model_dir / name).is_file():
            return model_dir / name
    return None


def read_manifest(path: Path) -> list[dict[str, Any]]:
    """The rows of a manifest, plain or xz-compressed (by the file's suffix)."""
    opener = lzma.open if path.suffix == ".xz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_manifest(path: Path, rows: list[dict[str, Any]]) -> None:
    """One JSON row a line, xz-compressed when `path` ends in `.xz`."""
    opener = lzma.open if path.suffix == ".xz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
