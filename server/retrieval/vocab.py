"""Tables over a tokenizer's vocabulary that retrieval needs: a batch encoder, which ids are
blanks, which carry words, and a key that says when two tokenizers share ids."""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from server.retrieval.index import Encode, WorkspaceIndex
from server.tokenizer import token_texts


def encoder(tokenizer: Any) -> Encode:
    """Batch token ids without special tokens: the Rust tokenizer's fast batch call when there
    is one (~3x the Python wrapper), else the tokenizer itself."""
    backend = getattr(tokenizer, "backend_tokenizer", None)

    def encode(texts: list[str]) -> list[list[int]]:
        if backend is not None:
            return [e.ids for e in backend.encode_batch_fast(texts, add_special_tokens=False)]
        return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]

    return encode


# Per tokenizer, computed once: the Completer, every index built over it (one per package in
# `training.evaluate`) and the benchmarks share them.
_BLANK_KINDS: weakref.WeakKeyDictionary[Any, np.ndarray] = weakref.WeakKeyDictionary()


def blank_kinds(tokenizer: Any) -> np.ndarray:
    """Per token id: 0 for a token with anything but spaces, tabs and line breaks in it, 1 for
    spaces/tabs, 2 for blanks holding a line break. Matching folds runs of blanks
    (`server.retrieval.suffix_array`); mixing lets the model choose the line break (`mixing`).
    Computed once per tokenizer."""
    cached = _BLANK_KINDS.get(tokenizer)
    if cached is not None and len(cached) == len(tokenizer):
        return cached
    texts = token_texts(tokenizer)

    def kind(text: str) -> int:
        if not text or text.strip(" \t\r\n"):
            return 0
        return 2 if "\n" in text or "\r" in text else 1

    kinds = _BLANK_KINDS[tokenizer] = np.array([kind(t) for t in texts], dtype=np.int8)
    return kinds


_WORD_IDS: weakref.WeakKeyDictionary[Any, np.ndarray] = weakref.WeakKeyDictionary()


def word_ids(tokenizer: Any) -> np.ndarray:
    """Per token id: True when its text has a letter or digit (what similar-code windows compare;
    `server.retrieval.snippets`). Computed once per tokenizer."""
    cached = _WORD_IDS.get(tokenizer)
    if cached is not None and len(cached) == len(tokenizer):
        return cached
    texts = token_texts(tokenizer)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    words = np.array([i not in special and any(c.isalnum() for c in t) for i, t in enumerate(texts)], dtype=bool)
    _WORD_IDS[tokenizer] = words
    return words


_VOCABULARY_KEYS: weakref.WeakKeyDictionary[Any, tuple[int, int]] = weakref.WeakKeyDictionary()


def vocabulary_key(tokenizer: Any) -> tuple[int, int]:
    """The size and a hash of `tokenizer`'s vocabulary (token -> id): two tokenizers with the
    same key give the same ids, so an index built with one serves the other. Once per tokenizer."""
    cached = _VOCABULARY_KEYS.get(tokenizer)
    if cached is None:
        cached = (len(tokenizer), hash(tuple(sorted(tokenizer.get_vocab().items()))))
        _VOCABULARY_KEYS[tokenizer] = cached
    return cached


def new_index(tokenizer: Any, snippets: bool = False) -> WorkspaceIndex:
    """An empty index over `tokenizer`'s ids; with `snippets`, also the similar-code windows that
    `Completer(snippet_tokens=N)` puts in the prompt (off by default: no gain measured with the
    shipped model, and they cost build time and ~1 byte per token)."""
    words = word_ids(tokenizer) if snippets else None
    return WorkspaceIndex(encoder(tokenizer), len(tokenizer), blank=blank_kinds(tokenizer) > 0, words=words)
