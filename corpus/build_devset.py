"""Build the line-completion dev set from held-out npm packages (none of them in training).

    python corpus/build_devset.py --pkgs corpus-data/devpkgs --out corpus-data/devset.jsonl

Each row is `{"id", "prefix", "suffix", "target", "package", "version", "license", "path"}`:
one non-trivial source line cut at a seeded random point inside it; `target` is the rest of
that line (no newline), `prefix` everything before the cut, `suffix` everything after the
line (starting with its newline). Files are read and filtered by the training pipeline's own
npm reader and quality filters (license from package.json, reserved packages refused,
dist/minified/bundled/compiled files skipped), so the dev set looks like the training data.
The output is deterministic for a given package set and seed.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from training.data.config import DataConfig
from training.data.decontam import package_name
from training.data.filters import quality_reason
from training.data.npm import iter_npm_records, read_package_list
from training.data.records import Record

ROWS = 500  # enough for EM/ES to move by < ±2.5 points between two runs of a model
SEED = 1234  # fixed: the dev set must not change between evaluations
MIN_LINE_CHARS = 12  # shorter lines ("});", "}", "break;") are trivial to complete
MIN_TARGET_CHARS = 3  # at least a few characters left to predict
MIN_PREFIX_LINES = 3  # the model needs some context above the line
MAX_PREFIX_CHARS = 6000  # the server's prompt budget sees less than this anyway; keeps the file small
MAX_SUFFIX_CHARS = 2000  # same for the text after the line
PER_FILE = 2  # rows per file: spread the set over many files
# Lines that are comments or contain no code worth predicting.
SKIP_LINE = re.compile(r"^\s*(//|/\*|\*|#!|$)")


@dataclass(frozen=True)
class Candidate:
    record: Record
    line_no: int  # 0-based
    line_start: int  # offset of the line in record.text


def candidate_lines(record: Record) -> Iterator[Candidate]:
    offset = 0
    for no, line in enumerate(record.text.splitlines(keepends=True)):
        body = line.rstrip("\r\n")
        long_enough = no >= MIN_PREFIX_LINES and len(body.strip()) >= MIN_LINE_CHARS
        if (
            long_enough and not SKIP_LINE.match(body) and sum(c.isalnum() for c in body) >= 4
        ):  # not punctuation
            yield Candidate(record, no, offset)
        offset += len(line)


def make_row(cand: Candidate, rng: random.Random, cut_kind: str = "mid") -> dict[str, str] | None:
    text = cand.record.text
    end = text.find("\n", cand.line_start)
    end = len(text) if end < 0 else end
    line = text[cand.line_start : end].rstrip("\r")
    indent = len(line) - len(line.lstrip())
    last_cut = len(line.rstrip()) - MIN_TARGET_CHARS
    if last_cut <= indent:
        return None
    cut = rng.randint(indent, last_cut)  # at the indent = predict the whole statement
    if cut_kind == "line":  # whole-line cut: right after the indentation (the rng still advances)
        cut = indent
    target = line[cut:].rstrip()
    prefix = text[: cand.line_start + cut]
    suffix = text[cand.line_start + len(line) :]
    if len(prefix) > MAX_PREFIX_CHARS:  # trim at a line start so the prompt does not begin mid-line
        head = prefix[-MAX_PREFIX_CHARS:]
        prefix = head[head.find("\n") + 1 :] if "\n" in head else head
    if len(suffix) > MAX_SUFFIX_CHARS:
        tail = suffix[:MAX_SUFFIX_CHARS]
        suffix = tail[: tail.rfind("\n") + 1] if "\n" in tail[1:] else tail
    rec = cand.record
    return {
        "id": f"{rec.package_or_repo}/{rec.path}:{cand.line_no + 1}",
        "prefix": prefix,
        "suffix": suffix,
        "target": target,
        "package": rec.package_or_repo,
        "version": rec.version,
        "license": rec.license,
        "path": rec.path,
    }


def load_records(pkgs: Path, names: set[str] | None = None) -> tuple[list[Record], Counter[str]]:
    cfg = DataConfig(source="npm", dir=str(pkgs))
    drops: Counter[str] = Counter()
    kept: list[Record] = []
    for rec in iter_npm_records(cfg, lambda reason: drops.update([reason])):
        if names is not None and rec.package_or_repo not in names:
            drops["not_listed"] += 1
            continue
        reason = quality_reason(rec.text, cfg)
        if reason:
            drops[reason] += 1
            continue
        kept.append(rec)
    kept.sort(key=lambda r: (r.package_or_repo, r.path))
    return kept, drops


def build(
    records: list[Record], rows: int, seed: int, cut_kind: str = "mid", exclude: frozenset[str] = frozenset()
) -> list[dict[str, str]]:
    """Round-robin over packages (so no big package dominates), seeded picks inside each; no row
    whose id (`package/path:line`) is in `exclude`."""
    rng = random.Random(seed)
    by_pkg: dict[str, list[Candidate]] = {}
    for rec in records:
        cands = list(candidate_lines(rec))
        rng.shuffle(cands)
        by_pkg.setdefault(rec.package_or_repo, []).extend(cands[:PER_FILE])
    queues = {pkg: cands for pkg, cands in sorted(by_pkg.items()) if cands}
    for cands in queues.values():
        rng.shuffle(cands)
    out: list[dict[str, str]] = []
    while len(out) < rows and queues:
        for pkg in list(queues):
            cands = queues[pkg]
            row = make_row(cands.pop(), rng, cut_kind)
            if not cands:
                del queues[pkg]
            if row is not None and row["id"] not in exclude:
                out.append(row)
                if len(out) >= rows:
                    break
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pkgs", type=Path, required=True, help="dir of unpacked held-out npm packages")
    ap.add_argument("--out", type=Path, required=True, help="output JSONL")
    ap.add_argument(
        "--list",
        type=Path,
        help="only these packages (`name@version` lines, e.g. corpus/devset-packages.txt)",
    )
    ap.add_argument("--rows", type=int, default=ROWS)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--cut", choices=("mid", "line"), default="mid",
                    help="mid: a seeded point inside the line; line: the whole line after its indentation")
    ap.add_argument("--exclude", type=Path, action="append", default=[],
                    help="a dev set (JSONL) whose lines are left out, repeatable: a fresh set to confirm "
                         "on what was tuned on another")
    args = ap.parse_args(argv)
    exclude = frozenset(
        str(json.loads(line)["id"]) for path in args.exclude for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    )
    names = {package_name(spec) for spec in read_package_list(args.list)} if args.list else None
    records, drops = load_records(args.pkgs, names)
    rows = build(records, args.rows, args.seed, args.cut, exclude)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    pkgs = Counter(r["package"] for r in rows)
    print(
        f"{len(rows)} rows from {len(pkgs)} packages, {len(records)} files kept; dropped: {dict(drops)}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
