"""server.decide: where to complete (tree-sitter, and the line heuristic without a tree), single
vs multi-line, and the cursor inside strings and comments."""

from __future__ import annotations

from typing import Any

import pytest
from lsprotocol.types import Position, Range

from server.decide import should_complete
from server.documents import TREE_MAX_BYTES, Document, new_parser


def at(marked: str) -> tuple[str, int]:
    """Text and offset of a `|` cursor marker."""
    offset = marked.index("|")
    return marked[:offset] + marked[offset + 1 :], offset


def decide(marked: str, multiline: str = "auto", *, use_tree: bool = False) -> Any:
    text, offset = at(marked)
    tree = Document("u", "javascript", 1, text).tree if use_tree else None
    return should_complete(text, offset, tree, multiline)


NO_COMPLETION = [
    ('const s = "ab|c";', "string"),
    ('const s = "abc|', "string"),
    ("const s = 'it\\'s |", "string"),
    ('const s = "a|"', "string"),
    ("x = `a | ${b}`", "string"),
    ("x = `a\nb |`", "string"),
    ("x = `${a}|`", "string"),
    ("x = /ab|c/;", "regex"),
    ("x = 1; // hi|", "comment"),
    ("x = 1; // hi|\nfoo()", "comment"),
    ("/* a | */ x", "comment"),
    ("/**\n * doc |\n */\nfunction f() {}", "comment"),
    ("x = 1;\n/* unterminated |", "comment"),
    ("fo|o", "identifier"),
    ("foo(|bar)", "identifier"),
    ("const 😀 = ab|c", "identifier"),
]


@pytest.mark.parametrize(("marked", "why"), NO_COMPLETION)
@pytest.mark.parametrize("use_tree", [False, True])
def test_no_completion(marked: str, why: str, use_tree: bool) -> None:
    d = decide(marked, use_tree=use_tree)
    assert not d.complete and why in d.reason


COMPLETION = [
    "foo|",
    "foo(|)",
    "x = `a ${ | } c`",
    "x = `a ${b + |}`",
    "/* a */|",
    "/* a */ x = |",
    'x = "a" + |',
    "s = ''|",
    "for (let i = 0; i <|",
    "<div>hello |</div>",
    "|",
    "const s = '😀'; |",
    "x = 1; // comment\n|",
]


@pytest.mark.parametrize("marked", COMPLETION)
@pytest.mark.parametrize("use_tree", [False, True])
def test_completion_allowed(marked: str, use_tree: bool) -> None:
    d = decide(marked, use_tree=use_tree)
    assert d.complete and not d.multiline, d.reason


STRING_ARGUMENTS = [
    ("const fs = require('./li|');", "'"),
    ('import x from "./li|";', '"'),
    ("export { a } from './|';", "'"),
    ("test('parses |', () => {});", "'"),
    ("el.on('cl|', f);", "'"),
    ("foo(a, 'b|')", "'"),
    ("new Error('bad |')", "'"),
    ("import('./pa|')", "'"),
    ("const fs = require('./li|", "'"),  # unterminated: an ERROR node, the line scan decides
]


@pytest.mark.parametrize(("marked", "quote"), STRING_ARGUMENTS)
@pytest.mark.parametrize("multiline", ["auto", "always"])
def test_string_arguments_complete_single_line_to_their_quote(marked: str, quote: str, multiline: str) -> None:
    d = decide(marked, multiline, use_tree=True)
    assert d.complete and not d.multiline and d.quote == quote, d.reason
    assert "string argument" in d.reason


@pytest.mark.parametrize(
    "marked",
    [
        "const s = 'a|';",  # a value, not an argument: nothing to predict it from
        "o = { key: 'va|' };",
        "f(`a |`)",  # template literals stay closed to completion
        "f(/ab|c/)",
        "const fs = require('./li|b');",  # identifier text right of the cursor
        "f('a' + 'b|')",  # part of an expression, not the argument itself
    ],
)
def test_other_strings_do_not_complete(marked: str) -> None:
    d = decide(marked, use_tree=True)
    assert not d.complete and d.quote == "", d.reason


MULTILINE = [
    "function f() {\n  |\n}",
    "function f() {\r\n  |\r\n}",
    "function f() {\n  |",
    "const f = (a) => {\n    |\n};",
    "class A {\n  |\n}",
    "if (x) {\n  |\n} else {\n}",
    "for (const x of xs) {\n\t|\n}",
    "const o = {\n  |\n};",
    "switch (x) {\n  |\n}",
    "async function g() {\n\n  |\n\n}",
]


@pytest.mark.parametrize("marked", MULTILINE)
def test_multiline_in_empty_block_body(marked: str) -> None:
    d = decide(marked)
    assert d.complete and d.multiline, d.reason
    assert not decide(marked, "never").multiline
    assert decide(marked, "never").complete


SINGLE_LINE = [
    "if (x) {\n  |\n  y();\n}",  # body not empty
    "function f() {|}",  # not on a line of its own
    "function f() {\n  x = |\n}",
    "// {\n|\n}",  # the brace is in a comment
    '"{"\n|\n}',  # the brace is in a string
    "foo(|\n)",
    "const x = [\n  |\n];",  # arrays are lists, not blocks
]


@pytest.mark.parametrize("marked", SINGLE_LINE)
def test_single_line_elsewhere(marked: str) -> None:
    d = decide(marked)
    assert d.complete and not d.multiline, d.reason
    assert decide(marked, "always").multiline


def test_uses_the_given_tree_after_incremental_edits() -> None:
    doc = Document("u", "javascript", 1, "function f() {\n  \n}\n")
    assert should_complete(doc.text, 17, doc.tree, "auto").multiline
    # type a string opener on the blank line: now the cursor is inside a string
    doc.apply_change(Range(start=Position(line=1, character=2), end=Position(line=1, character=2)), "'abc")
    assert not should_complete(doc.text, doc.text.index("abc") + 3, doc.tree, "auto").complete


def test_offsets_are_code_points_while_tree_is_bytes() -> None:
    # Emoji before the cursor: 4 UTF-8 bytes, 1 code point. The comment starts after them.
    text = "const a = '😀😀😀'; // note\nx"
    assert not should_complete(text, text.index("note"), None, "auto").complete
    assert should_complete(text, text.index("; //"), None, "auto").complete


def test_offset_out_of_range_is_no_completion() -> None:
    assert not should_complete("abc", 4, None, "auto").complete
    assert not should_complete("abc", -1, None, "auto").complete


def test_huge_document_uses_heuristics() -> None:
    filler = "const value = 'abcdefghijklmnopqrstuvwxyz';\n" * (TREE_MAX_BYTES // 40)
    for marked, expect in [
        ("x = 'abc|", False),
        ("x = require('./ab|", True),
        ("x = f(1, \"ab|", True),
        ("import y from './ab|", True),
        ("x = f(`ab|", False),
        ("x = ['a', 'ab|", False),  # an array element, not an argument
        ("x = f(a, [1, 'ab|", False),
        ("x = f(g(1), 'ab|", True),
        ("x = { k: 'ab|", False),
        ("x = 1; // a|", False),
        ("/* open\n  |", False),
        ("x = foo(|", True),
        ("function f() {\n  |\n}", True),
    ]:
        text, offset = at(marked)
        d = should_complete(filler + text, len(filler) + offset, None, "auto")
        assert d.complete is expect, marked
    text, offset = at("function f() {\n  |\n}")
    assert should_complete(filler + text, len(filler) + offset, None, "auto").multiline


def test_binary_junk_does_not_crash() -> None:
    junk = bytes(range(256)).decode("latin-1") * 20 + "\ud800"
    for offset in range(0, len(junk), 97):
        d = should_complete(junk, offset, None, "auto")
        assert isinstance(d.complete, bool)


def test_an_error_high_up_does_not_hide_a_well_parsed_block() -> None:
    # tree-sitter wraps everything after `x = (` in an ERROR, but the cursor's own blocks parse;
    # the line heuristic would take the '/*' in the string for an open comment.
    text, offset = at("x = (\nvar s = '/*';\nfunction b() {\n  while (x) {\n    |\n  }\n}\n")
    tree = new_parser().parse(text.encode())
    assert should_complete(text, offset, tree, "auto").complete


def test_the_heuristic_ignores_a_block_comment_opener_inside_a_line_comment() -> None:
    from server.decide import _where_heuristic

    text, offset = at("// see /* below\nfoo();\n|")
    assert _where_heuristic(text, offset) == ("code", "")
    text, offset = at("/* open\nfoo();\n|")
    assert _where_heuristic(text, offset) == ("comment", "")


def test_the_heuristic_ignores_a_block_comment_opener_inside_a_string() -> None:
    from server.decide import _where_heuristic

    # A glob in a Gruntfile (`/**/*.js`: its last `/*` has no `*/` after it) or a banner string.
    text, offset = at("files: ['<%=paths.lib%>/**/*.js'],\nbanner: '/*! <%= pkg.title %>',\ngrunt|")
    assert _where_heuristic(text, offset) == ("code", "")
    text, offset = at("const a = 'it\\'s /* not';\n|")
    assert _where_heuristic(text, offset) == ("code", "")
    text, offset = at("const a = '//'; /* open\nfoo();\n|")  # `//` in a string hides nothing
    assert _where_heuristic(text, offset) == ("comment", "")
    # The real editor case: a Gruntfile whose line being typed breaks the parse.
    text, offset = at(
        "module.exports = function (grunt) {\n  grunt.initConfig({\n    watch: {\n"
        "      lib: {\n        files: ['<%=paths.lib%>/**/*.js'],\n      },\n      grunt|\n"
        "        files: ['Gruntfile.js'],\n      },\n    },\n  });\n};\n"
    )
    assert should_complete(text, offset, None, "never").complete
