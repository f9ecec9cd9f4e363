"""The decode loop both engines run: greedy, token by token, over a KV sequence kept across requests.

Hand-written rather than `model.generate` (or llama.cpp's samplers) because a completion needs,
together: (1) a cancellation check between every two tokens (a superseded keystroke must stop
within one token), (2) the evaluated tokens kept from one request to the next and cut back to the
longest common prefix, including the tokens generated last time (typed-ahead text matches them),
(3) a stop check on the decoded text after each token, (4) token healing (the first tokens are
picked among those that spell the text the prompt left out, see `server.prompt`), (5) workspace
∞-gram mixing on each logits row (`Guide.__call__`), and (6) copied tokens verified in one
evaluation (`Guide.draft`). An engine supplies only a `KVSequence`: evaluate tokens, give logits
rows, forget a tail.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from server.tokenizer import token_texts

log = logging.getLogger(__name__)

# Prompt tokens per evaluation in a prefill: big enough to keep matmuls efficient, small enough
# (~0.3 s for a 111M model on 2 busy cores) that a cancel is noticed quickly.
PREFILL_CHUNK = 128


class Guide(Protocol):
    """Reshapes each step's scores, and may propose copied tokens to verify (`NgramGuide`)."""

    def __call__(self, generated: list[int], logits: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
        """(generated ids, logits, the ids token healing allows at this step or None) -> scores."""
        ...

    def draft(self, generated: list[int], limit: int) -> list[int]:
        """Up to `limit` tokens likely to follow `generated` ([] for none)."""
        ...


class KVSequence(Protocol):
    """The tokens one cached sequence holds keys/values for, and how to extend or cut it."""

    ids: list[int]  # exactly the tokens whose keys/values are held

    def eval(self, ids: list[int], rows: int) -> torch.Tensor:
        """Append `ids` (extending `self.ids`); float logits [rows, vocab] after each of the last `rows`."""
        ...

    def truncate(self, keep: int) -> int:
        """Forget every token after the first `keep`; returns how many are kept (0 when the
        state cannot be cut, and was emptied instead)."""
        ...


@dataclass
class GenerationResult:
    text: str
    prompt_tokens: int
    prompt_tokens_computed: int
    new_tokens: int
    cancelled: bool
    token_ids: list[int] = field(default_factory=list)  # the generated ids (healed start included)
    drafted: int = 0  # copied tokens proposed by the guide and verified (see `Guide.draft`)
    draft_accepted: int = 0  # of those, the ones kept: tokens that cost no evaluation of their own
    prefill_ms: float = 0.0  # evaluating the prompt's new tail, up to the first token's logits
    decode_ms_per_token: float | None = None  # after the first token; None with fewer than two


class VocabIndex:
    """Token texts of a tokenizer, sorted so that the tokens starting with a given text are a range.

    Special tokens and tokens that decode to a partial UTF-8 sequence are left out.
    """

    CACHE = 256  # texts remembered: typing a word asks for the same ones again

    def __init__(self, tokenizer: Any, skip: set[int]) -> None:
        texts = token_texts(tokenizer)
        pairs = sorted((t, i) for i, t in enumerate(texts) if t and "\ufffd" not in t and i not in skip)
        self.texts: list[str] = texts
        self._sorted = [t for t, _ in pairs]
        self._ids = [i for _, i in pairs]
        self._by_text: dict[str, list[int]] = {}
        for t, i in pairs:
            self._by_text.setdefault(t, []).append(i)
        self._memo: OrderedDict[str, torch.Tensor] = OrderedDict()

    def starting_with(self, text: str) -> torch.Tensor:
        """Ids of the tokens whose text starts with `text`; if there are none, of the tokens
        whose text is a non-empty part of its start (to spell it in several steps)."""
        hit = self._memo.get(text)
        if hit is not None:
            self._memo.move_to_end(text)
            return hit
        lo = bisect.bisect_left(self._sorted, text)
        hi = bisect.bisect_left(self._sorted, text + "\U0010ffff")
        found = self._ids[lo:hi]
        if not found:
            found = [i for k in range(1, len(text)) for i in self._by_text.get(text[:k], ())]
        ids = torch.tensor(found, dtype=torch.long)
        self._memo[text] = ids
        while len(self._memo) > self.CACHE:
            self._memo.popitem(last=False)
        return ids


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass
class DecodeRequest:
    ids: list[int]
    max_new_tokens: int
    stop: Callable[[str], bool] | None
    cancel: threading.Event | None
    heal: str
    guide: Guide | None


def decode(
    seq: KVSequence,
    request: DecodeRequest,
    *,
    tokenizer: Any,
    stop_ids: set[int],
    index: VocabIndex | None,
    chunk: int = PREFILL_CHUNK,
) -> GenerationResult:
    """Greedy continuation of `request.ids` on `seq`, reusing what `seq` already holds.

    With `heal` (the text of the tokens the prompt stopped short of), the output must start with
    it, and `text` is what follows it; tokens that lie wholly inside `heal` do not count against
    `max_new_tokens`. `guide(generated_ids, logits, allowed)` may reshape each step's scores
    before the argmax; `allowed` is the ids healing still permits (None once `heal` is spelled).
    `index` is required when `heal` is set. `seq` is left holding exactly the evaluated tokens.
    """
    ids, max_new_tokens, stop, cancel, heal, guide = (
        request.ids, request.max_new_tokens, request.stop, request.cancel, request.heal, request.guide
    )
    prompt_tokens = len(ids)
    start = time.perf_counter()
    # Keep at least the last prompt token to evaluate: its logits give the first new token.
    reuse = seq.truncate(min(common_prefix(seq.ids, ids), len(ids) - 1))
    feed = ids[reuse:]
    computed = len(feed)
    # Long prompts go in chunks with a cancel check between them, so that a superseded request
    # stops soon even in a cold prefill; what was evaluated stays in `seq`.
    while len(feed) > chunk:
        part, feed = feed[:chunk], feed[chunk:]
        seq.eval(part, rows=1)
        if cancel is not None and cancel.is_set():
            return GenerationResult("", prompt_tokens, len(seq.ids) - reuse, 0, cancelled=True)

    generated: list[int] = []
    text = ""
    cancelled = False
    # Token healing: the output must start with `heal`. Each step picks the best token that
    # starts with what is left of it (the prompt's own tokens always qualify, and so does a
    # longer one such as ` chance` for ` c`); only when no token does (an unknown word) does it
    # spell `heal` in parts. Offering the parts always would lead small models astray (measured
    # on the tests' trained tiny model: 100 vs 79 of 370 mid-word cuts exact).
    pending = heal  # what the output has not spelled yet
    forced = 0  # generated tokens that lie wholly inside `heal` (they add no new text)
    draft: list[int] = []  # copied tokens fed after feed[0], verified by the same evaluation
    drafted = accepted_drafts = 0
    first_token_at: float | None = None
    done = False
    while not done:
        rows = seq.eval(feed, rows=len(draft) + 1)
        if first_token_at is None:
            first_token_at = time.perf_counter()
        for j in range(len(draft) + 1):
            # Row j holds the scores after feed[j]: what plain decoding would see there.
            logits = rows[j]
            allowed = index.starting_with(pending) if pending and index is not None else None
            if guide is not None:
                logits = guide(generated, logits, allowed)
            if allowed is not None and index is not None:
                if allowed.numel() == 0:  # nothing spells it (cannot happen for ASCII `heal`)
                    next_id = -1
                else:
                    next_id = int(allowed[int(logits[allowed.to(logits.device)].argmax())])
                    piece = index.texts[next_id]
                    forced += len(piece) <= len(pending)
                    pending = pending[len(piece) :] if len(piece) < len(pending) else ""
            else:
                next_id = int(logits.argmax())
            go_on = next_id >= 0 and next_id not in stop_ids
            if go_on:
                generated.append(next_id)
                if not pending:  # `heal` is spelled: from here on the text is the completion
                    decoded = tokenizer.decode(generated, skip_special_tokens=True)
                    if not decoded.startswith(heal):  # cannot happen for ASCII `heal`: never emit a wrong start
                        log.debug("healed output %r does not start with %r", decoded, heal)
                        go_on = False
                    else:
                        text = decoded[len(heal) :]
                        if len(generated) - forced >= max_new_tokens or (stop is not None and stop(text)):
                            go_on = False
                if go_on and cancel is not None and cancel.is_set():
                    cancelled, go_on = True, False
            accepted = j < len(draft) and next_id == draft[j]
            accepted_drafts += accepted
            if accepted and go_on:
                continue  # draft[j] is in `seq` already: check the next row
            # The rest of the draft was evaluated but not chosen: out of the sequence it goes.
            unused = len(draft) - j - (1 if accepted else 0)
            if unused:
                seq.truncate(len(seq.ids) - unused)
            if not go_on:
                done = True
            else:
                limit = max_new_tokens - (len(generated) - forced)
                draft = guide.draft(generated, limit) if guide is not None and not pending else []
                drafted += len(draft)
                feed = [next_id, *draft]
            break
    end = time.perf_counter()
    first = first_token_at if first_token_at is not None else end
    return GenerationResult(
        text,
        prompt_tokens,
        computed,
        len(generated),
        cancelled,
        generated,
        drafted,
        accepted_drafts,
        prefill_ms=(first - start) * 1000.0,
        decode_ms_per_token=(end - first) * 1000.0 / (len(generated) - 1) if len(generated) > 1 else None,
    )
