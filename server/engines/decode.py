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

import numpy as np

from server.logits import Logits, as_index
from server.tokenizer import token_texts

log = logging.getLogger(__name__)

# Prompt tokens per evaluation in a prefill: big enough to keep matmuls efficient, small enough
# (~0.3 s for a 111M model on 2 busy cores) that a cancel is noticed quickly.
PREFILL_CHUNK = 128
# Copied tokens verified in one evaluation at most: a longer run is checked in several.
MAX_DRAFT = 63


class Guide(Protocol):
    """Reshapes each step's scores, and may propose copied tokens to verify (`NgramGuide`)."""

    def __call__(self, generated: list[int], logits: Logits, allowed: np.ndarray | None) -> Logits:
        """(generated ids, logits, the ids token healing allows at this step or None) -> scores."""
        ...

    def draft(self, generated: list[int], limit: int) -> list[int]:
        """Up to `limit` tokens likely to follow `generated` ([] for none)."""
        ...


class KVSequence(Protocol):
    """The tokens one cached sequence holds keys/values for, and how to extend or cut it."""

    ids: list[int]  # exactly the tokens whose keys/values are held

    def eval(self, ids: list[int], rows: int) -> Logits:
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
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()

    def starting_with(self, text: str) -> np.ndarray:
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
        ids = np.asarray(found, dtype=np.int64)
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
    ids, prompt_tokens = request.ids, len(request.ids)
    start = time.perf_counter()
    # Keep at least the last prompt token to evaluate: its logits give the first new token.
    reuse = seq.truncate(min(common_prefix(seq.ids, ids), len(ids) - 1))
    computed = len(ids) - reuse
    feed = _prefill(seq, ids[reuse:], chunk, request.cancel)
    if feed is None:
        return GenerationResult("", prompt_tokens, len(seq.ids) - reuse, 0, cancelled=True)
    steps = _Steps(request, tokenizer, stop_ids, index)
    first = _generate(seq, steps, feed)
    end = time.perf_counter()
    n = len(steps.generated)
    return GenerationResult(
        steps.text,
        prompt_tokens,
        computed,
        n,
        steps.cancelled,
        steps.generated,
        steps.drafted,
        steps.accepted,
        prefill_ms=(first - start) * 1000.0,
        decode_ms_per_token=(end - first) * 1000.0 / (n - 1) if n > 1 else None,
    )


def _prefill(seq: KVSequence, feed: list[int], chunk: int, cancel: threading.Event | None) -> list[int] | None:
    """Evaluate all but the last `chunk` tokens of `feed` in chunks, with a cancel check between
    them (a superseded request stops soon even in a cold prefill; what was evaluated stays in
    `seq`). The rest, to evaluate with the first step; None when cancelled."""
    while len(feed) > chunk:
        part, feed = feed[:chunk], feed[chunk:]
        seq.eval(part, rows=1)
        if cancel is not None and cancel.is_set():
            return None
    return feed


def _generate(seq: KVSequence, steps: _Steps, feed: list[int]) -> float:
    """Evaluate `feed` and go on token by token (a drafted run of tokens in one evaluation, the
    agreeing prefix kept and the rest cut from `seq`) until `steps` says stop. Returns when the
    first token's logits were ready."""
    draft: list[int] = []  # copied tokens fed after feed[0], verified by the same evaluation
    first: float | None = None
    while True:
        rows = seq.eval(feed, rows=len(draft) + 1)
        if first is None:
            first = time.perf_counter()
        for j in range(len(draft) + 1):
            # Row j holds the scores after feed[j]: what plain decoding would see there.
            next_id = steps.pick(rows[j])
            go_on = steps.take(next_id)
            accepted = j < len(draft) and next_id == draft[j]
            steps.accepted += accepted
            if accepted and go_on:
                continue  # draft[j] is in `seq` already: check the next row
            # The rest of the draft was evaluated but not chosen: out of the sequence it goes.
            unused = len(draft) - j - (1 if accepted else 0)
            if unused:
                seq.truncate(len(seq.ids) - unused)
            if not go_on:
                return first
            draft = steps.next_draft()
            feed = [next_id, *draft]
            break


class _Steps:
    """The choices of one request after its prompt: a token per logits row (token healing, the
    guide), the stop, length and cancel checks, and the drafts to verify.

    Token healing: the output must start with `heal`. Each step picks the best token that starts
    with what is left of it (the prompt's own tokens always qualify, and so does a longer one such
    as ` chance` for ` c`); only when no token does (an unknown word) does it spell `heal` in
    parts. Offering the parts always would lead small models astray (measured on the tests'
    trained tiny model: 100 vs 79 of 370 mid-word cuts exact).
    """

    def __init__(self, request: DecodeRequest, tokenizer: Any, stop_ids: set[int], index: VocabIndex | None) -> None:
        self.request, self.tokenizer, self.stop_ids, self.index = request, tokenizer, stop_ids, index
        self.generated: list[int] = []
        self.text = ""
        self.cancelled = False
        self.pending = request.heal  # what the output has not spelled yet
        self.forced = 0  # generated tokens that lie wholly inside `heal` (they add no new text)
        self.drafted = self.accepted = 0

    def pick(self, logits: Logits) -> int:
        """The greedy choice for one row (-1: nothing can spell what healing still needs)."""
        index, pending = self.index, self.pending
        allowed = index.starting_with(pending) if pending and index is not None else None
        if self.request.guide is not None:
            logits = self.request.guide(self.generated, logits, allowed)
        if allowed is None or index is None:
            return int(logits.argmax())
        if allowed.size == 0:  # cannot happen for ASCII `heal`
            return -1
        next_id = int(allowed[int(logits[as_index(logits, allowed)].argmax())])
        piece = index.texts[next_id]
        self.forced += len(piece) <= len(pending)
        self.pending = pending[len(piece) :] if len(piece) < len(pending) else ""
        return next_id

    def take(self, next_id: int) -> bool:
        """Add `next_id` to the output; whether to go on after it."""
        request = self.request
        if next_id < 0 or next_id in self.stop_ids:
            return False
        self.generated.append(next_id)
        if not self.pending:  # `heal` is spelled: from here on the text is the completion
            decoded = self.tokenizer.decode(self.generated, skip_special_tokens=True)
            if not decoded.startswith(request.heal):  # cannot happen for ASCII `heal`: never emit a wrong start
                log.debug("healed output %r does not start with %r", decoded, request.heal)
                return False
            self.text = decoded[len(request.heal) :]
            if len(self.generated) - self.forced >= request.max_new_tokens:
                return False
            if request.stop is not None and request.stop(self.text):
                return False
        if request.cancel is not None and request.cancel.is_set():
            self.cancelled = True
            return False
        return True

    def next_draft(self) -> list[int]:
        """Copied tokens the guide expects next, to verify with the next token ([] while healing)."""
        guide = self.request.guide
        if guide is None or self.pending:
            return []
        limit = min(MAX_DRAFT, self.request.max_new_tokens - (len(self.generated) - self.forced))
        draft = guide.draft(self.generated, limit)
        self.drafted += len(draft)
        return draft
