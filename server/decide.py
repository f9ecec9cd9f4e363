"""Where to complete, and how much.

`should_complete` asks tree-sitter-javascript (or, for documents too big to parse, a line-level
scan) whether the cursor is in code: no completion inside comments, regex and template literals,
or right before identifier text (template literal substitutions `${...}` are code, so they do
complete). Plain string literals complete only where the text is predictable from the code around
it: a call's argument (`require('./li|')`, `test('parses |')`, `el.on('cl|')`) or an import/export
source; there the completion is single-line and ends before the string's closing quote when the
editor auto-closed it (`Decision.quote`, used by post-processing), else at the line's end. Other
strings (`const s = 'a|'`) do not complete. It also decides single- vs multi-line: multi-line when
the cursor is on the blank line of an empty block body (`{` newline cursor, then `}` or end of file).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tree_sitter import Node, Tree

from server.documents import TREE_MAX_BYTES, new_parser, utf8

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


