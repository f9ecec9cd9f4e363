"""Workspace index figures: build time, one-file update, lookup latency, bytes per token.

    python benchmarks/workspace_index.py --dir corpus-data/devnpm [--model server/models/default] [--mb 20]

Indexes the JavaScript under `--dir` with the server's own scanner and tokenizer (repeating the
files under new names until `--mb` MB when the folder is smaller), then times the three
operations the server does, and the character-level copy verdict of a keystroke. Prints figures; nothing is asserted (the machines are noisy).
Targets from issue 12: build <= 10 s for 20 MB, update <= 50 ms, lookup <= 2 ms, <= 10 B/token.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

from transformers import AutoTokenizer

from server.retrieval.copies import COPY_MAX_TAIL, SURE_MIN_CHARS, copy_verdict
from server.retrieval.files import scan_workspace
from server.retrieval.index import WorkspaceIndex
from server.retrieval.vocab import new_index


def workspace_texts(folder: Path, chars: float) -> tuple[list[tuple[str, str]], int]:
    """(key, text) of the JavaScript under `folder` up to `chars` characters, the files repeated
    under new keys (`path#copy`) while the folder holds fewer; and the characters taken."""
    files: list[tuple[str, str]] = []
    size = 0
    for path, text in scan_workspace(folder):  # read only as much as needed
        files.append((str(path), text))
        size += len(text)
        if size >= chars:
            break
    texts, size, copy = [], 0, 0
    while files and size < chars:
        for name, text in files:
            texts.append((f"{name}#{copy}", text))
            size += len(text)
            if size >= chars:
                break
        copy += 1
    return texts, size


def time_copy_verdicts(
    index: WorkspaceIndex, texts: list[tuple[str, str]]
) -> tuple[list[float], list[float], int]:
    """Character-level copy verdicts, as the Completer asks them on a keystroke: ms narrowed to the
    texts holding the tail's whole identifiers, ms over every text (sorted), and how many of the
    two verdicts differ (they must not)."""
    rng = random.Random(0)
    narrowed_ms, every_ms, differ = [], [], 0
    for _ in range(300):
        doc_key, doc = texts[rng.randrange(len(texts))]
        if len(doc) < 200:
            continue
        prefix = doc[: rng.randrange(100, len(doc))]
        start = time.perf_counter()
        every, narrow, first = index.copy_sources(prefix[-COPY_MAX_TAIL:], exclude=doc_key)
        fast = copy_verdict(prefix, every, at_least=SURE_MIN_CHARS, narrow=narrow, first=first)
        narrowed_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        slow = copy_verdict(prefix, every, at_least=SURE_MIN_CHARS)
        every_ms.append((time.perf_counter() - start) * 1000)
        differ += fast != slow
    narrowed_ms.sort()
    every_ms.sort()
    return narrowed_ms, every_ms, differ


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--model", default="server/models/default")
    ap.add_argument("--mb", type=float, default=20.0)
    args = ap.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    index = new_index(tokenizer)
    texts, size = workspace_texts(args.dir, args.mb * 1e6)
    start = time.perf_counter()
    index.build(texts)
    build_s = time.perf_counter() - start
    key, text = texts[len(texts) // 2]
    updates = []
    for i in range(5):
        start = time.perf_counter()
        index.update(key, text + f"\n// edit {i}\n")
        updates.append((time.perf_counter() - start) * 1000)
    encoded = index.encode([t for _, t in texts[:200]])
    lookups = []
    for ids in encoded:
        for cut in range(40, len(ids), max(1, len(ids) // 10)):
            start = time.perf_counter()
            index.lookup(ids[cut - 40 : cut], exclude=key)
            lookups.append((time.perf_counter() - start) * 1000)
    tokens = index.tokens
    print(f"files {len(texts)}, {size / 1e6:.1f} MB, {tokens / 1e6:.2f} M tokens")
    print(f"build {build_s:.2f} s ({size / 1e6 / build_s:.1f} MB/s)")
    print(f"update one file ({len(text) / 1e3:.0f} KB): median {statistics.median(updates):.1f} ms")
    lookups.sort()
    print(
        f"lookup (40-token query): p50 {lookups[len(lookups) // 2]:.2f} ms, p95 {lookups[int(len(lookups) * 0.95)]:.2f} ms over {len(lookups)}"
    )
    follows = []
    for _, text in texts[:200]:
        lines = [line for line in text.split("\n") if line.strip()]
        for line in lines[:: max(1, len(lines) // 5)]:
            start = time.perf_counter()
            index.follow(line)
            follows.append((time.perf_counter() - start) * 1000)
    follows.sort()
    print(
        f"next line by analogy (one line): p50 {follows[len(follows) // 2]:.1f} ms, "
        f"p95 {follows[int(len(follows) * 0.95)]:.1f} ms over {len(follows)}"
    )
    narrowed_ms, every_ms, differ = time_copy_verdicts(index, texts)
    print(
        f"copy verdict (one keystroke): p50 {narrowed_ms[len(narrowed_ms) // 2]:.1f} ms, "
        f"p95 {narrowed_ms[int(len(narrowed_ms) * 0.95)]:.1f} ms; scanning every text p50 "
        f"{every_ms[len(every_ms) // 2]:.1f} ms, p95 {every_ms[int(len(every_ms) * 0.95)]:.1f} ms; "
        f"{differ} of {len(every_ms)} verdicts differ"
    )
    lines_bytes = index.next_lines.nbytes
    lookup_bytes = index.nbytes - lines_bytes
    print(
        f"memory {index.nbytes / tokens:.1f} bytes per token ({index.nbytes / 1e6:.0f} MB): "
        f"∞-gram lookups and texts {lookup_bytes / tokens:.1f}, lines for analogies {lines_bytes / tokens:.1f}"
    )


if __name__ == "__main__":
    main()
