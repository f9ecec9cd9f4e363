"""Post-processing filters, one at a time and in order, on real editing situations."""

from __future__ import annotations

import pytest

from server.postprocess import (
    FILTERS,
    PostContext,
    balance_brackets,
    close_string,
    cut_at_stop,
    drop_blank,
    drop_next_line_duplicate,
    drop_repetition,
    drop_suffix_overlap,
    postprocess,
    stop_reached,
    trim_trailing_whitespace,
    unmatched_closers,
)


def ctx(prefix: str = "", suffix: str = "", multiline: bool = False, quote: str = "") -> PostContext:
    return PostContext(prefix, suffix, multiline, quote)


def test_filters_run_in_the_documented_order() -> None:
    assert [
        cut_at_stop,
        close_string,
        drop_repetition,
        balance_brackets,
        drop_suffix_overlap,
        drop_next_line_duplicate,
        trim_trailing_whitespace,
        drop_blank,
    ] == FILTERS


# -- cut_at_stop ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a + b;\nfoo();", "a + b;"),
        ("a + b;\r\nfoo();", "a + b;"),
        ("done", "done"),
        ("\n  return x;\n}", "\n  return x;"),  # at the end of a line, leading breaks are allowed
        ("", ""),
    ],
)
def test_cut_single_line(text: str, expected: str) -> None:
    assert cut_at_stop(text, ctx("const x = ", "")) == expected


def test_single_line_mid_line_does_not_start_a_new_line() -> None:
    assert cut_at_stop("\nfoo", ctx("f(", ")")) == ""


MULTI = [
    # (prefix, completion, suffix, expected)
    ("function f(a, b) {\n  ", "return a + b;\n}\n\nfunction g() {", "\n}\n", "return a + b;"),
    ("function f() {\n  ", "const x = 1;\n  return x;\n}\nfoo", "\n}", "const x = 1;\n  return x;"),
    (
        "function f() {\n  ",
        "if (x) {\n    y();\n  }\n  return 2;\n}\n",
        "\n}",
        "if (x) {\n    y();\n  }\n  return 2;",
    ),
    ("class A {\n\t", "run() {\n\t\treturn 1;\n\t}\n}", "\n}", "run() {\n\t\treturn 1;\n\t}"),
    ("const f = () => {\n    ", "g();\n    h(); });\nx", "\n};", "g();\n    h(); "),
    ("function f() {\n", "  a();\n  b();\n}\n", "\n}", "  a();\n  b();"),  # no auto-indent
    ("if (ok) {\n  ", "\n    run();\n  }", "\n}", "\n    run();"),  # body set by first code line
]


@pytest.mark.parametrize(("prefix", "text", "suffix", "expected"), MULTI)
def test_cut_multi_line_at_block_end(prefix: str, text: str, suffix: str, expected: str) -> None:
    assert cut_at_stop(text, ctx(prefix, suffix, True)) == expected


def test_unmatched_closers_ignore_strings_and_comments() -> None:
    assert list(unmatched_closers("a(b[c]{d})")) == []
    assert list(unmatched_closers("x)")) == [1]
    assert list(unmatched_closers("')' + \")\" + `}` // )\n]")) == [21]
    assert list(unmatched_closers("a(]")) == []  # a mismatch inside the completion is not ours


# -- close_string -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "suffix", "quote", "expected"),
    [
        ("b/x');", "')", "'", "b/x"),  # the editor auto-closed the string: stop before its quote
        ("b/x');", "", "'", "b/x');"),  # not closed yet: on past the quote to the line's end, as code
        ('b/x");', '");', '"', "b/x"),
        ("it\\'s fine', t => {", "', () => {})", "'", "it\\'s fine"),  # an escaped quote is text
        ("a \"b\" c'", "')", "'", 'a "b" c'),  # other quotes are text
        ("no end yet", "')", "'", "no end yet"),
        ("x'); y", "')", "", "x'); y"),  # not in a string: untouched
    ],
)
def test_close_string(text: str, suffix: str, quote: str, expected: str) -> None:
    assert close_string(text, ctx(suffix=suffix, quote=quote)) == expected


def test_string_argument_through_every_filter() -> None:
    # `require('./views/ma|'))` with the model running on past the string: only its rest is kept
    out = postprocess("in')); // main view\nnext();", "app.route('#a', require('./views/ma", "'));\n", False, "'")
    assert out == "in"


def test_generation_stops_at_the_closing_quote() -> None:
    c = ctx(suffix="')", quote="'")
    assert not stop_reached("./lib/", c)
    assert not stop_reached("it\\'", c)  # escaped
    assert stop_reached("./lib/x'", c)
    assert not stop_reached("./lib/x')", ctx(suffix="", quote="'"))  # not auto-closed: the line goes on


# -- drop_repetition ----------------------------------------------------------------------------


def test_repeated_lines_keep_first_copy() -> None:
    assert drop_repetition("a();\nx++;\nx++;\nx++;\nx++;", ctx()) == "a();\nx++;"


def test_two_repeats_are_fine() -> None:
    assert drop_repetition("x++;\nx++;\ny();", ctx()) == "x++;\nx++;\ny();"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("lt from './core/core/core/core/core/core", "lt from './core"),
        ("))))))))", ")"),
        ("foo(1foo(1foo(1foo(1foo(1foo(1", "foo(1"),
        ("x(a, a, a, a, a, a, a, a, ", "x(a, a,"),
        ("f(0,\n 1, 1, 1, 1, 1, 1, 1,\nnext();", "f(0,\n 1,"),  # the lines after the loop go too
        # a long unit three times, the last copy cut short by the token budget
        (" a.replace(b, '').replace(b, '').replace(b, '').replace(b, '').repl", " a.replace(b, '')"),
        ("x = [first, second, third, first, second, third, first, second, third, first",
         "x = [first, second, third, "),
    ],
)
def test_looping_line_keeps_what_came_before_the_loop(text: str, kept: str) -> None:
    assert drop_repetition(text, ctx()) == kept


def test_loop_cut_reaches_the_editor_through_postprocess() -> None:
    # Before the cut, the whole completion was dropped: the head of a looping line is kept.
    text = "nt('div' + 'div' + 'div' + 'div' + 'div' + 'div' + 'div' + 'div'"
    assert postprocess(text, "e = document.createEleme", "\n", multiline=False) == "nt('div' + 'div'"


def test_five_copies_are_not_a_loop() -> None:
    assert drop_repetition("g(x, x, x, x, x,", ctx()) == "g(x, x, x, x, x,"


@pytest.mark.parametrize("text", ["[0, 0, 0, 0, 0, 0, 1]", "        return x;", "a + b",
                                  "p.then(onValue).then(onValue);", "assertEqual(a, b); assertEqual(c, d);",
                                  "'abcdefghij' + 'abcdefghij' + 'abcdefghij' + tail"])
def test_normal_lines_survive_repetition_check(text: str) -> None:
    assert drop_repetition(text, ctx()) == text


# -- balance_brackets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "text", "suffix", "expected"),
    [
        ("foo(", "a, b);", ")", "a, b"),
        ("foo(bar(", "x));", "))", "x"),
        ("const a = [", "1, 2];", "];", "1, 2"),
        ("if (", "x) {", ") {", "x"),
        ("foo(", "a, b);", "", "a, b);"),  # the suffix doesn't close it: keep
        ("foo(", "a, b);", "\n", "a, b);"),
        ("x = ", "f(1) + g(2)", ";", "f(1) + g(2)"),
    ],
)
def test_balance_brackets(prefix: str, text: str, suffix: str, expected: str) -> None:
    assert balance_brackets(text, ctx(prefix, suffix)) == expected


# -- drop_suffix_overlap ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "suffix", "expected"),
    [
        (" n; i++) {", ") {\n}", " n; i++"),
        ("value;", ";", "value"),
        ("x = 1;  ", ";\nnext()", "x = 1"),
        ("foo", "o bar", "foo"),  # not at a token boundary
        ("a + b", "", "a + b"),
        ("count", " + 1;", "count"),
    ],
)
def test_drop_suffix_overlap(text: str, suffix: str, expected: str) -> None:
    assert drop_suffix_overlap(text, ctx("", suffix)) == expected


# -- drop_next_line_duplicate -------------------------------------------------------------------


def test_completion_equal_to_next_line_is_dropped() -> None:
    c = ctx("function f() {\n  ", "\n  return x;\n}")
    assert drop_next_line_duplicate("return x;", c) == ""


def test_multiline_completion_cut_where_it_repeats_the_code_below() -> None:
    c = ctx("function f() {\n  ", "\n  return total;\n}", True)
    assert drop_next_line_duplicate("let total = 0;\n  return total;", c) == "let total = 0;"


def test_bracket_lines_are_not_duplicates() -> None:
    c = ctx("if (x) {\n  ", "\n}", True)
    assert drop_next_line_duplicate("if (y) {\n    z();\n  }", c) == "if (y) {\n    z();\n  }"


def test_mid_line_completion_is_not_compared_with_next_line() -> None:
    c = ctx("const x = ", "1;\nreturn x;")
    assert drop_next_line_duplicate("return x;", c) == "return x;"


# -- whitespace ---------------------------------------------------------------------------------


def test_trim_and_blank() -> None:
    assert trim_trailing_whitespace("a  \n  b\t\n\n  ", ctx()) == "a\n  b"
    assert trim_trailing_whitespace("  lead", ctx()) == "  lead"
    assert drop_blank(" \n\t ", ctx()) == ""
    assert drop_blank("x", ctx()) == "x"


# -- postprocess end to end ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "raw", "suffix", "multiline", "expected"),
    [
        (
            "for (let i = 0; i <",
            " items.length; i++) {\n  console.log(i);\n}",
            ") {\n}\n",
            False,
            " items.length; i++",
        ),
        ("foo(", "a, b);\nfoo();", ")\n", False, "a, b"),
        ("function add(a, b) {\n  ", "return a + b;  \n}\n\nfunction", "\n}\n", True, "return a + b;"),
        ("x = ", "   \n  ", "", False, ""),
        ("function f() {\n  ", "return x;", "\n  return x;\n}", False, ""),
        ("const s = ", "'abc';   ", "", False, "'abc';"),
        ("let 😀 = ", "'😀';\n", "", False, "'😀';"),
        ("x = ", "y\r\nz", "\r\n", False, "y"),
    ],
)
def test_postprocess(prefix: str, raw: str, suffix: str, multiline: bool, expected: str) -> None:
    assert postprocess(raw, prefix, suffix, multiline) == expected


def test_postprocess_is_idempotent() -> None:
    for prefix, raw, suffix, multiline, _ in [
        ("function f() {\n  ", "const x = 1;\n  return x;\n}\nfoo", "\n}", True, None),
        ("foo(", "a, b);\nfoo();", ")\n", False, None),
    ]:
        once = postprocess(raw, prefix, suffix, multiline)
        assert postprocess(once, prefix, suffix, multiline) == once


# -- stop_reached -------------------------------------------------------------------------------


def test_stop_single_line() -> None:
    c = ctx("x = ", "")
    assert not stop_reached("", c)
    assert not stop_reached("\n", c)  # nothing produced yet
    assert not stop_reached("foo(", c)
    assert stop_reached("foo();\n", c)


def test_stop_multi_line_when_block_closes() -> None:
    c = ctx("function f() {\n  ", "\n}", True)
    assert not stop_reached("return 1;", c)
    assert not stop_reached("return 1;\n", c)
    assert not stop_reached("if (x) {\n    y();\n  }\n", c)
    assert stop_reached("return 1;\n}", c)
    assert stop_reached("return 1; }", c)


def test_stop_on_a_loop() -> None:
    assert stop_reached("a, a, a, a, a, a, a, ", ctx("f(", ")"))
    assert stop_reached("x();\nx();\nx();", ctx("function f() {\n  ", "\n}", True))


def test_stream_stop_agrees_with_final_result() -> None:
    """Feeding the completion token by token, the first stop point yields the same result."""
    prefix, suffix = "function f(a) {\n  ", "\n}\n"
    raw = "const b = a * 2;\n  return b;\n}\n\nfunction g() {\n  return 1;\n}\n"
    c = ctx(prefix, suffix, True)
    for end in range(1, len(raw) + 1):
        if stop_reached(raw[:end], c):
            break
    assert postprocess(raw[:end], prefix, suffix, True) == postprocess(raw, prefix, suffix, True)
    assert end < len(raw) // 2 + 10
