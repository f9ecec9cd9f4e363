"""One immutable suffix array over the token ids of some documents, with longest-match lookups.

Documents are concatenated with a separator id after each. The suffix array comes from
`pydivsufsort` (libdivsufsort, maintained, C): building it for a few million tokens takes well
under a second. Lookups are hand-written binary searches because no library answers "the longest
suffix of this query that occurs here, with what follows it" (the infini-gram engine does, but
only over its own prebuilt on-disk format): the token stream is kept as big-endian bytes, so
comparing two token sequences is one `bytes` comparison.

Blank tokens (whitespace only: `\n       `, `  `) are folded before indexing: each run of them
becomes one canonical id, so the same code under another indentation still matches (the byte-level
BPE merges a newline with the indentation after it, and `\n       ` + ` object` vs
`\n         ` + ` object` would otherwise break the match exactly where a line starts). Queries
are folded the same way; what follows a match is reported as the original token.

Memory: 2 bytes per token (uint16 when the vocabulary allows, else 4) + 4 bytes of suffix array,
+ 6 bytes per blank run (its position and original first token) + 6 bytes per further blank token
of a run (rare): enough to give each document's ids back exactly (`ids`), so the workspace index
keeps no second copy of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pydivsufsort

# Up to this many tokens, sorting the suffixes in Python beats pydivsufsort, whose call costs
# ~0.15 ms whatever the size, and ~4 ms one time in 30 (the cursor line's segment is built on
# every request): 0.1 ms at 512 tokens, 2 µs at 8.
SMALL_SUFFIX_ARRAY = 512
MAX_QUERY = 64  # tokens of query looked at: longer exact matches add no information
CHECK_SAMPLE = 64  # occurrences checked for validity (separator / excluded doc) per probe
COUNT_SAMPLE = 256  # occurrences whose next token is counted (evenly spread over the range)
FOLLOWING = 16  # tokens kept of what follows one occurrence: a copy draft (mixing.NgramGuide.draft)


def _suffix_array(native: np.ndarray, data: bytes, width: int) -> np.ndarray:
    """The suffix array (int32) of a token stream: `native` ids, `data` the same ids as
    big-endian bytes of `width` bytes each (so that comparing bytes compares tokens)."""
    n = len(native)
    if n <= SMALL_SUFFIX_ARRAY:
        return np.array(sorted(range(n), key=lambda i: data[i * width :]), dtype=np.int32)
    return pydivsufsort.divsufsort(native)


@dataclass(frozen=True)
class Match:
    """The longest suffix of a query found (length in tokens) and what followed it."""

    length: int
    counts: dict[int, int]  # next token id -> occurrences
    occurrences: int  # occurrences of the matched suffix (before sampling)
    # What followed one occurrence (original ids), up to FOLLOWING tokens, a blank run or the
    # document's end: the continuation a copy would type.
    following: tuple[int, ...] = ()

    @property
    def total(self) -> int:
        return sum(self.counts.values())


NO_MATCH = Match(0, {}, 0)


def blank_mask(ids: np.ndarray, blank: np.ndarray | None) -> np.ndarray:
    """Which of `ids` are blank tokens (`blank`: a boolean table over token ids; ids outside it,
    such as a separator, are not)."""
    if blank is None:
        return np.zeros(len(ids), dtype=bool)
    inside = (ids >= 0) & (ids < len(blank))
    return inside & blank[np.where(inside, ids, 0)]


def _folded_away(arr: np.ndarray, blank: np.ndarray | None) -> np.ndarray:
    """Which of `arr` folding cuts: blank tokens right after a blank token."""
    is_blank = blank_mask(arr, blank)
    repeat = is_blank.copy()
    repeat[1:] &= is_blank[:-1]
    repeat[:1] = False
    return repeat


def fold_blanks(ids: Sequence[int] | np.ndarray, blank: np.ndarray | None) -> np.ndarray:
    """`ids` (int64) with every run of blank tokens cut to its first token (`blank`: a boolean
    table over token ids; None folds nothing). Values are kept: the caller maps them."""
    arr = np.asarray(ids, dtype=np.int64)
    if blank is None or not len(arr):
        return arr
    return arr[~_folded_away(arr, blank)]


class Segment:
    """Suffix array over `docs` (key, token ids); keys name documents for exclusion.

    `blank` (a boolean table over token ids, True for whitespace-only tokens) turns on the
    folding of blank runs described above; `None` indexes the ids as they are.
    """

    def __init__(
        self,
        docs: Sequence[tuple[str, Sequence[int] | np.ndarray]],
        vocab_size: int,
        blank: np.ndarray | None = None,
    ) -> None:
        self.blank = blank if blank is not None and blank.any() else None
        self.canon = int(np.flatnonzero(self.blank)[0]) if self.blank is not None else -1
        self.wide = vocab_size >= 0xFFFF
        dtype = np.dtype(">u4") if self.wide else np.dtype(">u2")
        self.sep = 0x7FFFFFFF if self.wide else 0xFFFF  # sorts last both as int32 and as big-endian bytes
        self._slot: dict[str, int] = {}  # key -> index into starts: excluded docs are asked per token
        id_dtype = np.int32 if self.wide else np.uint16
        starts: list[int] = []
        parts: list[np.ndarray] = []
        extra_pos: list[np.ndarray] = []  # the tokens folding cut from blank runs, to give ids back:
        extra_ids: list[np.ndarray] = []  # where their run starts in the stream, and what they were
        pos = 0
        for key, ids in docs:
            orig = np.asarray(ids, dtype=np.int64)
            arr = fold_blanks(orig, self.blank)
            if len(arr) < len(orig):
                cut = _folded_away(orig, self.blank)
                # A cut token at index i belongs to the run starting at folded index i - cuts[:i+1].
                extra_pos.append(pos + np.flatnonzero(cut) - np.cumsum(cut)[cut])
                extra_ids.append(orig[cut])
            self._slot[key] = len(starts)
            starts.append(pos)
            parts.append(arr)
            parts.append(np.array([self.sep], dtype=np.int64))
            pos += len(arr) + 1
        self.starts = np.array([*starts, pos], dtype=np.int64)
        flat = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        # Blank runs: their original first token, by position, and the canonical id in the stream.
        # int32 positions: a stream of 2^31 tokens is far past any workspace cap.
        blank_at = blank_mask(flat, self.blank)
        self._blank_pos = np.flatnonzero(blank_at).astype(np.int32)
        self._blank_ids = flat[blank_at].astype(id_dtype)
        self._extra_pos = np.concatenate(extra_pos).astype(np.int32) if extra_pos else np.zeros(0, np.int32)
        self._extra_ids = np.concatenate(extra_ids).astype(id_dtype) if extra_ids else np.zeros(0, id_dtype)
        if self.blank is not None:
            flat = np.where(blank_at, self.canon, flat)
        native = flat.astype(id_dtype)
        self.itemsize = dtype.itemsize
        self.data = native.astype(dtype).tobytes()  # big-endian: bytes order == token-sequence order
        self.tokens = np.frombuffer(self.data, dtype=dtype)
        self.sa = _suffix_array(native, self.data, self.itemsize)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def nbytes(self) -> int:
        return (len(self.data) + self.sa.nbytes + self.starts.nbytes + self._blank_pos.nbytes
                + self._blank_ids.nbytes + self._extra_pos.nbytes + self._extra_ids.nbytes)

    def fold(self, query: Sequence[int]) -> np.ndarray:
        """A query as it is indexed: blank runs cut to one canonical token."""
        arr = fold_blanks(query, self.blank)
        return np.where(blank_mask(arr, self.blank), self.canon, arr) if self.blank is not None else arr

    def original(self, positions: np.ndarray) -> np.ndarray:
        """The token ids at `positions` as the documents had them (blank runs: their first token)."""
        toks = self.tokens[positions].astype(np.int64)
        if self.blank is not None and len(positions):
            at = toks == self.canon
            toks[at] = self._blank_ids[np.searchsorted(self._blank_pos, positions[at])]
        return toks

    def ids(self, key: str) -> np.ndarray | None:
        """Document `key`'s token ids exactly as they were given (blank runs unfolded), or None."""
        span = self.doc_range(key)
        if span is None:
            return None
        start, end = span[0], span[1] - 1  # the separator after the document is not its own
        toks = self.original(np.arange(start, end, dtype=np.int64))
        lo, hi = np.searchsorted(self._extra_pos, [start, end])
        if hi > lo:  # cut tokens go back after their run's first token, in their order
            toks = np.insert(toks, self._extra_pos[lo:hi].astype(np.int64) - start + 1, self._extra_ids[lo:hi])
        return toks

    def doc_range(self, key: str) -> tuple[int, int] | None:
        i = self._slot.get(key)
        if i is None:
            return None
        return int(self.starts[i]), int(self.starts[i + 1])

    def encode(self, ids: Sequence[int] | np.ndarray) -> bytes:
        return np.asarray(ids, dtype=self.tokens.dtype).tobytes()

    def _bound(self, q: bytes, lo: int, hi: int, upper: bool) -> int:
        """First SA index in [lo, hi) whose suffix prefix is > q (upper) or >= q (lower)."""
        data, sa, width = self.data, self.sa, self.itemsize
        n = len(q)
        while lo < hi:
            mid = (lo + hi) // 2
            p = int(sa[mid]) * width
            key = data[p : p + n]
            if key < q or (upper and key == q):
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _range(self, query: np.ndarray, length: int) -> tuple[int, int]:
        q = self.encode(query[len(query) - length :])
        lo = self._bound(q, 0, len(self.sa), upper=False)
        hi = self._bound(q, lo, len(self.sa), upper=True)
        return lo, hi

    def _valid(
        self, positions: np.ndarray, length: int, excluded: list[tuple[int, int]], allowed: np.ndarray | None = None
    ) -> np.ndarray:
        nxt = positions + length
        ok = nxt < len(self.tokens)
        ok[ok] &= self.tokens[nxt[ok]] != self.sep
        if allowed is not None:  # only occurrences whose next token may be chosen count
            nexts = self.original(nxt[ok])
            ok[ok] &= (nexts < len(allowed)) & allowed[np.minimum(nexts, len(allowed) - 1)]
        for start, end in excluded:
            ok &= (positions < start) | (positions >= end)
        return ok

    def longest(
        self,
        query: Sequence[int],
        exclude: Sequence[str] = (),
        max_len: int | None = None,
        allowed: np.ndarray | None = None,
    ) -> Match:
        """The longest suffix of `query` occurring here with a next token, outside `exclude` docs.

        `allowed` (a boolean mask over token ids) keeps only occurrences followed by an allowed
        token: while token healing spells `ke`, what followed `{\n ` elsewhere is only evidence
        where it starts with `ke`. Occurrence stays monotone in the length under the filter.
        """
        if not len(self.sa) or not len(query):
            return NO_MATCH
        folded = self.fold(list(query)[-2 * MAX_QUERY :])  # blank runs fold to one token: room for them
        excluded = [r for r in (self.doc_range(k) for k in exclude) if r is not None]
        best, best_range = 0, (0, 0)
        lo_len, hi_len = 1, min(len(folded), max_len or MAX_QUERY, MAX_QUERY)
        while lo_len <= hi_len:  # occurrence is monotone in the length: binary search it
            mid = (lo_len + hi_len) // 2
            lo, hi = self._range(folded, mid)
            found = False
            if hi > lo:
                step = max(1, (hi - lo) // CHECK_SAMPLE)
                found = bool(self._valid(self.sa[lo:hi:step].astype(np.int64), mid, excluded, allowed).any())
            if found:
                best, best_range = mid, (lo, hi)
                lo_len = mid + 1
            else:
                hi_len = mid - 1
        if best == 0:
            return NO_MATCH
        lo, hi = best_range
        step = max(1, (hi - lo) // COUNT_SAMPLE)
        positions = self.sa[lo:hi:step].astype(np.int64)
        positions = positions[self._valid(positions, best, excluded, allowed)]
        counts = Counter(int(t) for t in self.original(positions + best))
        return Match(best, dict(counts), hi - lo, self._following(int(positions[0]) + best) if len(positions) else ())

    def _following(self, start: int) -> tuple[int, ...]:
        toks = self.tokens[start : start + FOLLOWING].astype(np.int64)
        cut = np.flatnonzero((toks == self.sep) | (toks == self.canon))
        end = int(cut[0]) if len(cut) else len(toks)
        if end == 0 and len(toks) and toks[0] == self.canon:
            end = 1  # a line break that follows directly is still worth its one token
        return tuple(int(t) for t in self.original(np.arange(start, start + end, dtype=np.int64)))


def merge(matches: Sequence[Match]) -> Match:
    """The longest of several segments' matches; equal lengths pool their counts."""
    best = max((m.length for m in matches), default=0)
    if best == 0:
        return NO_MATCH
    counts: Counter[int] = Counter()
    occurrences = 0
    following: tuple[int, ...] = ()
    for m in matches:
        if m.length == best:
            counts.update(m.counts)
            occurrences += m.occurrences
            following = following or m.following
    return Match(best, dict(counts), occurrences, following)
