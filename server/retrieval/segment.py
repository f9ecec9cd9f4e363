"""One immutable suffix array over the token ids of some documents, with longest-match lookups.

Documents are concatenated with a separator id after each. The suffix array comes from
`pydivsufsort` (libdivsufsort, maintained, C): building it for a few million tokens takes well
under a second. Lookups are hand-written binary searches because no library answers "the longest
suffix of this query that occurs here, with what follows it" (the infini-gram engine does, but
only over its own prebuilt on-disk format): the token stream is kept as big-endian bytes, so
comparing two token sequences is one `bytes` comparison.

Memory: 2 bytes per token (uint16 when the vocabulary allows, else 4) + 4 bytes of suffix array.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pydivsufsort

MAX_QUERY = 64  # tokens of query looked at: longer exact matches add no information
CHECK_SAMPLE = 64  # occurrences checked for validity (separator / excluded doc) per probe
COUNT_SAMPLE = 256  # occurrences whose next token is counted (evenly spread over the range)


@dataclass(frozen=True)
class Match:
    """The longest suffix of a query found (length in tokens) and what followed it."""

    length: int
    counts: dict[int, int]  # next token id -> occurrences
    occurrences: int  # occurrences of the matched suffix (before sampling)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


NO_MATCH = Match(0, {}, 0)


class Segment:
    """Suffix array over `docs` (key, token ids); keys name documents for exclusion."""

    def __init__(self, docs: Sequence[tuple[str, Sequence[int] | np.ndarray]], vocab_size: int) -> None:
        self.wide = vocab_size >= 0xFFFF
        dtype = np.dtype(">u4") if self.wide else np.dtype(">u2")
        self.sep = 0x7FFFFFFF if self.wide else 0xFFFF  # sorts last both as int32 and as big-endian bytes
        self._slot: dict[str, int] = {}  # key -> index into starts: excluded docs are asked per token
        starts: list[int] = []
        parts: list[np.ndarray] = []
        pos = 0
        for key, ids in docs:
            arr = np.asarray(ids, dtype=np.int64)
            self._slot[key] = len(starts)
            starts.append(pos)
            parts.append(arr)
            parts.append(np.array([self.sep], dtype=np.int64))
            pos += len(arr) + 1
        self.starts = np.array([*starts, pos], dtype=np.int64)
        native = np.concatenate(parts).astype(np.int32 if self.wide else np.uint16) if parts else np.zeros(0, np.uint16)
        self.itemsize = dtype.itemsize
        self.data = native.astype(dtype).tobytes()  # big-endian: bytes order == token-sequence order
        self.tokens = np.frombuffer(self.data, dtype=dtype)
        self.sa = pydivsufsort.divsufsort(native) if len(native) else np.zeros(0, dtype=np.int32)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def nbytes(self) -> int:
        return len(self.data) + self.sa.nbytes + self.starts.nbytes

    def doc_range(self, key: str) -> tuple[int, int] | None:
        i = self._slot.get(key)
        if i is None:
            return None
        return int(self.starts[i]), int(self.starts[i + 1])

    def encode(self, ids: Sequence[int]) -> bytes:
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

    def _range(self, query: Sequence[int], length: int) -> tuple[int, int]:
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
            nexts = self.tokens[nxt[ok]].astype(np.int64)
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
        if not len(self.sa) or not query:
            return NO_MATCH
        excluded = [r for r in (self.doc_range(k) for k in exclude) if r is not None]
        best, best_range = 0, (0, 0)
        lo_len, hi_len = 1, min(len(query), max_len or MAX_QUERY, MAX_QUERY)
        while lo_len <= hi_len:  # occurrence is monotone in the length: binary search it
            mid = (lo_len + hi_len) // 2
            lo, hi = self._range(query, mid)
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
        nexts = self.tokens[positions + best]
        counts = Counter(int(t) for t in nexts)
        return Match(best, dict(counts), hi - lo)


def merge(matches: Sequence[Match]) -> Match:
    """The longest of several segments' matches; equal lengths pool their counts."""
    best = max((m.length for m in matches), default=0)
    if best == 0:
        return NO_MATCH
    counts: Counter[int] = Counter()
    occurrences = 0
    for m in matches:
        if m.length == best:
            counts.update(m.counts)
            occurrences += m.occurrences
    return Match(best, dict(counts), occurrences)
