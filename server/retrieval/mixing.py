"""∞-gram mixing at decode time: interpolate the model with the workspace's next-token counts.

At each generated token, the longest suffix of (prefix + generated) that occurs in the workspace
(or earlier in the file itself) gives next-token counts; the model's distribution is mixed with
them, p = (1 - λ) p_model + λ p_count, with λ growing with the match length (kNN-LM /
infini-gram style): a 2-token match is noise, a 20-token match is usually the same code again.
Greedy decoding then takes the argmax of the mixture.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from server.retrieval.segment import MAX_QUERY, Match, merge

Lookup = Callable[[Sequence[int], "np.ndarray | None"], Match]  # (query, allowed next-token mask)


@dataclass(frozen=True)
class MixParams:
    min_length: int = 3  # shorter matches are everywhere in code (`) {`, `const `): no signal
    tau: float = 3.0  # tokens of match length over which λ approaches its maximum
    max_weight: float = 0.95  # never trust the counts fully: the model still breaks ties and ends lines


def weight(match: Match, params: MixParams) -> float:
    if match.length < params.min_length or not match.counts:
        return 0.0
    return params.max_weight * (1.0 - math.exp(-(match.length - params.min_length + 1) / params.tau))


class NgramGuide:
    """A logits hook for `Engine.generate`: `guide(generated_ids, logits) -> log-probabilities`."""

    def __init__(self, lookups: Sequence[Lookup], context: Sequence[int], params: MixParams | None = None) -> None:
        self.lookups = list(lookups)
        self.context = list(context[-MAX_QUERY:])  # a lookup never reads further back
        self.params = params or MixParams()

    def match(self, generated: Sequence[int], allowed: torch.Tensor | None = None) -> Match:
        """The longest match for the text so far; with `allowed` (the ids token healing permits
        now), only occurrences continued by one of them."""
        query = (self.context + list(generated[-MAX_QUERY:]))[-MAX_QUERY:]
        mask = None
        if allowed is not None:
            ids = allowed.numpy()
            mask = np.zeros(int(ids.max()) + 1 if ids.size else 1, dtype=bool)
            mask[ids] = True
        return merge([lookup(query, mask) for lookup in self.lookups])

    def __call__(
        self, generated: Sequence[int], logits: torch.Tensor, allowed: torch.Tensor | None = None
    ) -> torch.Tensor:
        match = self.match(generated, allowed)
        lam = weight(match, self.params)
        if lam <= 0.0:
            return logits
        probs = torch.softmax(logits.float(), dim=-1) * (1.0 - lam)
        total = match.total
        for token, count in match.counts.items():
            if 0 <= token < probs.shape[-1]:
                probs[token] += lam * count / total
        return torch.log(probs.clamp_min(1e-30))
