"""The fill-in-the-middle contract between training and serving: the special tokens, their ids in
a tokenizer, and the two layouts. Training writes examples with it (`training.data.packing`),
the server builds prompts with it (`server.prompt`); a change here changes both together.

  PSM: <fim_prefix> prefix <fim_suffix> suffix <fim_middle> middle
  SPM: <fim_suffix> suffix <fim_prefix> prefix <fim_middle> middle

(The training packer adds the final end-of-text token; a prompt stops after <fim_middle>.)
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Sequence
from typing import Any

EOS = "<|endoftext|>"
PREFIX, MIDDLE, SUFFIX, PAD = "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>"
TOKENS = (PREFIX, MIDDLE, SUFFIX, PAD)  # what a tokenizer trained for FIM adds as special tokens
SPECIAL_TEXT = (EOS, *TOKENS)  # text that must never appear in a training document as written

# Per tokenizer, with its size: training adds FIM tokens to a tokenizer after it was first asked.
_IDS: weakref.WeakKeyDictionary[Any, tuple[int, tuple[int, int, int] | None]] = weakref.WeakKeyDictionary()


def fim_ids(tokenizer: Any) -> tuple[int, int, int] | None:
    """(prefix, middle, suffix) token ids when the tokenizer has all three FIM tokens, else None."""
    size = len(tokenizer)
    try:
        cached_size, cached = _IDS[tokenizer]
        if cached_size == size:
            return cached
    except (KeyError, TypeError):
        pass
    vocab = tokenizer.get_vocab()
    ids = tuple(vocab.get(t) for t in (PREFIX, MIDDLE, SUFFIX))
    found = (ids[0], ids[1], ids[2]) if None not in ids else None
    with contextlib.suppress(TypeError):  # not weak-referenceable: just don't cache
        _IDS[tokenizer] = (size, found)
    return found


def require_fim_ids(tokenizer: Any) -> tuple[int, int, int]:
    """`fim_ids`, or ValueError naming the missing tokens (FIM training needs all three)."""
    found = fim_ids(tokenizer)
    if found is None:
        vocab = tokenizer.get_vocab()
        missing = [t for t in (PREFIX, MIDDLE, SUFFIX) if t not in vocab]
        raise ValueError(f"FIM requested but the tokenizer has no {', '.join(missing)} tokens")
    return found


def layout(
    ids: tuple[int, int, int], prefix: Sequence[int], suffix: Sequence[int], middle: Sequence[int] = (), *, spm: bool
) -> list[int]:
    """One FIM sequence from its pieces' ids, in SPM or PSM order (see the module docstring)."""
    pre, mid, suf = ids
    if spm:
        return [suf, *suffix, pre, *prefix, mid, *middle]
    return [pre, *prefix, suf, *suffix, mid, *middle]
