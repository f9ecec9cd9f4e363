"""Exact and near-duplicate removal (streaming: the first copy seen is kept).

Exact: sha256 of the whitespace-normalised text. Near: datasketch MinHash + LSH over the set of
identifier-like tokens (as in the codeparrot near-dedup), a candidate is dropped only when its
estimated Jaccard with an already kept file is ≥ the threshold (LSH alone gives false positives).
"""

from __future__ import annotations

import hashlib
import re

_NON_WORD = re.compile(r"[^A-Za-z_0-9]+")
MIN_NEAR_DEDUP_TOKENS = 10  # tiny files share most of their few tokens by chance: never call them copies


def normalised_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()


def word_set(text: str) -> set[str]:
    return {t for t in _NON_WORD.split(text) if t}


class ExactDedup:
    def __init__(self) -> None:
        self._seen: set[str] = set()

    def is_duplicate(self, text: str) -> bool:
        """True if an equal (modulo whitespace) text was seen before; records it otherwise."""
        h = normalised_hash(text)
        if h in self._seen:
            return True
        self._seen.add(h)
        return False


class NearDedup:
    def __init__(self, threshold: float = 0.85, num_perm: int = 128) -> None:
        from datasketch import MinHash, MinHashLSH

        self.threshold = threshold
        self.num_perm = num_perm
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._hashes: dict[str, object] = {}
        self._count = 0
        # the permutations depend only on (num_perm, seed): compute them once, not per file
        proto = MinHash(num_perm=num_perm, seed=1)
        self._permutations, self._scheme = proto.permutations, proto.scheme

    def _minhash(self, words: set[str]):  # -> datasketch.MinHash
        from datasketch import MinHash

        mh = MinHash(num_perm=self.num_perm, seed=1, permutations=self._permutations, scheme=self._scheme)
        mh.update_batch([w.encode("utf-8") for w in words])
        return mh

    def is_duplicate(self, text: str) -> bool:
        """True if `text` is a near copy of a kept text; otherwise it is indexed and kept."""
        words = word_set(text)
        if len(words) < MIN_NEAR_DEDUP_TOKENS:
            return False
        mh = self._minhash(words)
        for key in self._lsh.query(mh):
            if mh.jaccard(self._hashes[key]) >= self.threshold:  # type: ignore[arg-type]
                return True
        key = str(self._count)
        self._count += 1
        self._lsh.insert(key, mh)
        self._hashes[key] = mh
        return False
