"""The workspace index: every indexed file's token ids in a base segment plus a small delta.

Building the base (all files at once) is the expensive step and runs in a background thread.
After it, an edited, opened, saved or created file is re-tokenised and goes to the delta segment,
which is rebuilt on its own (a few ms for a few hundred thousand tokens); its old copy in the
base is excluded from lookups. When the delta outgrows `DELTA_MAX_TOKENS` everything is folded
into a new base. Lookups take a snapshot of the two segments, so they never wait for a rebuild.

Memory: the segments hold the only copy of the base files' token ids (`Segment.ids` gives a
file's back for a fold or a snippet); separate ids are kept for the delta's files alone, and
each file's text for character-level copies.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from server.retrieval.nextline import Admit, NextLines, bounded_words
from server.retrieval.snippets import Snippet, SnippetIndex
from server.retrieval.suffix_array import NO_MATCH, Match, Segment, merge

log = logging.getLogger(__name__)

Encode = Callable[[list[str]], list[list[int]]]  # texts -> token ids (no special tokens)
DELTA_MAX_TOKENS = 400_000  # above this, rebuilding the delta on each edit costs > ~50 ms: fold it in


class WorkspaceIndex:
    """Token-level longest-match index over named texts (file URIs); thread-safe."""

    def __init__(
        self, encode: Encode, vocab_size: int, blank: np.ndarray | None = None, words: np.ndarray | None = None
    ) -> None:
        self.encode = encode
        self.vocab_size = vocab_size
        self.blank = blank  # whitespace-only token ids, folded when matching (see suffix_array.py)
        # Windows for similar-code snippets in the prompt, over these word token ids (None: none).
        self.snippets = SnippetIndex(words) if words is not None else None
        self.next_lines = NextLines()  # what followed lines like the one above the cursor
        self._lock = threading.Lock()
        # The delta's documents' ids (2 bytes a token when the vocabulary fits); the base's are
        # in the base segment.
        self._dtype = np.uint16 if vocab_size <= 65536 else np.int32
        self._delta_docs: dict[str, np.ndarray] = {}
        self._lengths: dict[str, int] = {}  # every indexed document: its length in tokens
        self._texts: dict[str, str] = {}  # the same documents as text: character-level copying
        self._texts_version = 0  # changes with `_texts`
        self._copy_cache: tuple[int, int, list[str], list[str], np.ndarray] | None = None  # `_copy_docs`
        self._key_of_text: dict[int, tuple[str, str]] = {}  # id of each text in `_copy_cache` -> key, text
        self._base = Segment([], vocab_size, blank)
        self._base_keys: set[str] = set()
        self._stale: set[str] = set()  # base copies superseded by the delta or removed
        self._delta = Segment([], vocab_size, blank)
        self._delta_keys: set[str] = set()
        # While `build` reads the disk, edits stay in the delta (no fold: the build would replace the
        # folded base and lose them) and removals are remembered (the build may have read the file).
        self._building = 0
        self._removed_while_building: set[str] = set()

    # ----- building and updating

    def build(self, texts: Iterable[tuple[str, str]], batch: int = 256) -> None:
        """Replace the whole index with `texts` (key, text)."""
        with self._lock:
            self._building += 1
        try:
            self._build(texts, batch)
        finally:
            with self._lock:
                self._building -= 1
                if not self._building:
                    self._removed_while_building.clear()
                    self._rebuild_delta()  # the fold the build held back, if the delta grew past it

    def _build(self, texts: Iterable[tuple[str, str]], batch: int) -> None:
        docs: dict[str, np.ndarray] = {}
        pending: list[tuple[str, str]] = []

        def flush() -> None:
            ids = self.encode([t for _, t in pending])
            for (key, _), toks in zip(pending, ids, strict=True):
                docs[key] = np.asarray(toks, dtype=self._dtype)
            pending.clear()

        texts_seen: list[tuple[str, str]] = []
        for item in texts:
            texts_seen.append(item)
            pending.append(item)
            if len(pending) >= batch:
                flush()
        if pending:
            flush()
        base = self._segment(list(docs.items()))
        text_of = dict(texts_seen)
        with self._lock:
            # Edits that arrived while building win over the text we read from disk.
            lengths = {key: len(toks) for key, toks in docs.items()}
            for key in self._delta_keys:
                lengths[key] = len(self._delta_docs[key])
                text_of[key] = self._texts[key]
            gone = self._removed_while_building - self._delta_keys  # deleted after the build read them
            for key in gone:
                lengths.pop(key, None)
                text_of.pop(key, None)
            self._lengths, self._texts = lengths, text_of
            self._texts_version += 1
            self._base, self._base_keys = base, set(docs) - self._delta_keys
            self._stale = (self._delta_keys | gone) & set(docs)
            fresh = set(docs) - self._delta_keys - gone
        if self.snippets is not None:  # the delta's files and the removed ones have theirs already
            for key in fresh:
                self.snippets.set(key, docs[key])
        for key in fresh:
            self.next_lines.set(key, text_of[key])
        for key in gone:
            self.next_lines.remove(key)
        log.info("workspace index: %d files, %d tokens, %.1f MB", len(docs), len(base), base.nbytes / 1e6)

    def update(self, key: str, text: str) -> None:
        """Index `text` as the content of `key` (open document or changed file)."""
        toks = np.asarray(self.encode([text])[0], dtype=self._dtype)
        if self.snippets is not None:
            self.snippets.set(key, toks)
        self.next_lines.set(key, text)
        with self._lock:
            self._delta_docs[key] = toks
            self._lengths[key] = len(toks)
            self._texts[key] = text
            self._texts_version += 1
            self._delta_keys.add(key)
            if key in self._base_keys:
                self._stale.add(key)
            self._rebuild_delta()

    def remove(self, key: str) -> None:
        if self.snippets is not None:
            self.snippets.remove(key)
        self.next_lines.remove(key)
        with self._lock:
            if self._building:
                self._removed_while_building.add(key)
            self._lengths.pop(key, None)
            self._texts.pop(key, None)
            self._texts_version += 1
            if key in self._base_keys:
                self._stale.add(key)
            if key in self._delta_keys:
                self._delta_keys.discard(key)
                self._delta_docs.pop(key, None)
                self._rebuild_delta()

    def _segment(self, docs: list[tuple[str, np.ndarray]]) -> Segment:
        return Segment(docs, self.vocab_size, self.blank)

    def _ids(self, key: str) -> np.ndarray | None:
        """Document `key`'s current token ids: the delta's copy, else the base segment's."""
        if key in self._delta_docs:
            return self._delta_docs[key]
        return self._base.ids(key) if key in self._base_keys and key not in self._stale else None

    def _rebuild_delta(self) -> None:
        docs = [(k, self._delta_docs[k]) for k in sorted(self._delta_keys)]
        if sum(len(d) for _, d in docs) > DELTA_MAX_TOKENS and not self._building:
            every = [(k, ids) for k in self._lengths if (ids := self._ids(k)) is not None]
            self._base = self._segment(every)
            self._base_keys, self._stale, self._delta_keys = {k for k, _ in every}, set(), set()
            self._delta_docs = {}
            docs = []
        self._delta = self._segment(docs)

    # ----- queries

    def __contains__(self, key: object) -> bool:
        return key in self._lengths

    def __len__(self) -> int:
        return len(self._lengths)

    @property
    def tokens(self) -> int:
        return sum(self._lengths.values())

    @property
    def nbytes(self) -> int:
        """Both segments (token streams, suffix arrays, blank runs), the delta's documents' ids,
        the similar-code windows when built, and the texts kept for character-level copying (≈
        their length: source code is mostly ASCII)."""
        docs = sum(d.nbytes for d in list(self._delta_docs.values()))
        windows = self.snippets.nbytes if self.snippets is not None else 0
        return (self._base.nbytes + self._delta.nbytes + docs + windows + self.next_lines.nbytes
                + sum(len(t) for t in list(self._texts.values())))

    def copy_sources(self, tail: str, exclude: str = "") -> tuple[list[str], Callable[[int], list[str]], int]:
        """The texts to copy from (every indexed one but `exclude`); for a length n ≤ len(tail),
        those of them that may hold `tail[-n:]` (`copy_verdict`'s `narrow`); and the shortest n
        that it narrows (0: none; `copy_verdict`'s `first`).

        A whole identifier inside the tail (a non-identifier character on each side, within the
        tail) is a whole word of any text that holds the tail, so a text lacking one of those words
        cannot match (`NextLines.word_table`). Without this, each probe scanned every text: ~40 ms
        a keystroke over 20 MB; tails that narrow nothing (punctuation, indentation) are common, and
        there the first 64 occurrences end the scan early anyway."""
        version, keys, texts, row_of = self._copy_docs()
        if exclude in keys:
            i = keys.index(exclude)
            texts, row_of = texts[:i] + texts[i + 1 :], np.delete(row_of, i)
        found = bounded_words(tail)
        if not found:
            return texts, lambda n: texts, 0
        hashed = sorted({h for _, h in found})
        column = {h: i for i, h in enumerate(hashed)}
        has: list[np.ndarray | None] = []  # which words each text has; made by the first probe that asks
        narrowed: dict[tuple[int, ...], list[str]] = {}

        def narrow(n: int) -> list[str]:
            # The word and the boundary character before it lie within the last n characters.
            needed = tuple(sorted({column[h] for start, h in found if start - 1 >= len(tail) - n}))
            if not needed:
                return texts
            if not has:
                table = self.next_lines.word_table(hashed, version)
                has.append(table[row_of] if table is not None else None)
            if has[0] is None:  # the files changed meanwhile: no narrowing this time
                return texts
            if needed not in narrowed:
                keep = np.flatnonzero(has[0][:, list(needed)].all(axis=1))
                narrowed[needed] = [texts[i] for i in keep]
            return narrowed[needed]

        return texts, narrow, len(tail) - found[-1][0] + 1

    def _copy_docs(self) -> tuple[int, list[str], list[str], np.ndarray]:
        """Every indexed document's key and text, with its row in `NextLines.word_table` and that
        table's version; kept between changes (a workspace of 7,000 files costs ~2 ms to list)."""
        with self._lock:
            cached = self._copy_cache
            if cached is not None and cached[0] == self._texts_version and cached[1] == self.next_lines.version:
                return cached[1:]
            texts_version, keys, texts = self._texts_version, list(self._texts), list(self._texts.values())
        version, row_of = self.next_lines.rows(list(zip(keys, texts, strict=True)))
        with self._lock:
            self._copy_cache = (texts_version, version, keys, texts, row_of)
            self._key_of_text = {id(text): (key, text) for key, text in zip(keys, texts, strict=True)}
        return version, keys, texts, row_of

    def files(self) -> dict[str, str]:
        """Every indexed document's text, by key."""
        _, keys, texts, _ = self._copy_docs()
        return dict(zip(keys, texts, strict=True))

    def key_of(self, text: str) -> str:
        """The key of a text that `copy_sources` gave (the same object), or "" when the index has
        changed since (a copy rule that needs the file's name then leaves it unchecked)."""
        with self._lock:
            entry = self._key_of_text.get(id(text))
        # An id names an object only while it lives: check that the entry's text is this one.
        return entry[0] if entry is not None and entry[1] is text else ""

    def follow(self, line: str, exclude: str = "", admit: Admit | None = None) -> tuple[float, Counter[str]]:
        """The lines that followed the indexed lines most like `line` (`NextLines.follow`)."""
        return self.next_lines.follow(line, exclude, admit)

    def similar(self, query: Sequence[int], exclude: str = "", k: int = 1) -> list[tuple[Snippet, np.ndarray]]:
        """The `k` code windows most like `query` outside `exclude`, each with its document's ids."""
        if self.snippets is None:
            return []
        found = self.snippets.best(np.asarray(query, dtype=np.int32), exclude, k)
        with self._lock:
            pairs = [(s, self._ids(s.key)) for s in found]
        return [(s, ids) for s, ids in pairs if ids is not None]

    def lookup(self, query: Sequence[int], exclude: str = "", allowed: np.ndarray | None = None) -> Match:
        """Longest suffix of `query` in the workspace (outside the document `exclude`), counting
        only occurrences followed by an `allowed` token when a mask is given."""
        with self._lock:
            base, delta, stale = self._base, self._delta, list(self._stale)
        if not query:
            return NO_MATCH
        return merge(
            [base.longest(query, [*stale, exclude], allowed=allowed), delta.longest(query, [exclude], allowed=allowed)]
        )
