"""∞-gram mixing at decode time: interpolate the model with the workspace's next-token counts.

At each generated token, the longest suffix of (prefix + generated) that occurs in the workspace
(or earlier in the file itself) gives next-token counts; the model's distribution is mixed with
them, p = (1 - λ) p_model + λ p_count, with λ growing with the match length (kNN-LM /
infini-gram style): a 2-token match is noise, a 20-token match is usually the same code again.
Greedy decoding then takes the argmax of the mixture.

Blanks are matched folded (`suffix_array.py`: a run of spaces/line breaks is one symbol), so a match
may come from code indented differently. A line break it predicts goes to the model's own
favourite line break (which knows this file's indentation), and a blank run the model has
started is the model's to finish: while it wants more blanks, the counts stay out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from server.logits import Logits, as_index, log_mixture
from server.retrieval.suffix_array import MAX_QUERY, Match, merge

LINE_BREAK = 2  # the blank kind of tokens holding a line break (server.retrieval.vocab.blank_kinds)
Lookup = Callable[[Sequence[int], "np.ndarray | None"], Match]  # (query, allowed next-token mask)


@dataclass(frozen=True)
class MixParams:
    # Shorter matches are everywhere in code (`) {`, `const `) and overrule the model more often than
    # they help it. (3, 3.0, 0.95) suited the 5.5 M model of stages 1-5; with stage 6 (14 M), on the
    # tuning rows 200-500, (5, 6.0, 0.8) measured best: whole line EM / ES 22.0 / 49.7 -> 23.7 / 53.0,
    # mid-line 37.7 / 60.0 -> 38.7 / 60.5 (min_length 7 alone: 23.0 / 53.1 and 38.7 / 60.5). The old
    # curve for short matches whose occurrences all continue alike (a project's own identifiers) measured
    # worse again (whole line 23.0 / 50.7): a name typed without context is left to character copies.
    min_length: int = 5
    tau: float = 6.0  # tokens of match length over which λ approaches its maximum
    max_weight: float = 0.8  # never trust the counts fully: the model still breaks ties and ends lines
    # The file being edited wins over the workspace when its match is at most this many tokens
    # shorter: 0 = at equal length (code repeats its own idioms most; tuning rows: whole-line ES
    # 46.3 -> 47.6 %, mid-line EM 31.3 -> 32.0 %, ES 52.4 -> 53.9 %). 2 measured the same but took the file's
    # `import { name }` over the workspace's longer `= name(` match. -1: the file never wins a tie.
    own_file_slack: int = 0
    draft_min_length: int = 8  # copy drafts from matches this long: shorter ones are mostly rejected


def prefer_local(local: Match, other: Match, params: MixParams) -> Match:
    """The match to mix from the file being edited (`local`) and the workspace (`other`): the
    file's when it is long enough and at most `own_file_slack` tokens shorter, else the longer
    (equal lengths pool their counts)."""
    if local.length >= params.min_length and local.length + params.own_file_slack >= other.length:
        return local
    return merge([local, other])


def weight(match: Match, params: MixParams) -> float:
    if match.length < params.min_length or not match.counts:
        return 0.0
    return params.max_weight * (1.0 - math.exp(-(match.length - params.min_length + 1) / params.tau))


class NgramGuide:
    """A logits hook for `Engine.generate`: `guide(generated_ids, logits) -> log-probabilities`."""

    def __init__(
        self,
        lookups: Sequence[Lookup],
        context: Sequence[int],
        params: MixParams | None = None,
        blanks: np.ndarray | None = None,
    ) -> None:
        self.lookups = list(lookups)
        # A lookup reads MAX_QUERY tokens after folding blank runs: keep room for them.
        self.context = list(context[-2 * MAX_QUERY :])
        self.params = params or MixParams()
        self.blanks = blanks  # per token id: 0 not blank, else its kind (server.retrieval.vocab.blank_kinds)
        self._breaks: np.ndarray | None = None  # ids of the line-break blanks, once needed
        self._last: Match | None = None  # the match behind the latest call (for `draft`)

    def match(self, generated: Sequence[int], allowed: Any = None) -> Match:
        """The longest match for the text so far; with `allowed` (the ids token healing permits
        now), only occurrences continued by one of them."""
        query = (self.context + list(generated[-2 * MAX_QUERY :]))[-2 * MAX_QUERY :]
        mask = None
        if allowed is not None:
            ids = np.asarray(allowed)
            mask = np.zeros(int(ids.max()) + 1 if ids.size else 1, dtype=bool)
            mask[ids] = True
        return merge([lookup(query, mask) for lookup in self.lookups])

    def __call__(self, generated: Sequence[int], logits: Logits, allowed: Any = None) -> Logits:
        self._last = None
        if generated and self._blank(generated[-1]) and self._blank(int(logits.argmax())):
            return logits
        match = self._last = self.match(generated, allowed)
        lam = weight(match, self.params)
        if lam <= 0.0:
            return logits
        added: dict[int, float] = {}
        for token, count in match.counts.items():
            if 0 <= token < logits.shape[-1]:
                chosen = self._as_model_would(token, logits)
                added[chosen] = added.get(chosen, 0.0) + lam * count / match.total
        return log_mixture(logits, 1.0 - lam, added)

    def draft(self, generated: Sequence[int], limit: int) -> list[int]:
        """Tokens the copy predicts after `generated`, for the engine to verify in one forward
        pass (prompt-lookup decoding): what followed the latest long, unanimous match, if the
        token just chosen is the one it predicted. The engine keeps only the tokens that the
        mixture's argmax would have chosen anyway, so the output is the same, only sooner."""
        m = self._last
        if m is None or m.length < self.params.draft_min_length or len(m.counts) != 1 or limit <= 0:
            return []
        if not generated or not m.following or generated[-1] != m.following[0]:
            return []
        return list(m.following[1 : 1 + limit])

    def _blank(self, token: int) -> bool:
        return self.blanks is not None and 0 <= token < len(self.blanks) and bool(self.blanks[token])

    def _as_model_would(self, token: int, logits: Logits) -> int:
        """`token`, or for a line break the model's favourite line break."""
        if self.blanks is None or token >= len(self.blanks) or self.blanks[token] != LINE_BREAK:
            return token
        if self._breaks is None:
            ids = np.flatnonzero(self.blanks == LINE_BREAK)
            self._breaks = ids[ids < logits.shape[-1]]
        ids = self._breaks
        return int(ids[int(logits[as_index(logits, ids)].argmax())]) if len(ids) else token
