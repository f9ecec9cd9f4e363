"""Publish a finished model dir without ever leaving a half-written one.

Everything is written to OUT/.tmp-final/ first. Publishing then removes the previous model's
marker files (config.json / adapter_config.json) before anything else, moves every staged file
into OUT with an atomic rename each, and moves the marker files last: a reader (the server) sees
either no model or a complete one. OUT itself cannot be swapped in one rename because it also holds
OUT/checkpoints/ that a later --resume needs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

STAGE_NAME = ".tmp-final"
MARKERS = ("config.json", "adapter_config.json")  # what makes a dir loadable as a model/adapter
# Files of a previous publish that would mix with the new one (e.g. shards of another size).
STALE_PATTERNS = ("*.safetensors", "model.safetensors.index.json", "generation_config.json")


def stage_dir(out: Path) -> Path:
    """A fresh, empty staging dir inside OUT (same filesystem, so renames are atomic)."""
    stage = out / STAGE_NAME
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    return stage


def publish(stage: Path, out: Path) -> None:
    for marker in MARKERS:
        (out / marker).unlink(missing_ok=True)
    for pattern in STALE_PATTERNS:
        for old in out.glob(pattern):
            old.unlink()
    entries = sorted(stage.iterdir(), key=lambda p: p.name in MARKERS)  # markers last
    for entry in entries:
        target = out / entry.name
        if target.is_file() and entry.is_file() and target.samefile(entry):
            entry.unlink()  # a hard link to what is there: rename() would leave both in place
            continue
        if target.is_dir() and not entry.is_dir():
            shutil.rmtree(target)
        os.replace(entry, target)
    stage.rmdir()
