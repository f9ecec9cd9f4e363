"""Post-processing of raw model output: small pure filters, applied in the order of `FILTERS`.

Each filter takes the completion so far and the context around the cursor and returns the
(possibly shorter) completion. They are written by hand: no library knows JavaScript blocks,
brackets and the text around an editor cursor. `stop_reached` lets the engine stop generating
as soon as the first filter would cut the text anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = {v: k for k, v in OPENERS.items()}
QUOTES = "'\"`"
REPEAT_LINES = 3  # the same line this many times in a row is a model loop, not code
REPEAT_UNIT_MAX = 8  # short units ("a, ", "))") looping inside one line...
REPEAT_UNIT_TIMES = 6  # ...this many times in a row
REPEAT_LONG_UNIT_MAX = 32  # longer units (".replace(b, '')") looping to the end of the line...
REPEAT_LONG_UNIT_TIMES = 3  # ...this many whole times in a row (a cut-off copy may follow)
TAB_WIDTH = 4  # for comparing indentation made of tabs and spaces


@dataclass
class PostContext:
    prefix: str
    suffix: str
    multiline: bool
    quote: str = ""  # the cursor is inside a string literal opened with this quote


Filter = Callable[[str, PostContext], str]


# ----------------------------------------------------------------------------------------------
# helpers


def _indent(line: str) -> int:
    return len(line.expandtabs(TAB_WIDTH)) - len(line.expandtabs(TAB_WIDTH).lstrip())


def _cursor_line(prefix: str) -> str:
    return prefix[max(prefix.rfind("\n"), prefix.rfind("\r")) + 1 :]


def _rest_of_line(suffix: str) -> str:
    ends = [i for i in (suffix.find("\n"), suffix.find("\r")) if i != -1]
    return suffix[: min(ends)] if ends else suffix


def _string_end(text: str, quote: str) -> int | None:
    """Index of the first unescaped `quote` in `text` (which starts inside a string literal)."""
    i = 0
    while quote and i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == quote:
            return i
        else:
            i += 1
    return None


def _next_lines(suffix: str) -> list[str]:
    """The non-blank lines after the cursor line, stripped."""
    return [line.strip() for line in suffix.splitlines()[1:] if line.strip()]


def unmatched_closers(text: str) -> Iterator[int]:
    """Indexes of closing brackets in `text` that close something opened before it.

    Brackets inside string literals and // comments are skipped (one line at a time).
    """
    stack: list[str] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote or (ch == "\n" and quote != "`"):
                quote = ""
        elif ch in QUOTES:
            quote = ch
        elif text.startswith("//", i):
            newline = text.find("\n", i)
            i = len(text) if newline == -1 else newline
            continue
        elif ch in OPENERS:
            stack.append(ch)
        elif ch in CLOSERS:
            if stack and stack[-1] == CLOSERS[ch]:
                stack.pop()
            elif not stack:
                yield i
        i += 1


def _block_end(text: str, ctx: PostContext) -> int | None:
    """Where a multi-line completion leaves the block it started in, if it does.

    That is the first line indented less than the body (the cursor line's indentation, or the
    completion's first line's when the cursor line is blank), or the first bracket that closes
    something opened before the cursor. A closing line is dropped whole, with its line break.
    """
    cursor_line = _cursor_line(ctx.prefix)
    lines = text.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), 0)
    if cursor_line.strip():
        body = _indent(cursor_line)
    else:
        body = _indent(cursor_line + lines[0]) if first == 0 else _indent(lines[first])
    ends: list[int] = []
    pos = len(lines[0]) + 1
    for line in lines[1:]:
        if line.strip() and _indent(line) < body:
            ends.append(pos - 1)
            break
        pos += len(line) + 1
    for i in unmatched_closers(text):
        line_start = text.rfind("\n", 0, i) + 1
        ends.append(line_start - 1 if line_start > 0 and not text[line_start:i].strip() else i)
        break
    return min(ends) if ends else None


# ----------------------------------------------------------------------------------------------
# filters, in the order they run


def cut_at_stop(text: str, ctx: PostContext) -> str:
    """Single-line: stop at the first line break after some non-blank text. Multi-line: stop
    where the completion leaves the block it started in."""
    if not ctx.multiline:
        # Leading line breaks are allowed only at the end of the cursor line.
        start = len(text) - len(text.lstrip()) if not _rest_of_line(ctx.suffix).strip() else 0
        ends = [i for i in (text.find("\n", start), text.find("\r", start)) if i != -1]
        return text[: min(ends)] if ends else text
    end = _block_end(text, ctx)
    return text if end is None else text[:end]


def close_string(text: str, ctx: PostContext) -> str:
    """Inside a string literal whose closing quote the editor already put right of the cursor,
    the completion ends before that quote (`require('./li|')` + `b/x')` -> `b/x`). Without it,
    the string's end is not the completion's: the line goes on past the quote like code
    (`require('./li|` + `b/x');` -> `b/x');`; dev set mid-line EM +2.0, ES +2.4 over stopping
    at the quote)."""
    end = _string_end(text, ctx.quote) if ctx.suffix.startswith(ctx.quote) else None
    return text if end is None else text[:end]


def drop_repetition(text: str, ctx: PostContext) -> str:
    """Cut model loops: a line repeated REPEAT_LINES times keeps its first copy; a line that
    ends in a short unit repeated REPEAT_UNIT_TIMES times or more keeps what came before the
    loop and one copy of the unit, and the lines after it go (`'./core/core/core/core…` ->
    `'./core`). What is left may be blank: later filters drop it."""
    lines = text.split("\n")
    for i in range(len(lines) - REPEAT_LINES + 1):
        window = lines[i : i + REPEAT_LINES]
        if window[0].strip() and all(line == window[0] for line in window):
            return "\n".join(lines[: i + 1])
    for i, line in enumerate(lines):
        line = line.rstrip()
        for size in range(1, REPEAT_UNIT_MAX + 1):
            unit = line[-size:]
            if len(unit) == size and unit.strip() and line.endswith(unit * REPEAT_UNIT_TIMES):
                start = len(line) - size * REPEAT_UNIT_TIMES
                while start >= size and line.startswith(unit, start - size):
                    start -= size
                return "\n".join([*lines[:i], line[: start + size]])
        head = _long_loop_head(line)
        if head is not None:
            return "\n".join([*lines[:i], head])
    return text


def _long_loop_head(line: str) -> str | None:
    """`line` up to the end of the first copy of a unit of REPEAT_UNIT_MAX+1..REPEAT_LONG_UNIT_MAX
    characters that repeats REPEAT_LONG_UNIT_TIMES whole times or more up to the end of the line,
    where a generation budget may have cut the last copy short (`a.replace(b, '').replace(b, '')
    .replace(b, '').repl` -> `a.replace(b, '')`); None when the line does not end in such a loop."""
    for size in range(REPEAT_UNIT_MAX + 1, min(REPEAT_LONG_UNIT_MAX, len(line) // REPEAT_LONG_UNIT_TIMES) + 1):
        j = len(line) - 1
        while j >= size and line[j] == line[j - size]:
            j -= 1
        start = j + 1 - size  # line[start:] repeats with period `size`
        if len(line) - start >= size * REPEAT_LONG_UNIT_TIMES and line[start : start + size].strip():
            return line[: start + size]
    return None


def balance_brackets(text: str, ctx: PostContext) -> str:
    """Stop before a closing bracket that the text right of the cursor already supplies:
    `foo(|)` + `a, b);` -> `a, b`."""
    ahead = ctx.suffix.lstrip(" \t")
    for i in unmatched_closers(text):
        return text[:i] if ahead.startswith(text[i]) else text
    return text


def drop_suffix_overlap(text: str, ctx: PostContext) -> str:
    """Drop the end of the completion that repeats the start of the rest of the cursor line:
    `for (let i = 0; i <|) {` + ` n; i++) {` -> ` n; i++`."""
    rest = _rest_of_line(ctx.suffix).rstrip()
    if not rest.strip():
        return text
    body = text.rstrip(" \t")
    for size in range(min(len(rest), len(body)), 0, -1):
        if body.endswith(rest[:size]):
            start = len(body) - size
            before = body[start - 1] if start else ""
            # only at a token boundary: "foo" + suffix "o bar" is not an overlap
            if not (rest[0].isalnum() or rest[0] in "_$") or not (before.isalnum() or before in "_$"):
                return body[:start]
    return text


def drop_next_line_duplicate(text: str, ctx: PostContext) -> str:
    """Drop a completion that only repeats the line below the cursor (or, for multi-line, cut
    it where it starts repeating the lines below)."""
    below = _next_lines(ctx.suffix)
    # Lines of bare brackets ("}", "});") repeat all the time in real code: not duplicates.
    if not below or not text.strip() or not any(ch.isalnum() for ch in below[0]):
        return text
    if _rest_of_line(ctx.suffix).strip() == "" and text.strip() == below[0]:
        return ""
    lines = text.split("\n")
    for i in range(1, len(lines)):
        if lines[i].strip() and lines[i].strip() == below[0]:
            return "\n".join(lines[:i])
    return text


def trim_trailing_whitespace(text: str, ctx: PostContext) -> str:
    """No trailing blanks on any line, and no blank lines at the end."""
    return "\n".join(line.rstrip() for line in text.split("\n")).rstrip()


def drop_blank(text: str, ctx: PostContext) -> str:
    """An all-whitespace completion is no completion."""
    return text if text.strip() else ""


FILTERS: list[Filter] = [
    cut_at_stop,
    close_string,
    drop_repetition,
    balance_brackets,
    drop_suffix_overlap,
    drop_next_line_duplicate,
    trim_trailing_whitespace,
    drop_blank,
]


def postprocess(text: str, prefix: str, suffix: str, multiline: bool, quote: str = "") -> str:
    """Apply every filter of FILTERS in order."""
    return apply_filters(text, PostContext(prefix, suffix, multiline, quote))


def apply_filters(text: str, ctx: PostContext) -> str:
    """`postprocess` for a caller that already holds the context (the one `stop_reached` saw)."""
    for step in FILTERS:
        text = step(text, ctx)
        if not text:
            break
    return text


def stop_reached(text: str, ctx: PostContext) -> bool:
    """True once generating more can't change the result: the stop of `cut_at_stop` is reached,
    the string being completed reaches the quote the editor auto-closed, or the text is looping."""
    return (
        cut_at_stop(text, ctx) != text
        or close_string(text, ctx) != text
        or drop_repetition(text, ctx) != text
    )
