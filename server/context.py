"""Where to complete, how much, and the prompt to complete it with.

`should_complete` asks tree-sitter-javascript (or, for documents too big to parse, a line-level
scan) whether the cursor is in code: no completion inside comments, regex and template literals,
or right before identifier text (template literal substitutions `${...}` are code, so they do
complete). Plain string literals complete only where the text is predictable from the code around
it: a call's argument (`require('./li|')`, `test('parses |')`, `el.on('cl|')`) or an import/export
source; there the completion is single-line and ends before the string's closing quote when the
editor auto-closed it (`Decision.quote`, used by post-processing), else at the line's end. Other strings (`const s = 'a|'`) do not complete.
It also decides single- vs multi-line: multi-line when the cursor is on the blank line of an
empty block body (`{` newline cursor, then `}` or end of file).

`build_prompt` makes the token ids: SPM fill-in-the-middle (`<fim_suffix>suffix<fim_prefix>
prefix<fim_middle>`) when the tokenizer has FIM tokens, else the prefix alone, within a token
budget. The prefix is cut on the left at a *stable* place, so that typing a character changes
only the last tokens of the prompt and the engine can reuse its KV cache (see `_window_start`).

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

from tree_sitter import Node, Tree

from server.documents import TREE_MAX_BYTES, new_parser, utf8
from server.fim import MIDDLE, PREFIX, SUFFIX, fim_ids, layout

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

BLOCK_TYPES = frozenset({"statement_block", "class_body", "object", "switch_body"})
STRING_TYPES = frozenset({"string", "template_string", "regex"})
# Where the model is never asked but a sure copy is offered (`Decision.copy_only`): measured on the
# dev sets, 11 of the 40 mid-line rows the server declined there had a sure copy that was right.
COPY_ONLY_PLACES = frozenset({"string", "comment"})
CODE_IN_STRING_TYPES = frozenset({"template_substitution"})
# Parents of a plain string literal whose text the code around it predicts: call arguments
# (module paths, test names, event names, selectors) and import/export sources.
COMPLETABLE_STRING_PARENTS = frozenset({"arguments", "import_statement", "export_statement"})
STRING_ARGUMENT = "string argument"  # the `where` of such a string
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_WORD_TAIL = re.compile(r"[A-Za-z0-9_$]*\Z")  # the identifier characters right before the cursor
HEURISTIC_LOOKBACK = 20_000  # chars searched for an open /* when there is no tree


@dataclass
class Decision:
    complete: bool
    multiline: bool
    reason: str
    quote: str = ""  # completing inside a string literal opened with this quote: stop at its close
    # Not completed by the model, but a sure copy from elsewhere may still be offered (plain
    # strings and comments: licence headers, repeated messages and keys; `Completer`).
    copy_only: bool = False


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


# ----------------------------------------------------------------------------------------------
# should_complete


def is_identifier_char(ch: str) -> bool:
    return ch.isalnum() or ch in "_$"


def should_complete(text: str, offset: int, tree: Tree | None, multiline: str) -> Decision:
    """Decide whether to complete at `offset` (a str index into `text`) and if multi-line.

    `tree` must be the parse of `text`; when None, `text` is parsed here unless it is too big.
    `multiline` is the setting: "auto", "never" or "always".
    """
    if not 0 <= offset <= len(text):
        return Decision(False, False, f"offset {offset} outside the document")
    if tree is None and len(text) <= TREE_MAX_BYTES:
        data = utf8(text)
        if len(data) <= TREE_MAX_BYTES:
            tree = new_parser().parse(data)
    byte = len(utf8(text[:offset])) if tree is not None else 0
    found = _where_tree(tree.root_node, byte) if tree is not None else None
    where, quote = found if found is not None else _where_heuristic(text, offset)
    identifier_right = offset < len(text) and is_identifier_char(text[offset])
    if where not in ("code", STRING_ARGUMENT):
        copy_only = where in COPY_ONLY_PLACES and not identifier_right
        return Decision(False, False, f"inside a {where}", copy_only=copy_only)
    if identifier_right:
        return Decision(False, False, "identifier right of the cursor")
    if where == STRING_ARGUMENT:
        return Decision(True, False, f"single-line ({where})", quote)
    if multiline == "never":
        return Decision(True, False, "single-line (setting)")
    if multiline == "always":
        return Decision(True, True, "multi-line (setting)")
    if _opens_empty_block(text, offset, tree):
        return Decision(True, True, "empty block body")
    return Decision(True, False, "single-line")


def _descend(root: Node, byte: int, *, touching: bool) -> list[Node]:
    """Nodes from the root down that contain `byte` (strictly inside, or also at their end)."""
    path = [root]
    while True:
        for child in path[-1].children:
            if child.start_byte < byte and (byte < child.end_byte or (touching and byte == child.end_byte)):
                path.append(child)
                break
            if child.start_byte >= byte:
                return path
        else:
            return path


def _where_tree(root: Node, byte: int) -> tuple[str, str] | None:
    """('code' | 'comment' | 'string' | 'regex' | STRING_ARGUMENT, opening quote) at `byte`;
    None when the cursor is in an ERROR."""
    innermost: tuple[str, str] = ("code", "")
    for node in _descend(root, byte, touching=False)[1:]:
        if node.type == "comment":
            return ("comment", "")
        if node.type in STRING_TYPES:
            innermost = ("regex", "") if node.type == "regex" else ("string", "")
            if node.type == "string" and node.parent is not None and node.parent.type in COMPLETABLE_STRING_PARENTS:
                innermost = (STRING_ARGUMENT, (node.text or b"'")[:1].decode())
        elif node.type in CODE_IN_STRING_TYPES:
            innermost = ("code", "")
    if innermost[0] != "code":
        return innermost
    # Nodes that end right at the cursor: a // comment runs to the end of its line. Inside an
    # ERROR (an unterminated string or /* comment, say) the tree can't tell: the caller guesses.
    touching = _descend(root, byte, touching=True)
    # Only an ERROR at the cursor's own level counts: one high up (tree-sitter failing on some
    # construct elsewhere in the file) wraps well-parsed blocks the cursor is in.
    deepest_block = max((i for i, node in enumerate(touching) if node.type in BLOCK_TYPES), default=-1)
    if any(node.type == "ERROR" for node in touching[deepest_block + 1 :]):
        return None
    last = touching[-1]
    if last.type == "comment" and (last.text or b"").startswith(b"//"):
        return ("comment", "")
    return ("code", "")


_ARGUMENT_BEFORE_QUOTE = re.compile(r"[(,]\s*\Z")
_IMPORT_BEFORE_QUOTE = re.compile(r"\b(?:from|import)\s*\Z")


@dataclass
class _LineEnd:
    """Where the end of a scanned line is: in a comment, in a string opened by `quote` at
    `opened_at`, or in code, with the brackets left open on the line."""

    comment: bool = False
    quote: str = ""
    opened_at: int = 0
    brackets: list[str] = field(default_factory=list)


def _scan_line(line: str) -> _LineEnd:
    """A tokenizer-less look at one line of JavaScript: strings, comments and brackets."""
    end = _LineEnd()
    i = 0
    while i < len(line):
        ch = line[i]
        if end.quote:
            if ch == "\\":
                i += 1
            elif ch == end.quote:
                end.quote = ""
            elif end.quote == "`" and line.startswith("${", i):
                end.quote = ""  # template substitution: code again (nesting is not tracked)
        elif ch in "'\"`":
            end.quote, end.opened_at = ch, i
        elif ch in "([{":
            end.brackets.append(ch)
        elif ch in ")]}" and end.brackets:
            end.brackets.pop()
        elif line.startswith("//", i):
            end.comment = True
            return end
        elif line.startswith("/*", i):
            close = line.find("*/", i + 2)
            if close == -1:
                end.comment = True
                return end
            i = close + 1
        i += 1
    return end


def _opens_comment(text: str, at: int) -> bool:
    """Whether the `/*` at `at` is code: not inside a string or a comment on its line."""
    before = _scan_line(text[text.rfind("\n", 0, at) + 1 : at])
    return not before.comment and not before.quote


def _where_heuristic(text: str, offset: int) -> tuple[str, str]:
    """Line-level guess for documents too big to parse (or a cursor in an ERROR): open /*, //, or
    an odd quote. A quote right after `from`/`import`, or after `(` or `,` with a `(` as the
    innermost bracket open on the line, opens a string argument."""
    window = text[max(0, offset - HEURISTIC_LOOKBACK) : offset]
    line_start = max(window.rfind("\n"), window.rfind("\r")) + 1
    opened = window.rfind("/*")
    while opened > 0 and not _opens_comment(window, opened):
        opened = window.rfind("/*", 0, opened)  # `// ... /*` and `'src/**/*.js'` open nothing
    if opened > window.rfind("*/") and opened < line_start:
        return ("comment", "")
    line = window[line_start:]
    end = _scan_line(line)
    if end.comment:
        return ("comment", "")
    if not end.quote:
        return ("code", "")
    quote, opened_at, brackets = end.quote, end.opened_at, end.brackets
    before = line[:opened_at]
    in_call = bool(brackets) and brackets[-1] == "(" and _ARGUMENT_BEFORE_QUOTE.search(before) is not None
    if quote != "`" and (in_call or _IMPORT_BEFORE_QUOTE.search(before)):
        return (STRING_ARGUMENT, quote)
    return ("string", "")


def _opens_empty_block(text: str, offset: int, tree: Tree | None) -> bool:
    """True when the cursor is on a blank line right after `{` and before `}` (or EOF)."""
    line_start = max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1
    if text[line_start:offset].strip():
        return False
    before = text[:line_start].rstrip()
    if not before.endswith("{"):
        return False
    after = text[offset:].lstrip()
    if after and not after.startswith("}"):
        return False
    if tree is None:
        return True
    brace_byte = len(utf8(before)) - 1
    node = tree.root_node.descendant_for_byte_range(brace_byte, brace_byte + 1)
    return (
        node is not None and node.type == "{" and node.parent is not None and node.parent.type in BLOCK_TYPES
    )


# ----------------------------------------------------------------------------------------------
# build_prompt

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
