"""TypeScript-only syntax, found by parsing with tree-sitter's TypeScript grammar.

The workspace index reads `.ts/.tsx` files (and `.d.ts` declarations) as context: their code
informs the ∞-gram mixing, but a line copied from them into a JavaScript document must not carry
syntax that JavaScript lacks (`export type X = Partial<`, `interface`, `declare`, `a: string`).
A regex cannot tell `a: string` in a parameter list from `a: 'string'` in an object literal; the
grammar can. Two questions are answered:

- `ts_only_span(text, start, end, tsx)`: does `text[start:end]` (a copy's continuation, in the
  TypeScript file it comes from) overlap a TypeScript-only node of that file's tree? The file is
  parsed once and kept (`MAX_TREES` files; a huge one is parsed from `WINDOW_LINES` above the span).
- `ts_only_line(line)`: is a line of a JavaScript document TypeScript syntax? It is when the
  TypeScript grammar finds a TypeScript-only node in it and the JavaScript grammar cannot parse
  it (so a JavaScript line that merely looks alike, such as `a < b > (c)`, stays JavaScript).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from functools import cache

import tree_sitter_javascript
import tree_sitter_typescript
from tree_sitter import Language, Node, Parser, Tree

TS_SUFFIXES = (".ts", ".tsx", ".mts", ".cts")  # `.d.ts` ends in `.ts`
MAX_TREES = 16  # TypeScript files whose trees are kept (a copy reads one or two per keystroke)
# Files longer than this are not parsed whole (a tree costs tens of bytes a node, and 16 kept
# trees of 1 MB declaration files would hold hundreds of MB): the WINDOW_LINES lines up to the
# span's are, which hold the declaration the span is in but for the longest interfaces.
WHOLE_FILE_CHARS = 256_000
WINDOW_LINES = 200

# Named nodes that only TypeScript has (tree-sitter-typescript's node types).
TS_ONLY_NODES = frozenset(
    {
        "abstract_class_declaration",
        "abstract_method_signature",
        "accessibility_modifier",
        "ambient_declaration",
        "as_expression",
        "asserts_annotation",
        "call_signature",
        "construct_signature",
        "enum_declaration",
        "function_signature",
        "implements_clause",
        "import_alias",
        "index_signature",
        "instantiation_expression",
        "interface_declaration",
        "internal_module",
        "method_signature",
        "module",
        "non_null_expression",
        "optional_parameter",
        "override_modifier",
        "property_signature",
        "satisfies_expression",
        "type_alias_declaration",
        "type_annotation",
        "type_arguments",
        "type_assertion",
        "type_parameters",
        "type_predicate_annotation",
    }
)
# Keywords that make a JavaScript construct TypeScript (`import type`, `export type { A }`,
# `readonly x`, `declare x`, `abstract m()`), seen as anonymous children.
TS_ONLY_KEYWORDS = frozenset({"type", "readonly", "declare", "abstract"})
KEYWORD_PARENTS = frozenset(
    {"import_statement", "export_statement", "import_specifier", "export_specifier", "public_field_definition",
     "method_definition", "import_clause"}
)


# What every TypeScript-only construct shows on its lines: a type's colon, angle brackets, `!`/`?`
# or one of these words (a line without any is read as JavaScript without parsing the file).
TS_HINT = re.compile(
    r"[:<>!?]|\b(?:type|interface|declare|enum|namespace|module|implements|readonly|private|public|"
    r"protected|abstract|override|as|satisfies|keyof|infer)\b"
)


def is_typescript(key: str) -> bool:
    """Whether a document key (URI or path) names a TypeScript file."""
    return key.lower().endswith(TS_SUFFIXES)


@cache
def _parser(grammar: str) -> Parser:
    if grammar == "javascript":
        return Parser(Language(tree_sitter_javascript.language()))
    module = tree_sitter_typescript
    return Parser(Language(module.language_tsx() if grammar == "tsx" else module.language_typescript()))


_lock = threading.Lock()  # a Parser is not shared between threads
_trees: OrderedDict[tuple[str, str], Tree] = OrderedDict()


def _tree(text: str, grammar: str) -> Tree:
    key = (grammar, text)  # str hashes are cached: a hit costs one comparison of the same object
    with _lock:
        tree = _trees.get(key)
        if tree is not None:
            _trees.move_to_end(key)
            return tree
        tree = _parser(grammar).parse(text.encode("utf-8"))
        _trees[key] = tree
        while len(_trees) > MAX_TREES:
            _trees.popitem(last=False)
        return tree


def _ts_only(node: Node) -> bool:
    if node.type in TS_ONLY_NODES:
        return True
    return not node.is_named and node.type in TS_ONLY_KEYWORDS and (
        node.parent is not None and node.parent.type in KEYWORD_PARENTS
    )


def _overlapping(node: Node, start: int, end: int) -> Iterator[Node]:
    """The nodes under `node` that overlap bytes [start, end), outermost first."""
    for child in node.children:
        if child.end_byte > start and child.start_byte < end:
            yield child
            yield from _overlapping(child, start, end)


def _byte(text: str, index: int) -> int:
    return index if text.isascii() else len(text[:index].encode("utf-8"))


def ts_only_span(text: str, start: int, end: int, tsx: bool = False) -> bool:
    """Whether `text[start:end]` of a TypeScript file overlaps TypeScript-only syntax there
    (blanks at either end do not count)."""
    piece = text[start:end]
    start += len(piece) - len(piece.lstrip())
    end -= len(piece) - len(piece.rstrip())
    if start >= end:
        return False
    line_end = text.find("\n", end)
    lines = text[text.rfind("\n", 0, start) + 1 : line_end if line_end >= 0 else len(text)]
    if not TS_HINT.search(lines):
        return False  # no type syntax on the lines: no parse (a verdict may read 64 files)
    if len(text) > WHOLE_FILE_CHARS:  # a huge declaration file: the lines around the span only
        first = start
        for _ in range(WINDOW_LINES):
            first = text.rfind("\n", 0, first - 1) + 1 if first > 0 else 0
        text, start, end = text[first : line_end if line_end >= 0 else len(text)], start - first, end - first
    tree = _tree(text, "tsx" if tsx else "typescript")
    lo, hi = _byte(text, start), _byte(text, end)
    return any(_ts_only(node) for node in _overlapping(tree.root_node, lo, hi))


def ts_only_line(line: str) -> bool:
    """Whether a line written into a JavaScript document is TypeScript syntax: the TypeScript
    grammar parses it without an error and finds a TypeScript-only node, where the JavaScript
    grammar finds an error. A line is often unfinished (`export type X = Partial<`): it is also
    read closed (a placeholder after a dangling operator, its open brackets closed, with `<` read
    both as a type's arguments and as a comparison); a line starting with a modifier that only
    class members take (`private x = 1;`) or a method's head (`async fetch(url: string) {`) is
    also read inside a class body (not `options: {`: in a class that would be a typed field)."""
    text = line.strip()
    if not text:
        return False
    variants = [text, _closed(text, angle=True), _closed(text, angle=False)]
    if text.split(" ", 1)[0] in MEMBER_MODIFIERS or (BODY_OPENS.search(text) and _method_head(text)):
        variants += [f"class _ {{ {v} }}" for v in variants]
    with _lock:
        for variant in dict.fromkeys(variants):
            source = variant.encode("utf-8")
            typed = _parser("typescript").parse(source).root_node
            if typed.has_error or not any(_ts_only(node) for node in _overlapping(typed, 0, len(source))):
                continue
            if _parser("javascript").parse(source).root_node.has_error:
                return True
    return False


FUNCTION_HEAD_END = re.compile(r"\bfunction\b\s*\*?\s*[\w$]*\s*\([^{}]*\)\s*\Z")
BODY_OPENS = re.compile(r"\)\s*(?::[^(){}]*)?\{\s*\Z")  # `) {` or `): Type {`: a body, not an argument
METHOD_HEAD = re.compile(r"(?:(?:static|async|get|set|\*)\s*)*#?([A-Za-z_$][\w$]*)\s*[(<]")
NOT_METHODS = frozenset({"if", "for", "while", "switch", "catch", "function", "return", "with"})


def _method_head(text: str) -> bool:
    m = METHOD_HEAD.match(text)
    return m is not None and m.group(1) not in NOT_METHODS


CLOSERS = {"(": ")", "[": "]", "{": "}", "<": ">"}
DANGLING = tuple("<=:,(|&?[+-*/!")  # a line ending in one of these lacks an operand
MEMBER_MODIFIERS = frozenset({"private", "public", "protected", "readonly", "declare", "abstract", "override"})


def code_chars(text: str) -> Iterator[tuple[int, str]]:
    """(index, character) of `text` outside its string literals (quotes included as text), then,
    if a literal is left open, (len(text), its quote)."""
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
        elif ch in "'\"`":
            quote = ch
        else:
            yield i, ch
    if quote:
        yield len(text), quote


def _closed(text: str, angle: bool) -> str:
    """`text` with a placeholder operand after a dangling operator and its open brackets closed;
    `angle`: a `<` right after a name opens a type's arguments (else it compares)."""
    stack: list[str] = []
    for i, ch in code_chars(text):
        if i == len(text):  # a string left open: close it
            text += ch
        elif ch in CLOSERS and (ch != "<" or (angle and i and (text[i - 1].isalnum() or text[i - 1] in "_$"))):
            stack.append(CLOSERS[ch])  # `Partial<` opens type arguments; `a < b` compares
        elif stack and ch == stack[-1]:
            stack.pop()
        elif ch in ")]}" and ">" in stack:  # a `<` that compared after all
            while stack and stack[-1] == ">":
                stack.pop()
            if stack and ch == stack[-1]:
                stack.pop()
    if text.endswith(DANGLING) and not text.endswith("=>"):
        text += " X"
    text += "".join(reversed(stack))
    # An unfinished function head closed is a body-less signature, which only TypeScript has.
    return text + " {}" if FUNCTION_HEAD_END.search(text) else text
