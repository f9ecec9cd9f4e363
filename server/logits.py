"""Logits rows as the engines hand them over: numpy arrays (llama.cpp) or torch tensors (torch).

The decode loop and the ∞-gram guide need a few operations on a row; these do them on either
kind, so that the llama.cpp path never imports torch (over a second of a cold start on a laptop).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

Logits = Any  # one row (or rows) of scores: np.ndarray or torch.Tensor
# Probabilities are clamped to this before the log: a token the mixture gives nothing stays finite.
MIN_PROB = 1e-30


def as_index(logits: Logits, ids: np.ndarray) -> Any:
    """`ids` as an index into `logits`: as it is for numpy, a tensor on the row's device for torch."""
    if isinstance(logits, np.ndarray):
        return ids
    import torch  # a torch row: the torch engine has loaded it already

    return torch.as_tensor(ids, dtype=torch.long, device=logits.device)


def log_mixture(logits: Logits, keep: float, added: Mapping[int, float]) -> Logits:
    """log(keep · softmax(logits) + added), where `added` gives probability mass to some ids."""
    if isinstance(logits, np.ndarray):
        scores = logits.astype(np.float32, copy=False)
        exp = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs = exp / exp.sum(axis=-1, keepdims=True) * keep
        for token, mass in added.items():
            probs[..., token] += mass
        return np.log(np.maximum(probs, MIN_PROB))
    import torch

    probs = torch.softmax(logits.float(), dim=-1) * keep
    for token, mass in added.items():
        probs[..., token] += mass
    return torch.log(probs.clamp_min(MIN_PROB))
