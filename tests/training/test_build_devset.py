"""corpus/build_devset.py: deterministic rows from npm packages, both cuts, and --exclude."""

from __future__ import annotations

import json
from pathlib import Path

from fixtures_runner import write_repetitive_packages

from corpus import build_devset  # a namespace package: `python -m corpus.build_devset`


def rows_of(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_rows_are_deterministic_whole_lines_and_exclusion_leaves_used_lines_out(tmp_path: Path) -> None:
    pkgs = write_repetitive_packages(tmp_path / "pkgs")
    first, again, fresh = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    args = ["--pkgs", str(pkgs), "--rows", "12", "--cut", "line"]
    assert build_devset.main([*args, "--out", str(first)]) == 0
    assert build_devset.main([*args, "--out", str(again)]) == 0
    rows = rows_of(first)
    assert rows == rows_of(again) and len(rows) == 12
    assert len({r["package"] for r in rows}) == 4  # round-robin over the packages
    for row in rows:
        line = row["prefix"][row["prefix"].rfind("\n") + 1 :]
        assert not line.strip(), "the whole-line cut starts right after the indentation"
        assert row["target"].strip() and row["suffix"].startswith("\n") and row["license"] == "MIT"
    assert build_devset.main([*args, "--out", str(fresh), "--seed", "7", "--exclude", str(first)]) == 0
    ids = {r["id"] for r in rows_of(fresh)}
    assert ids and not ids & {r["id"] for r in rows}
