"""The line that followed lines like the one above the cursor: whole-line completion by analogy.

At the start of a new line the text before the cursor ends in a line break and indentation, so
the ∞-gram match and the character-level copy see little of what the line is about. Code repeats
by line, though: a line nearly the same as the one above the cursor (`const TEEN_AGE_MIN = 13`,
`'no-process-exit': 'error',`) is often followed, elsewhere, by the line the user is about to
write. Lines are compared as sets of words (identifiers, and each other non-blank character) by
Jaccard similarity; when the best score is high and every line that reaches it is followed by the
same line, that line is the completion (`server.completion`).

Measured (`benchmarks/README.md`): tuned on the first whole-line dev set, where similarity ≥ 0.7
or 0.8 with unanimous followers did best (EM 116 → 120 of 500 rows), then confirmed on the fresh
set (112 → 117; against the copy-only floor, exact matches only ours / only the floor's went from
10 / 5 to 14 / 4).

Hand-written, as `snippets.py` is: a sparse set-overlap count (numpy gather + `add.reduceat` over
a CSR layout of every line's distinct words), rebuilt lazily after documents change; ~10 ms over
the 140 k lines of a 5 MB workspace.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

WORD = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*|\S")
# A line at least this similar to the one above the cursor counts (0.7 and 0.8 tied on the tuning
# set; the higher one is the safer guess).
MIN_SIMILARITY = 0.8


@dataclass
class _DocLines:
    sizes: np.ndarray  # int32: distinct words of each non-blank line followed by another
    members: np.ndarray  # int32: those words' ids, line after line
    nexts: list[str]  # the next non-blank line after each, stripped


def line_pairs(lines: Iterable[str]) -> list[tuple[str, str]]:
    """(line, the next non-blank line, stripped) for each non-blank line that has one."""
    kept = [line for line in lines if line.strip()]
    return [(a, b.strip()) for a, b in pairwise(kept)]


def similarity(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


class NextLines:
    """Every indexed document's line pairs; thread-safe (`WorkspaceIndex` keeps it current)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._vocab: dict[str, int] = {}
        self._docs: dict[str, _DocLines] = {}
        self._dirty = True
        self._keys: list[str] = []
        self._owner = np.zeros(0, dtype=np.int32)  # line -> index into _keys
        self._sizes = np.zeros(0, dtype=np.int32)
        self._indptr = np.zeros(1, dtype=np.int64)
        self._members = np.zeros(0, dtype=np.int32)
        self._nexts: list[str] = []

    def set(self, key: str, text: str) -> None:
        pairs = line_pairs(text.split("\n"))
        with self._lock:
            vocab = self._vocab
            word_sets = [{vocab.setdefault(w, len(vocab)) for w in WORD.findall(line)} for line, _ in pairs]
        members = np.fromiter((w for ws in word_sets for w in ws), dtype=np.int32)
        doc = _DocLines(np.array([len(ws) for ws in word_sets], dtype=np.int32), members, [b for _, b in pairs])
        with self._lock:
            self._docs[key] = doc
            self._dirty = True

    def remove(self, key: str) -> None:
        with self._lock:
            if self._docs.pop(key, None) is not None:
                self._dirty = True

    @property
    def nbytes(self) -> int:
        return int(self._sizes.nbytes + self._indptr.nbytes + self._members.nbytes + self._owner.nbytes) + sum(
            len(n) for n in self._nexts
        )

    def _layout(self) -> None:
        """One CSR layout over all documents (under the lock)."""
        self._keys = list(self._docs)
        docs = [self._docs[k] for k in self._keys]
        self._owner = np.concatenate(
            [np.full(len(d.sizes), i, dtype=np.int32) for i, d in enumerate(docs)] or [np.zeros(0, np.int32)]
        )
        self._sizes = np.concatenate([d.sizes for d in docs] or [np.zeros(0, np.int32)])
        self._indptr = np.zeros(len(self._sizes) + 1, dtype=np.int64)
        np.cumsum(self._sizes, out=self._indptr[1:])
        self._members = np.concatenate([d.members for d in docs] or [np.zeros(0, np.int32)])
        self._nexts = [n for d in docs for n in d.nexts]
        self._dirty = False

    def follow(self, line: str, exclude: str = "") -> tuple[float, Counter[str]]:
        """The best similarity of `line` to an indexed line outside the document `exclude`, and
        how often each next line follows the lines that reach it."""
        words = set(WORD.findall(line))
        with self._lock:
            if self._dirty:
                self._layout()
            known = np.array(sorted({self._vocab[w] for w in words if w in self._vocab}), dtype=np.int32)
            keys, owner, sizes, indptr = self._keys, self._owner, self._sizes, self._indptr
            members, nexts = self._members, self._nexts
        if not words or not len(sizes) or not len(known):
            return 0.0, Counter()
        hit = np.isin(members, known).astype(np.int32)
        inter = np.add.reduceat(hit, indptr[:-1]) if len(hit) else np.zeros(len(sizes), np.int32)
        inter = np.where(sizes > 0, inter, 0)  # reduceat gives an element, not 0, for empty lines
        score = inter / (sizes + len(words) - inter)
        if exclude in keys:
            score[owner == keys.index(exclude)] = 0.0
        best = float(score.max())
        if best <= 0.0:
            return 0.0, Counter()
        return best, Counter(nexts[i] for i in np.flatnonzero(score >= best - 1e-9))


def best_of(*found: tuple[float, Counter[str]]) -> tuple[float, Counter[str]]:
    """Several `follow` answers as one: the best score, and the votes of all that reach it."""
    best = max((score for score, _ in found), default=0.0)
    votes: Counter[str] = Counter()
    for score, counts in found:
        if score >= best - 1e-9 and score > 0:
            votes.update(counts)
    return best, votes


def follow_in(line: str, lines: Iterable[str]) -> tuple[float, Counter[str]]:
    """`NextLines.follow` over a few lines of the file being edited (no index: they change with
    every keystroke)."""
    words = set(WORD.findall(line))
    best, votes = 0.0, Counter[str]()
    for candidate, following in line_pairs(lines):
        score = similarity(words, set(WORD.findall(candidate)))
        if score > best + 1e-9:
            best, votes = score, Counter([following])
        elif score >= best - 1e-9 and score > 0:
            votes[following] += 1
    return best, votes
