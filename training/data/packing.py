"""Tokenize documents (optionally as FIM examples) and pack them into full blocks.

FIM is applied at the character level, per document, *before* tokenization: the text is cut at
two random character positions into prefix/middle/suffix, the three pieces are tokenized
separately and joined with the FIM special-token ids (never by putting the literal token strings
in the text, so source text cannot inject special tokens). Tokenizing the pieces separately
matches what the server does at inference (prefix and suffix are tokenized apart). The tokens
and the PSM/SPM layouts are `server.fim`, the contract the server's prompts follow; the packer
adds the final `<|endoftext|>`.
Each document's FIM choice uses a RNG seeded by (seed, document sha256), so it does not depend
on the other documents or their order.

Packing concatenates documents with EOS after each and cuts full `block_size` blocks; the tail
shorter than a block is dropped: no padding token is ever trained on (HF `group_texts` style,
kept here as plain numpy because we also need per-document control for FIM).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from server import fim

TOKENIZE_BATCH = 512  # documents per tokenizer call: fast-tokenizer parallelism without huge lists


def fim_split(text: str, rng: random.Random) -> tuple[str, str, str]:
    """Cut `text` at two random character positions: (prefix, middle, suffix)."""
    a, b = sorted(rng.randint(0, len(text)) for _ in range(2))
    return text[:a], text[a:b], text[b:]


def encode_batch(tokenizer: Any, texts: list[str]) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for i in range(0, len(texts), TOKENIZE_BATCH):
        enc = tokenizer(texts[i : i + TOKENIZE_BATCH], add_special_tokens=False, verbose=False)["input_ids"]
        out.extend(np.asarray(ids, dtype=np.int32) for ids in enc)
    return out


def encode_documents(
    tokenizer: Any,
    texts: Sequence[str],
    keys: Sequence[str],
    *,
    fim_rate: float = 0.0,
    fim_spm_rate: float = 0.5,
    seed: int = 0,
    plain: Sequence[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Token ids per document (no EOS); a `fim_rate` share of them as PSM/SPM FIM examples.

    `keys` (e.g. sha256 per document) seed each document's FIM choice; `plain` may pass already
    computed plain encodings to avoid tokenizing non-FIM documents twice.
    """
    if fim_rate <= 0:
        return list(plain) if plain is not None else encode_batch(tokenizer, list(texts))
    pre_id, mid_id, suf_id = fim.require_fim_ids(tokenizer)
    plans: list[tuple[bool, bool] | None] = []  # (fim, spm) per doc
    pieces: list[str] = []
    for text, key in zip(texts, keys, strict=True):
        rng = random.Random(f"{seed}:{key}")
        if len(text) >= 2 and rng.random() < fim_rate:
            pieces.extend(fim_split(text, rng))
            plans.append((True, rng.random() < fim_spm_rate))
        else:
            plans.append(None)
    piece_ids = iter(encode_batch(tokenizer, pieces))
    if plain is None:
        todo = [t for t, plan in zip(texts, plans, strict=True) if plan is None]
        encoded = iter(encode_batch(tokenizer, todo))
    out: list[np.ndarray] = []
    for i, plan in enumerate(plans):
        if plan is None:
            out.append(plain[i] if plain is not None else next(encoded))
            continue
        p, m, s = next(piece_ids), next(piece_ids), next(piece_ids)
        out.append(fim_join((pre_id, mid_id, suf_id), p, m, s, spm=plan[1]))
    return out


def fim_join(
    fim_token_ids: tuple[int, int, int], prefix: np.ndarray, middle: np.ndarray, suffix: np.ndarray, *, spm: bool
) -> np.ndarray:
    """One FIM example from its pieces' ids (`server.fim.layout`; no EOS)."""
    pieces = (np.asarray(x, dtype=np.int32).tolist() for x in (prefix, middle, suffix))
    p, m, s = pieces
    return np.asarray(fim.layout(fim_token_ids, p, s, m, spm=spm), dtype=np.int32)


def fim_token_documents(
    docs: Sequence[np.ndarray],
    keys: Sequence[str],
    fim_token_ids: tuple[int, int, int],
    *,
    fim_rate: float,
    fim_spm_rate: float = 0.5,
    seed: int = 0,
) -> list[np.ndarray]:
    """`encode_documents`' FIM for documents that are already token ids: cuts at token boundaries.

    Used for a packed token file, whose text is not at hand. Cutting between tokens instead of
    between characters means the prefix never ends inside a token; the server prompts the same
    way (token healing backs the prompt up to a token boundary before the cursor).
    """
    if fim_rate <= 0:
        return list(docs)
    out: list[np.ndarray] = []
    for ids, key in zip(docs, keys, strict=True):
        rng = random.Random(f"{seed}:{key}")
        if len(ids) < 2 or rng.random() >= fim_rate:
            out.append(ids)
            continue
        a, b = sorted(rng.randint(0, len(ids)) for _ in range(2))
        out.append(fim_join(fim_token_ids, ids[:a], ids[a:b], ids[b:], spm=rng.random() < fim_spm_rate))
    return out


def pack_blocks(docs: Sequence[np.ndarray], eos_id: int, block_size: int) -> np.ndarray:
    """Concatenate docs with EOS after each; return (n_blocks, block_size) full blocks only."""
    if block_size <= 0:
        raise ValueError("block_size must be positive")
    if not docs:
        return np.zeros((0, block_size), dtype=np.int32)
    eos = np.asarray([eos_id], dtype=np.int32)
    stream = np.concatenate([x for d in docs for x in (d.astype(np.int32), eos)])
    n = len(stream) // block_size
    return stream[: n * block_size].reshape(n, block_size)
