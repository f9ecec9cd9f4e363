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
a CSR layout of every line's distinct words); ~10 ms over the 140 k lines of a 5 MB workspace.
A word is kept as a 16-bit hash (CRC-32's low bits), not as an entry of a vocabulary: 2 bytes a
word and no dictionary that grows with every identifier ever indexed (~3 MB of Python objects
for a 5 MB workspace). Two words of one query sharing a hash with a line's words is rare enough
(a few lines in 10⁵ lose a distinct word to a collision) not to move a best score of ≥ 0.8.

The same words serve character-level copying (`server.retrieval.copies`): a file whose words lack
an identifier that lies whole inside the text before the cursor cannot hold that text
(`bounded_words`, `NextLines.word_table`, `WorkspaceIndex.copy_sources`).
"""

from __future__ import annotations

import re
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

WORD = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*|\S")
WORD_IDS = 1 << 16  # words are hashed into this many ids (uint16)
# A line at least this similar to the one above the cursor counts (0.7 and 0.8 tied on the tuning
# set; the higher one is the safer guess).
MIN_SIMILARITY = 0.8
# Lines reaching the best score whose followers are read (`}` alone has thousands of twins), as
# copy verdicts read 64 occurrences.
MAX_VOTES = 64
# Whether a next line may be copied: (the line, its document's key, text, where it starts there).
Admit = Callable[[str, str, str, int], bool]


# An identifier with a character on each side that cannot continue it.
BOUNDED = re.compile(r"(?<=[^A-Za-z0-9_$])[A-Za-z_$][A-Za-z0-9_$]*(?=[^A-Za-z0-9_$])")


def word_id(word: str) -> int:
    return zlib.crc32(word.encode()) & (WORD_IDS - 1)


def words(line: str) -> set[int]:
    """The distinct words of a line (identifiers, and each other non-blank character), hashed."""
    return {word_id(w) for w in WORD.findall(line)}


def bounded_words(text: str) -> list[tuple[int, int]]:
    """(start, hashed word) of each identifier in `text` bounded on both sides within it: in any
    text that contains `text`, those are whole `WORD`s (`WORD` never runs across such a bound)."""
    return [(m.start(), word_id(m.group())) for m in BOUNDED.finditer(text)]


@dataclass
class _DocLines:
    text: str  # the document itself (the index's own copy of it, not a second one)
    starts: np.ndarray  # int32: where each non-blank line starts; line i + 1 follows line i
    sizes: np.ndarray  # uint16: how many distinct words each line but the last has (capped)
    members: np.ndarray  # uint16: those words, line after line
    distinct: np.ndarray  # uint16, sorted: every word of the document, once (`NextLines.word_table`)

    def follower(self, i: int) -> tuple[str, int]:
        """The non-blank line after line i, stripped, and where it starts in the text."""
        start = int(self.starts[i + 1])
        end = self.text.find("\n", start)
        line = self.text[start : end if end >= 0 else len(self.text)]
        return line.strip(), start + len(line) - len(line.lstrip())

    @property
    def nbytes(self) -> int:
        return int(self.starts.nbytes + self.sizes.nbytes + self.members.nbytes + self.distinct.nbytes)


def line_pairs(lines: Iterable[str]) -> list[tuple[str, str]]:
    """(line, the next non-blank line, stripped) for each non-blank line that has one."""
    kept = [line for line in lines if line.strip()]
    return [(a, b.strip()) for a, b in pairwise(kept)]


def similarity(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


class NextLines:
    """Every indexed document's lines as sets of hashed words; thread-safe (`WorkspaceIndex` keeps
    it current). A query concatenates the documents' arrays (a few ms) rather than keeping a
    second, global copy of them: memory is what matters for a 64 MB workspace. About 2 bytes a
    token: 2 per distinct word of a line, 6 per line, and each document's distinct words (per
    document, and concatenated for `word_table`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._docs: dict[str, _DocLines] = {}
        self._version = 0
        # `word_table`'s concatenation of every document's distinct words, for one version.
        self._words_of_all: tuple[int, dict[str, tuple[int, str]], np.ndarray, np.ndarray] | None = None

    def set(self, key: str, text: str) -> None:
        starts: list[int] = []
        lines: list[str] = []
        offset = 0
        for line in text.split("\n"):
            if line.strip():
                starts.append(offset)
                lines.append(line)
            offset += len(line) + 1
        # A line of more than 65,535 distinct words (none that is not generated) keeps that many.
        word_sets = [list(words(line))[: WORD_IDS - 1] for line in lines[:-1]]
        sizes = np.fromiter((len(ws) for ws in word_sets), dtype=np.uint16, count=len(word_sets))
        members = np.fromiter((w for ws in word_sets for w in ws), dtype=np.uint16, count=int(sizes.sum(dtype=np.int64)))
        last = np.fromiter(words(lines[-1]), dtype=np.uint16) if lines else np.zeros(0, dtype=np.uint16)
        distinct = np.unique(np.concatenate([members, last]))
        doc = _DocLines(text, np.asarray(starts, dtype=np.int32), sizes, members, distinct)
        with self._lock:
            self._docs[key] = doc
            self._version += 1
            self._words_of_all = None

    def remove(self, key: str) -> None:
        with self._lock:
            self._docs.pop(key, None)
            self._version += 1
            self._words_of_all = None

    @property
    def nbytes(self) -> int:
        with self._lock:
            cached = self._words_of_all[2].nbytes if self._words_of_all is not None else 0
            return cached + sum(d.nbytes for d in self._docs.values())

    @property
    def version(self) -> int:
        """Changes whenever a document is set or removed."""
        return self._version

    def rows(self, docs: Sequence[tuple[str, str]]) -> tuple[int, np.ndarray]:
        """For each of `docs` (key, text), its row in `word_table`, or -1 when it is not indexed
        here with that very text (not yet, or changed since); and the version they belong to."""
        version, rows, _, _ = self._concatenated()
        row_of = np.full(len(docs), -1, dtype=np.int64)
        for i, (key, text) in enumerate(docs):
            entry = rows.get(key)
            if entry is not None and entry[1] is text:
                row_of[i] = entry[0]
        return version, row_of

    def word_table(self, hashed: Sequence[int], version: int) -> np.ndarray | None:
        """Which of the `hashed` words (distinct `words` ids) each document holds, by `rows`'s
        rows, plus a last row that has them all (row -1: a document not known here); None when
        the documents changed since `version`. One gather over every document's distinct words
        (~2 ms for 20 MB), kept concatenated between changes."""
        if len(set(hashed)) != len(hashed):
            raise ValueError("word_table takes distinct word ids")
        current, _, concat, ends = self._concatenated()
        if current != version:
            return None
        column = np.full(WORD_IDS, -1, dtype=np.int32)
        column[np.asarray(hashed, dtype=np.int64)] = np.arange(len(hashed), dtype=np.int32)
        found = column[concat]
        at = np.flatnonzero(found >= 0)
        table = np.zeros((len(ends) + 1, len(hashed)), dtype=bool)
        table[np.searchsorted(ends, at, side="right"), found[at]] = True
        table[-1] = True
        return table

    def _concatenated(self) -> tuple[int, dict[str, tuple[int, str]], np.ndarray, np.ndarray]:
        """The version, and every document's distinct words end to end: key -> (row, text), the
        words, the rows' ends."""
        with self._lock:
            if self._words_of_all is None or self._words_of_all[0] != self._version:
                docs = list(self._docs.items())
                rows = {key: (i, d.text) for i, (key, d) in enumerate(docs)}
                concat = np.concatenate([d.distinct for _, d in docs]) if docs else np.zeros(0, np.uint16)
                ends = np.cumsum([len(d.distinct) for _, d in docs], dtype=np.int64)
                self._words_of_all = (self._version, rows, concat, ends)
            return self._words_of_all

    def follow(self, line: str, exclude: str = "", admit: Admit | None = None) -> tuple[float, Counter[str]]:
        """The best similarity of `line` to an indexed line outside the document `exclude`, and
        how often each next line follows the lines that reach it (the first `MAX_VOTES` of them);
        a next line that `admit` refuses (`rules.CopyRules`: TypeScript into JavaScript) is no vote."""
        query = words(line)
        with self._lock:
            keyed = [(k, d) for k, d in self._docs.items() if k != exclude and len(d.sizes)]
        keys, docs = [k for k, _ in keyed], [d for _, d in keyed]
        if not query or not docs:
            return 0.0, Counter()
        wanted = np.zeros(WORD_IDS, dtype=np.int32)  # a gather beats np.isin 5-fold
        wanted[list(query)] = 1
        first = np.zeros(len(docs) + 1, dtype=np.int64)  # the first line of each document, in all
        np.cumsum([len(d.sizes) for d in docs], out=first[1:])
        sizes = np.concatenate([d.sizes for d in docs]).astype(np.int64)
        hit = wanted[np.concatenate([d.members for d in docs])]
        indptr = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum(sizes, out=indptr[1:])
        # Every line has a word (it is not blank), so no reduceat segment is empty.
        inter = np.add.reduceat(hit, indptr[:-1])
        score = inter / (sizes + len(query) - inter)
        best = float(score.max())
        if best <= 0.0:
            return 0.0, Counter()
        votes: Counter[str] = Counter()
        for i in np.flatnonzero(score >= best - 1e-9)[:MAX_VOTES]:
            d = int(np.searchsorted(first, i, side="right")) - 1
            follower, start = docs[d].follower(int(i - first[d]))
            if admit is None or admit(follower, keys[d], docs[d].text, start):
                votes[follower] += 1
        return best, votes


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
    query = words(line)
    best, votes = 0.0, Counter[str]()
    for candidate, following in line_pairs(lines):
        score = similarity(query, words(candidate))
        if score > best + 1e-9:
            best, votes = score, Counter([following])
        elif score >= best - 1e-9 and score > 0:
            votes[following] += 1
    return best, votes
