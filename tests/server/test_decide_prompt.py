"""Context: tree-sitter decisions (where to complete, single vs multi-line) and prompt building."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from lsprotocol.types import Position, Range

from server.decide import should_complete
from server.documents import TREE_MAX_BYTES, Document, new_parser
from server.prompt import (
    FIM_MIDDLE,
    FIM_PREFIX,
    FIM_SUFFIX,
    SUFFIX_SHARE,
    build_prompt,
    fim_ids,
    natural_tail_ids,
    start_ids,
)


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


# ----------------------------------------------------------------------------------------------
# build_prompt

BODY = "".join(
    f"function helper{i}(items, limit) {{\n  // keep the first {i} items\n  return items.slice(0, limit + {i});\n}}\n"
    for i in range(120)
)
SUFFIX = "\n}\n\nmodule.exports = { helper0, helper1 };\n" * 40


@pytest.fixture(scope="module")
def fim_tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def plain_tokenizer(tiny_model_dir_no_fim: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir_no_fim)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_fim_ids_detects_fim_tokens(fim_tokenizer: Any, plain_tokenizer: Any) -> None:
    ids = fim_ids(fim_tokenizer)
    assert ids == tuple(fim_tokenizer.convert_tokens_to_ids([FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX]))
    assert fim_ids(plain_tokenizer) is None


def test_short_fim_prompt_is_spm_with_everything(fim_tokenizer: Any) -> None:
    prefix, suffix = "function add(a, b) {\n  return ", ";\n}\n"
    p = build_prompt(fim_tokenizer, prefix, suffix, 256)
    pre, mid, suf = fim_ids(fim_tokenizer)  # type: ignore[misc]
    assert p.fim and p.prefix == prefix and p.suffix == suffix
    assert p.prompt_tokens == len(p.input_ids)
    assert p.input_ids[0] == suf and p.input_ids[-1] == mid
    split = p.input_ids.index(pre)
    assert fim_tokenizer.decode(p.input_ids[1:split]) == suffix
    assert fim_tokenizer.decode(p.input_ids[split + 1 : -1]) == prefix


def test_prefix_only_without_fim_tokens(plain_tokenizer: Any) -> None:
    p = build_prompt(plain_tokenizer, "const x = ", " + 1;", 256)
    assert not p.fim and p.suffix == ""
    assert plain_tokenizer.decode(p.input_ids) == "const x = "


def test_fim_off_prompts_with_the_prefix_alone_even_with_fim_tokens(fim_tokenizer: Any) -> None:
    p = build_prompt(fim_tokenizer, "const x = ", " + 1;", 256, fim=False)
    assert not p.fim and p.suffix == "" and not p.suffix_ids
    assert not set(p.input_ids) & set(fim_ids(fim_tokenizer) or ())
    assert fim_tokenizer.decode(p.input_ids) == "const x = "


def test_special_token_text_in_the_file_stays_text(fim_tokenizer: Any) -> None:
    prefix = "const s = '<|endoftext|><fim_middle>'; "
    p = build_prompt(fim_tokenizer, prefix, "", 256)
    specials = set(fim_ids(fim_tokenizer) or ()) | {fim_tokenizer.eos_token_id}
    assert [t for t in p.input_ids if t in specials] == [p.input_ids[0], p.input_ids[1], p.input_ids[-1]]


@pytest.mark.parametrize("budget", [64, 200, 768])
def test_budget_and_suffix_share(fim_tokenizer: Any, budget: int) -> None:
    p = build_prompt(fim_tokenizer, BODY, SUFFIX, budget)
    assert p.prompt_tokens <= budget
    pre = p.input_ids.index(fim_ids(fim_tokenizer)[0])  # type: ignore[index]
    suffix_tokens = pre - 1
    assert 0 < suffix_tokens <= budget * SUFFIX_SHARE
    assert BODY.endswith(p.prefix) and SUFFIX.startswith(p.suffix)
    # the prefix is cut on the left, at a line start (its token may begin with the line break)
    assert len(p.prefix) < len(BODY)
    assert p.prefix.startswith("\n") or BODY[len(BODY) - len(p.prefix) - 1] == "\n"
    # and uses most of the budget (coarse steps waste more of a tiny one)
    assert p.prompt_tokens >= budget * (0.6 if budget >= 200 else 0.4)
    # the suffix is cut at a line end
    assert p.suffix.endswith("\n")


def test_no_fim_budget(plain_tokenizer: Any) -> None:
    p = build_prompt(plain_tokenizer, BODY, SUFFIX, 128)
    assert p.prompt_tokens <= 128 and BODY.endswith(p.prefix)
    assert plain_tokenizer.decode(p.input_ids) == p.prefix


def test_typing_keeps_the_window_start_so_the_kv_cache_stays_valid(fim_tokenizer: Any) -> None:
    """The property the engine's KV reuse depends on: one typed character changes only the
    last few tokens of the prompt, even though the prefix is far over budget."""
    typed = "const total = items.reduce((acc, x) => acc + x, 0);\nreturn total;"
    prompts = [build_prompt(fim_tokenizer, BODY + typed[:j], SUFFIX, 256) for j in range(len(typed) + 1)]
    assert all(p.prompt_tokens <= 256 for p in prompts)
    assert all(len(p.prefix) < len(BODY) for p in prompts)  # truncation is in effect
    starts = [len(BODY) + j - len(p.prefix) for j, p in enumerate(prompts)]
    moves = sum(1 for a, b in itertools.pairwise(starts) if a != b)
    assert moves <= 1, "the window start should move in coarse steps, not per keystroke"
    kept = 0
    for a, b, sa, sb in zip(prompts, prompts[1:], starts, starts[1:], strict=False):
        if sa != sb:
            continue
        kept += 1
        shared = common_prefix(a.input_ids, b.input_ids)
        # everything but the last token or two of the prefix (+ <fim_middle>) is shared
        assert shared >= len(a.input_ids) - 3, (a.prefix[-20:], b.prefix[-20:])
    assert kept >= len(typed) - 1


def test_huge_prefix_is_cheap_and_bounded(fim_tokenizer: Any) -> None:
    huge = BODY * 200  # ~1.6 MB
    p = build_prompt(fim_tokenizer, huge, SUFFIX * 100, 300)
    assert p.prompt_tokens <= 300 and huge.endswith(p.prefix)


def test_single_enormous_line(fim_tokenizer: Any) -> None:
    line = "x=" + "a+" * 100_000
    p = build_prompt(fim_tokenizer, line, ")" * 50_000, 128)
    assert p.prompt_tokens <= 128 and line.endswith(p.prefix) and p.prefix


@pytest.mark.parametrize(("prefix", "suffix"), [("", ""), ("", "x"), ("x", ""), ("😀" * 300, "😀" * 300)])
def test_edge_inputs(fim_tokenizer: Any, prefix: str, suffix: str) -> None:
    p = build_prompt(fim_tokenizer, prefix, suffix, 64)
    assert 3 <= p.prompt_tokens <= 64
    assert prefix.endswith(p.prefix) and suffix.startswith(p.suffix)


@pytest.mark.parametrize("suffix", ["", "\nconst x = 1;\n"])
def test_an_empty_prefix_without_fim_is_the_start_of_a_text(fim_tokenizer: Any, plain_tokenizer: Any, suffix: str) -> None:
    """A new file, or line 0 above text: the prompt is the token that starts a text (EOS here:
    the tiny models, like GPT-2, train on files joined by EOS), never an empty prompt."""
    for tokenizer, fim in ((plain_tokenizer, True), (fim_tokenizer, False)):
        p = build_prompt(tokenizer, "", suffix, 64, heal=True, fim=fim)
        assert p.input_ids == [tokenizer.eos_token_id] and p.prompt_tokens == 1
        assert not p.fim and p.prefix == "" and p.heal == ""


def test_start_ids_without_bos_or_eos_is_empty(plain_tokenizer: Any) -> None:
    class NoSpecials:
        bos_token_id = None
        eos_token_id = None

    assert start_ids(NoSpecials()) == []
    assert start_ids(plain_tokenizer) == [plain_tokenizer.eos_token_id]


# ----------------------------------------------------------------------------------------------
# token healing


@pytest.mark.parametrize(
    ("prefix", "word"),
    [("const total = items.red", "red"), ("let radio = c", "c"), ("const q = zqxItemsCount", "zqxItemsCount"),
     ("for (let i = 0; i <", ""), ("foo(\n  ", "")],
)
def test_heal_leaves_the_word_being_typed_out_of_the_prompt(fim_tokenizer: Any, prefix: str, word: str) -> None:
    plain = build_prompt(fim_tokenizer, prefix, SUFFIX, 256)
    healed = build_prompt(fim_tokenizer, prefix, SUFFIX, 256, heal=True)
    assert plain.heal == ""
    dropped = len(plain.input_ids) - len(healed.input_ids)
    # the healed prompt is the plain one minus its last prefix tokens, which spell `heal`
    assert dropped >= 1
    assert healed.input_ids == plain.input_ids[: -1 - dropped] + plain.input_ids[-1:]
    assert fim_tokenizer.decode(plain.input_ids[-1 - dropped : -1]) == healed.heal
    assert prefix.endswith(healed.heal) and healed.prefix == prefix
    if word:  # every token of the word, from the one holding its first character
        assert healed.heal.endswith(word) and len(healed.heal) <= len(word) + 1
        start = len(prefix) - len(healed.heal)
        assert fim_tokenizer.decode(fim_tokenizer(prefix[:start])["input_ids"]) == prefix[:start]
    else:  # after punctuation or a line break: the last token only
        assert dropped == 1


def test_a_word_split_into_several_tokens_is_healed_whole(fim_tokenizer: Any) -> None:
    prefix = "const q = zqxItemsCount"
    ids = fim_tokenizer(prefix, add_special_tokens=False)["input_ids"]
    word_tokens = [i for i in ids if fim_tokenizer.decode([i]).strip() and fim_tokenizer.decode([i]).strip() in "zqxItemsCount"]
    assert len(word_tokens) >= 2  # the tiny tokenizer does not know this word
    healed = build_prompt(fim_tokenizer, prefix, "", 256, heal=True)
    assert healed.heal in {"zqxItemsCount", " zqxItemsCount"}


def test_heal_without_fim_keeps_at_least_one_token(plain_tokenizer: Any) -> None:
    healed = build_prompt(plain_tokenizer, "const x = ite", "", 256, heal=True)
    assert healed.heal and plain_tokenizer.decode(healed.input_ids) + healed.heal == "const x = ite"
    one = plain_tokenizer.convert_ids_to_tokens(plain_tokenizer("const", add_special_tokens=False)["input_ids"])
    assert len(one) == 1  # a one-token prefix: healing it would leave no prompt at all
    assert build_prompt(plain_tokenizer, "const", "", 256, heal=True).heal == ""


@pytest.mark.parametrize("prefix", ["const s = 'é", "x = '😀", ""])
def test_heal_skips_non_ascii_and_empty_tails(fim_tokenizer: Any, prefix: str) -> None:
    healed = build_prompt(fim_tokenizer, prefix, "", 256, heal=True)
    assert healed.heal == ""
    assert healed.input_ids == build_prompt(fim_tokenizer, prefix, "", 256).input_ids


def test_heal_skips_tails_longer_than_a_word(fim_tokenizer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from server import prompt

    tail = build_prompt(fim_tokenizer, "let radio = c", "", 256, heal=True).heal
    monkeypatch.setattr(prompt, "MAX_HEAL_CHARS", len(tail) - 1)
    assert build_prompt(fim_tokenizer, "let radio = c", "", 256, heal=True).heal == ""


@pytest.mark.parametrize("prefix", ["function f() {\n    ", "if (a) {\n\t\t", "foo(a, ", "x = [1,  "])
def test_a_cursor_after_whitespace_is_prompted_as_if_a_word_followed(fim_tokenizer: Any, prefix: str) -> None:
    # Byte-level BPE gives `\n   ` + ` return`: the prompt must end with the tokens a word would
    # follow, not with the run's own last token (one the model never saw before a word).
    healed = build_prompt(fim_tokenizer, prefix, SUFFIX, 256, heal=True)
    pre = healed.input_ids.index(fim_ids(fim_tokenizer)[0])  # type: ignore[index]
    prompt_prefix = healed.input_ids[pre + 1 : -1]
    as_if_a_word = fim_tokenizer(prefix + "x", add_special_tokens=False)["input_ids"]
    assert prompt_prefix == as_if_a_word[:-1]
    assert fim_tokenizer.decode(prompt_prefix) + healed.heal == prefix
    assert healed.heal in {"", " "}


@pytest.mark.parametrize(
    "prefix", ["a});\n\n        ", "foo(a, ", "x;\n\t", "x = 1;\n", "let radio = c", "const v = items.fo", "if (a) {\n  "]
)
def test_natural_tail_ids_split_the_text_as_running_text_does(fim_tokenizer: Any, prefix: str) -> None:
    # What the ∞-gram query is made of: the text before the completion, split as the indexed files
    # (tokenized whole) split it, so that a lookup can match across the prompt's seams.
    heal = build_prompt(fim_tokenizer, prefix, "", 256, heal=True).heal
    ids = natural_tail_ids(fim_tokenizer, prefix, heal, 10_000)
    running = fim_tokenizer(prefix + "x", add_special_tokens=False)["input_ids"]
    assert ids == running[: len(ids)]
    assert fim_tokenizer.decode(ids) == prefix[: len(prefix) - len(heal)]
    short = natural_tail_ids(fim_tokenizer, prefix, heal, 8)
    assert fim_tokenizer.decode(ids).endswith(fim_tokenizer.decode(short))
    assert len(fim_tokenizer.decode(short)) < 8 or len(prefix) <= 8


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
