"""Documents: UTF-16 positions, line breaks, incremental edits, incremental tree-sitter."""

from __future__ import annotations

import random

import pytest
from lsprotocol.types import (
    Position,
    Range,
    TextDocumentContentChangePartial,
    TextDocumentContentChangeWholeDocument,
)

from server.documents import TREE_MAX_BYTES, Document, DocumentStore, new_parser, utf8, utf16_len
from server.errors import CodeparrotError, PositionError, UnknownDocumentError


def P(line: int, character: int) -> Position:
    return Position(line=line, character=character)


def R(a: tuple[int, int], b: tuple[int, int]) -> Range:
    return Range(start=P(*a), end=P(*b))


def doc(text: str) -> Document:
    return Document("file:///t.js", "javascript", 1, text)


def test_utf16_len_counts_astral_characters_twice() -> None:
    assert utf16_len("") == 0
    assert utf16_len("abc") == 3
    assert utf16_len("é") == 1
    assert utf16_len("😀") == 2
    assert utf16_len("a😀b👍🏽") == 1 + 2 + 1 + 2 + 2
    assert utf16_len("a😀b") == len("a😀b".encode("utf-16-le")) // 2


def test_offsets_after_surrogate_pairs() -> None:
    d = doc('const s = "😀"; x\nlet 👍 = 1;')
    # "😀" occupies UTF-16 columns 11..12, the closing quote is at column 13
    assert d.text[d.offset_at(P(0, 13))] == '"'
    assert d.text[d.offset_at(P(0, 16))] == "x"
    assert d.text[d.offset_at(P(1, 6))] == " "
    assert d.position_at(d.text.index("x")) == P(0, 16)


def test_position_inside_surrogate_pair_is_rejected() -> None:
    d = doc('"😀"')
    with pytest.raises(PositionError):
        d.offset_at(P(0, 2))


@pytest.mark.parametrize("text", ["a\r\nbc\r\n\r\nd", "a\nbc\n\nd", "a\rbc\r\rd", "a\r\nbc\n\rd"])
def test_all_lsp_line_breaks(text: str) -> None:
    d = doc(text)
    assert len(d.line_starts) == 4
    assert d.text[d.offset_at(P(1, 0))] == "b"
    assert d.offset_at(P(1, 2)) == d.offset_at(P(1, 0)) + 2  # end of "bc", before the break
    assert d.text[d.offset_at(P(3, 0))] == "d"
    # The line break is not part of the line: one past its end is the line's end (LSP clamps).
    assert d.offset_at(P(1, 3)) == d.offset_at(P(1, 2))


def test_roundtrip_positions_every_offset() -> None:
    d = doc("a😀\r\nb\u00e9\r\n\n😀😀x\rq")
    for off in range(len(d.text) + 1):
        pos = d.position_at(off)
        back = d.offset_at(pos)
        # offsets inside a "\r\n" map to the end of the line
        assert back == off or (d.text[off - 1] == "\r" and d.text[off] == "\n" and back == off - 1)


@pytest.mark.parametrize("pos", [P(2, 0), P(99, 0), P(2, 10**6)])
def test_lines_past_the_end_are_rejected(pos: Position) -> None:
    d = doc("abc\nd")
    with pytest.raises(PositionError) as info:
        d.offset_at(pos)
    assert isinstance(info.value, CodeparrotError) and info.value.user_message


@pytest.mark.parametrize(("text", "pos", "offset"), [
    ("abc\nd", P(0, 4), 3),
    ("abc\nd", P(0, 10**6), 3),
    ("abc\nd", P(1, 2), 5),
    ("a😀\r\nb", P(0, 4), 2),  # the emoji is two UTF-16 units: the line is 3 long
    ("", P(0, 1), 0),
])
def test_a_character_past_the_line_end_is_the_line_end(text: str, pos: Position, offset: int) -> None:
    """LSP Position: "If the character value is greater than the line length it defaults back to
    the line length"."""
    assert doc(text).offset_at(pos) == offset


def test_empty_document() -> None:
    d = doc("")
    assert d.offset_at(P(0, 0)) == 0
    assert d.position_at(0) == P(0, 0)
    assert d.offset_at(P(0, 1)) == 0
    assert d.tree is not None


def test_position_after_trailing_newline() -> None:
    d = doc("a\n")
    assert d.offset_at(P(1, 0)) == 2
    assert d.position_at(2) == P(1, 0)


def test_incremental_edits_match_full_text_and_full_parse() -> None:
    d = doc("function f(a) {\n  return a;\n}\n")
    d.apply_change(R((1, 9), (1, 10)), "a + 😀.length")  # replace "a"
    d.apply_change(R((0, 15), (0, 15)), "\r\n  const z = 'é';")  # insert after "{"
    d.apply_change(R((3, 0), (3, 1)), "}\n// done")  # replace "}"
    d.apply_change(R((0, 0), (0, 8)), "async function")  # replace "function"
    expected = "async function f(a) {\r\n  const z = 'é';\n  return a + 😀.length;\n}\n// done\n"
    assert d.text == expected
    assert d.tree is not None
    full = new_parser().parse(utf8(expected))
    assert str(d.tree.root_node) == str(full.root_node)
    assert d.tree.root_node.end_byte == len(utf8(expected))


def test_random_edits_keep_tree_identical_to_full_parse() -> None:
    rng = random.Random(3)
    pieces = ["x", "(", ")", "{", "}", "\n", "\r\n", "😀", "é", "'", "`${", "//", " ", "let a = 1;"]
    d = doc("const a = [1, 2];\nfunction g() { return `t${a}`; }\n")
    for _ in range(200):
        a, b = sorted(rng.randrange(len(d.text) + 1) for _ in range(2))
        # keep edits off the middle of a "\r\n" so positions are representable
        if any(i and d.text[i - 1 : i + 1] == "\r\n" for i in (a, b)):
            continue
        new = "".join(rng.choice(pieces) for _ in range(rng.randrange(3)))
        expected = d.text[:a] + new + d.text[b:]
        d.apply_change(Range(start=d.position_at(a), end=d.position_at(b)), new)
        assert d.text == expected
    assert d.tree is not None
    assert str(d.tree.root_node) == str(new_parser().parse(utf8(d.text)).root_node)


def test_bad_range_changes_nothing() -> None:
    d = doc("abc\n")
    tree = d.tree
    with pytest.raises(PositionError):
        d.apply_change(R((0, 1), (5, 0)), "x")
    with pytest.raises(PositionError):
        d.apply_change(R((0, 2), (0, 1)), "x")  # end before start
    assert d.text == "abc\n" and d.tree is tree


def test_whole_document_change() -> None:
    d = doc("abc")
    d.apply_change(None, "let x = 1;\n")
    assert d.text == "let x = 1;\n"
    assert d.tree is not None and not d.tree.root_node.has_error


def test_huge_document_has_no_tree_but_positions_work() -> None:
    line = "const value_" + "x" * 40 + " = 'abcdefghijklmnop';\n"
    text = line * (5_000_000 // len(line))
    d = doc(text)
    assert len(text) > 4_900_000
    assert d.tree is None
    last = len(d.line_starts) - 1
    assert d.offset_at(P(last, 0)) == len(text)
    d.apply_change(R((last - 1, 0), (last, 0)), "")
    assert d.text == text[: -len(line)]
    assert d.tree is None
    # shrinking below the limit brings the tree back
    d.apply_change(None, "let a = 1;\n")
    assert d.tree is not None


def test_edit_crossing_tree_size_limit() -> None:
    d = doc("let a = 1;\n")
    d.apply_change(R((1, 0), (1, 0)), "/*" + "x" * TREE_MAX_BYTES + "*/\n")
    assert d.tree is None
    d.apply_change(R((1, 0), (2, 0)), "")
    assert d.text == "let a = 1;\n" and d.tree is not None


def test_binary_junk_and_lone_surrogates_do_not_crash() -> None:
    junk = bytes(range(256)).decode("latin-1") * 50 + "\ud800 lone surrogate \x00\x01"
    d = doc(junk)
    assert d.tree is not None
    last = len(d.line_starts) - 1
    start = d.line_starts[last]
    d.apply_change(Range(start=P(last, 0), end=P(last, 0)), "\udfff\x00")
    assert d.text == junk[:start] + "\udfff\x00" + junk[start:]
    assert d.tree is not None and d.tree.root_node.end_byte == len(utf8(d.text))
    assert d.position_at(len(d.text)).line == last


def test_store_open_change_close_get() -> None:
    store = DocumentStore()
    store.open("u", "javascript", 1, "a\nb")
    d = store.change(
        "u",
        2,
        [
            TextDocumentContentChangePartial(range=R((1, 1), (1, 1)), text="c"),
            TextDocumentContentChangeWholeDocument(text="whole"),
            TextDocumentContentChangePartial(range=R((0, 5), (0, 5)), text="!"),
        ],
    )
    assert d.text == "whole!" and d.version == 2
    assert store.get("u") is d and "u" in store and len(store) == 1
    store.close("u")
    with pytest.raises(UnknownDocumentError) as info:
        store.get("u")
    assert "u" in info.value.user_message
    store.close("u")  # closing twice is harmless


def test_store_change_is_all_or_nothing() -> None:
    store = DocumentStore()
    store.open("u", "javascript", 1, "abc")
    with pytest.raises(PositionError):
        store.change(
            "u",
            2,
            [
                TextDocumentContentChangePartial(range=R((0, 0), (0, 0)), text="x"),
                TextDocumentContentChangePartial(range=R((7, 0), (7, 0)), text="y"),
            ],
        )
    d = store.get("u")
    assert d.text == "abc" and d.version == 1
    assert d.tree is not None and d.tree.root_node.end_byte == 3


def test_store_change_unknown_document() -> None:
    with pytest.raises(UnknownDocumentError):
        DocumentStore().change("nope", 1, [])
