"""The prompt to complete with: token ids within a budget, cut where typing keeps the KV cache.

`build_prompt` makes the token ids: SPM fill-in-the-middle (`<fim_suffix>suffix<fim_prefix>
prefix<fim_middle>`, `server.fim`) when the tokenizer has FIM tokens, else the prefix alone,
within a token budget. The prefix is cut on the left at a *stable* place, so that typing a
character changes only the last tokens of the prompt and the engine can reuse its KV cache (see
`_window_start`).

Token healing (`heal=True`): the cursor usually sits inside a word (`let radio = c|`), whose
last token (` c`) is one the model rarely saw followed by the rest of that word (` chance` is
one token in training text). So the prompt stops *before* the tokens of the word being typed
(or before the last token, after punctuation or a line break), and the engine makes the
completion start with their text (`Prompt.heal`), which it then strips: the model picks
` chance` itself. Applied to short ASCII tails only.
"""

from __future__ import annotations

import bisect
import re
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.fim import MIDDLE, PREFIX, SUFFIX, fim_ids, layout

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_WORD_TAIL = re.compile(r"[A-Za-z0-9_$]*\Z")  # the identifier characters right before the cursor

FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX = PREFIX, MIDDLE, SUFFIX  # the FIM tokens, as the tests name them
SUFFIX_SHARE = 0.25  # the prefix predicts the next tokens far better than the suffix does
SUFFIX_MAX_CHARS_PER_TOKEN = 8  # chars of suffix looked at per budget token (code is ~3-4 chars/token)
PREFIX_MAX_CHARS_PER_TOKEN = 8  # same for the prefix: bounds tokenizer work on huge files
# The window start only moves in steps of this many chars per budget token: a larger step keeps
# the KV cache valid for longer, a smaller one wastes less of the budget after a move.
WINDOW_STEP_CHARS_PER_TOKEN = 0.5
CURSOR_LINE_RESERVE = 0.125  # budget share kept for the cursor line, so typing on it doesn't move the cut
MIN_WINDOW_STEP = 32  # tiny budgets still move in steps of at least a line
MAX_HEAL_CHARS = 24  # a longer last token is not a half-typed word: leave it in the prompt


@dataclass
class Prompt:
    input_ids: list[int]
    prompt_tokens: int
    fim: bool
    prefix: str  # the part of the prefix that the prompt covers (`heal` included)
    suffix: str  # the part of the suffix that is in the prompt ("" without FIM)
    heal: str = ""  # the tail of `prefix` left out of input_ids: the completion must start with it
    prefix_ids: list[int] = field(default_factory=list)  # the prefix's ids inside input_ids
    suffix_ids: list[int] = field(default_factory=list)  # the suffix's ids inside input_ids (FIM)


Tokenize = Callable[[str], tuple[list[int], list[int]]]  # text -> (ids, start char of each id)

_TOKENIZED: weakref.WeakKeyDictionary[Any, OrderedDict[str, tuple[list[int], list[int]]]] = (
    weakref.WeakKeyDictionary()
)
TOKENIZED_CACHE = 4  # the text before the cursor line is the same for every keystroke on it


def _tokenizer_fn(tokenizer: Any) -> Tokenize:
    """Token ids with the start offset of each, treating special-token text as plain text."""
    try:
        memo = _TOKENIZED.setdefault(tokenizer, OrderedDict())
    except TypeError:  # not weak-referenceable: no memo
        memo = OrderedDict()

    def tokenize(text: str) -> tuple[list[int], list[int]]:
        if not text:
            return [], []
        if text in memo:
            memo.move_to_end(text)
            return memo[text]
        # split_special_tokens: "<|endoftext|>" written in a file must not end the prompt.
        enc = tokenizer(
            text, add_special_tokens=False, split_special_tokens=True, return_offsets_mapping=True
        )
        result = list(enc["input_ids"]), [start for start, _ in enc["offset_mapping"]]
        if len(text) > 1000:  # only long texts are worth remembering
            memo[text] = result
            while len(memo) > TOKENIZED_CACHE:
                memo.popitem(last=False)
        return result

    return tokenize


def _anchor(text: str, threshold: int, step: int) -> int:
    """The first line start in [threshold, threshold + step), else `threshold` itself."""
    if threshold <= 0:
        return 0
    if threshold >= len(text):
        return len(text)
    brk = _LINE_BREAK.search(text, threshold - 1, min(len(text), threshold + step) - 1)
    return brk.end() if brk else threshold


def _window_start(prefix: str, limit: int, tokenize: Tokenize) -> tuple[list[int], int, list[int]]:
    """Token ids of a stable left-cut of `prefix` that fits `limit` tokens, the cut, and where
    each of the last tokens (those of the cursor line) starts, aligned with the end of the ids
    (all offsets are str indices into `prefix`).

    The prefix is split before the line break that starts the cursor line: the head (earlier
    lines) does not change while the user types on that line; the tail is the break and the
    cursor line. Candidate cuts sit at thresholds k * step (k = 0, 1, ...), each moved to the
    first line start within the step. The cut is the first candidate whose head tokens fit the
    budget minus a reserve for the tail. That depends on the head only, and the head only grows
    while typing, so the cut stays put for many keystrokes and then jumps a whole step forward.
    """
    n = len(prefix)
    if limit <= 0 or n == 0:
        return [], n, []
    line_start = max(prefix.rfind("\n"), prefix.rfind("\r")) + 1
    split = line_start - (2 if prefix.endswith("\r\n", 0, line_start) else 1) if line_start else 0
    tail_ids, tail_starts = tokenize(prefix[split:])
    tail_abs = [split + start for start in tail_starts]
    reserve = max(len(tail_ids), int(limit * CURSOR_LINE_RESERVE))
    step = max(MIN_WINDOW_STEP, int(limit * WINDOW_STEP_CHARS_PER_TOKEN))
    k = max(0, split - limit * PREFIX_MAX_CHARS_PER_TOKEN) // step
    base = _anchor(prefix, k * step, step) if split else 0
    head_ids, head_starts = tokenize(prefix[base:split]) if base < split else ([], [])
    while True:
        cut = _anchor(prefix, k * step, step)
        if cut >= split:
            break
        # Begin with the token that holds the cut (a "\n " token holds the indentation's
        # first space): cutting mid-token would lose text.
        first = max(0, bisect.bisect_right(head_starts, cut - base) - 1)
        if len(head_ids) - first + reserve <= limit:
            return head_ids[first:] + tail_ids, base + head_starts[first], tail_abs
        k += 1
    if len(tail_ids) <= limit:
        return tail_ids, split, tail_abs
    # The cursor line alone is over budget (minified code): keep its last tokens.
    return tail_ids[-limit:], split + tail_starts[-limit], tail_abs[-limit:]


def _suffix_head(suffix: str, limit: int, tokenize: Tokenize) -> tuple[list[int], int]:
    """Ids of the start of `suffix` within `limit` tokens, ending at a line end when possible."""
    if limit <= 0 or not suffix:
        return [], 0
    head = suffix[: limit * SUFFIX_MAX_CHARS_PER_TOKEN]
    ids, starts = tokenize(head)
    if len(ids) <= limit and len(head) == len(suffix):
        return ids, len(suffix)
    # Cut before the first token that doesn't fit, then back to the end of a line.
    over = starts[limit] if len(ids) > limit else len(head)
    line_end = max(head.rfind("\n", 0, over), head.rfind("\r", 0, over))
    end = line_end + 1 if line_end > 0 else over
    keep = bisect.bisect_left(starts, end)
    return ids[:keep], (starts[keep] if keep < len(starts) else len(head))


def _heal(prefix: str, ids: list[int], starts: list[int], keep: int) -> int:
    """How many of the last prompt tokens to leave out for healing (0 = none).

    The tokens of the word being typed (the identifier characters before the cursor, from the
    token that holds the word's first character), else the last token. `starts` are where the
    last tokens begin, aligned with the end of `ids`; `keep` is how many tokens must stay.
    Only short ASCII tails: a multi-byte character can straddle two byte-level tokens, and then
    a token's text is not a whole string of its own.
    """
    if not starts:
        return 0
    word = len(prefix) - len(_WORD_TAIL.search(prefix).group())  # type: ignore[union-attr]
    first = max(0, bisect.bisect_right(starts, word) - 1) if word < len(prefix) else len(starts) - 1
    count = len(starts) - first
    tail = prefix[starts[first] :]
    if len(ids) - count < keep or not tail or len(tail) > MAX_HEAL_CHARS or not tail.isascii():
        return 0
    return count


def _heal_whitespace(
    prefix: str, ids: list[int], starts: list[int], tokenize: Tokenize
) -> tuple[list[int], str] | None:
    """Prompt ids and heal text for a prefix that ends in spaces or tabs (a cursor after the
    indentation, or after `a, `), or None when it does not.

    Byte-level BPE splits `\n    let` as `\n   ` + ` let`: the last space belongs to the next
    word. A prompt that ends `\n    ` holds a token the model only ever saw before more
    whitespace, so healing that token (the output must start with it) leads to a longer run or a
    comment line. Instead the run is tokenized as if a word followed (a probe character): the
    tokens before the probe's go in the prompt, and the whitespace that the probe's token took
    (` `, or none after a tab) is what the completion must start with.
    """
    if not prefix.endswith((" ", "\t")):
        return None  # at a line start the model may still choose the indentation (`_heal`)
    ws_start = max(len(prefix.rstrip()), starts[0] if starts else len(prefix))
    if not prefix[ws_start:].isascii():
        return None
    keep = bisect.bisect_left(starts, ws_start)
    if keep == len(starts) or starts[keep] != ws_start:
        return None  # the run does not start a token: leave the prompt as it is
    run = prefix[ws_start:]
    probe_ids, probe_starts = tokenize(run + "x")
    if not probe_ids or probe_starts[-1] > len(run):
        return None
    kept = ids[: len(ids) - (len(starts) - keep)]
    return [*kept, *probe_ids[:-1]], run[probe_starts[-1] :]


def start_ids(tokenizer: Any) -> list[int]:
    """The prompt of an empty prefix: the token that starts a text (BOS; GPT-2-style models train
    on files joined by EOS, so there EOS is what comes before a file), or [] when there is none."""
    for name in ("bos_token_id", "eos_token_id"):
        token = getattr(tokenizer, name, None)
        if isinstance(token, int):
            return [token]
    return []


def build_prompt(
    tokenizer: Any, prefix: str, suffix: str, max_prompt_tokens: int, *, heal: bool = False, fim: bool = True
) -> Prompt:
    """The prompt ids for completing between `prefix` and `suffix` within `max_prompt_tokens`.

    With `heal`, the prefix's last token is left out and returned as `Prompt.heal` (see the
    module docstring); the engine's `generate(..., heal=...)` must then be given it. With `fim`
    and a tokenizer that has FIM tokens the prompt is fill-in-the-middle (SPM); otherwise it is
    the prefix alone, or `start_ids` when the prefix is empty (the ids are then [] only for a
    tokenizer without BOS and EOS: the caller declines).
    """
    tokenize = _tokenizer_fn(tokenizer)
    special = fim_ids(tokenizer) if fim else None
    if special is None:
        ids, cut, starts = _window_start(prefix, max_prompt_tokens, tokenize)
        healed = _heal_whitespace(prefix, ids, starts, tokenize) if heal else None
        if healed is not None and healed[0]:
            ids, tail = healed
        else:
            drop = _heal(prefix, ids, starts, keep=1) if heal else 0
            tail = prefix[starts[-drop] :] if drop else ""
            ids = ids[: len(ids) - drop]
        if not ids:  # nothing before the cursor (a new file): continue from the start of a text
            start = start_ids(tokenizer)
            return Prompt(start, len(start), False, prefix[cut:], "", "")
        return Prompt(ids, len(ids), False, prefix[cut:], "", tail, prefix_ids=ids)
    fim_prefix, fim_middle, fim_suffix = special
    budget = max(2, max_prompt_tokens - 3)
    suffix_ids, suffix_end = _suffix_head(suffix, int(budget * SUFFIX_SHARE), tokenize)
    prefix_ids, cut, starts = _window_start(prefix, budget - len(suffix_ids), tokenize)
    healed = _heal_whitespace(prefix, prefix_ids, starts, tokenize) if heal else None
    if healed is not None:
        prefix_ids, tail = healed
    else:
        drop = _heal(prefix, prefix_ids, starts, keep=0) if heal else 0
        tail = prefix[starts[-drop] :] if drop else ""
        prefix_ids = prefix_ids[: len(prefix_ids) - drop]
    ids = layout((fim_prefix, fim_middle, fim_suffix), prefix_ids, suffix_ids, spm=True)
    return Prompt(
        ids, len(ids), True, prefix[cut:], suffix[:suffix_end], tail, prefix_ids=prefix_ids, suffix_ids=suffix_ids
    )


def natural_tail_ids(tokenizer: Any, prefix: str, heal: str, chars: int) -> list[int]:
    """The ids of the last `chars` of `prefix`, up to where `heal` starts, as the tokenizer
    splits them inside running text.

    A prompt's own ids differ from that at its seams (the window start, the cursor line's break,
    a trailing space run: see `_heal_whitespace`), and a lookup over files tokenized whole only
    matches the text's natural split. The text is tokenized as if a word followed it; the first
    token (maybe cut by `chars`) is dropped, and so is a token that straddles the heal's start.
    """
    tail = prefix[-chars:] if chars < len(prefix) else prefix
    end = len(tail) - len(heal)
    if end <= 0:
        return []
    ids, starts = _tokenizer_fn(tokenizer)(tail + "x" if tail[-1].isspace() else tail)
    keep = bisect.bisect_left(starts, end)  # tokens starting before `end`
    if keep and (keep == len(starts) or starts[keep] != end) and (keep < len(starts) or len(tail) != end):
        keep -= 1  # the last kept token runs past `end`
    first = 1 if len(tail) < len(prefix) else 0
    return ids[first:keep]
