"""Open documents: text, incremental edits, UTF-16 positions, and a tree-sitter tree.

LSP positions count UTF-16 code units per line (an emoji is 2), Python indexes code points,
tree-sitter indexes UTF-8 bytes; this module converts between the three. Lines end at
"\n", "\r\n" or "\r" (as LSP says). The tree is re-parsed incrementally after each edit
(`Tree.edit` + `Parser.parse(new_bytes, old_tree)`); above `TREE_MAX_BYTES` no tree is kept
and `context` falls back to text heuristics.
"""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Iterable
from typing import Any

import tree_sitter_javascript
from lsprotocol.types import Position, Range
from tree_sitter import Language, Parser, Point, Tree

from server.errors import PositionError, UnknownDocumentError

log = logging.getLogger(__name__)

JS_LANGUAGE = Language(tree_sitter_javascript.language())
TREE_MAX_BYTES = 1_000_000  # a 1 MB parse takes ~0.1-0.5 s; larger files are generated/minified anyway

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def utf16_len(s: str) -> int:
    """Length of `s` in UTF-16 code units (code points above U+FFFF count twice)."""
    if s.isascii():
        return len(s)
    return len(s) + sum(1 for ch in s if ord(ch) > 0xFFFF)


def utf8(s: str) -> bytes:
    """UTF-8 bytes as tree-sitter sees them; lone surrogates (legal in JSON) don't raise."""
    return s.encode("utf-8", "surrogatepass")


def _utf16_prefix_chars(line: str, units: int) -> int | None:
    """Number of code points spanning the first `units` UTF-16 units of `line`; past the end of
    the line, the whole line (LSP: a character beyond the line length "defaults back to the line
    length"). None when `units` lands inside a surrogate pair."""
    if line.isascii():
        return min(units, len(line))
    count = 0
    for i, ch in enumerate(line):
        if count == units:
            return i
        count += 2 if ord(ch) > 0xFFFF else 1
        if count > units:
            return None
    return len(line)


def new_parser() -> Parser:
    return Parser(JS_LANGUAGE)


class Document:
    """One open text document."""

    def __init__(self, uri: str, language_id: str, version: int, text: str) -> None:
        self.uri = uri
        self.language_id = language_id
        self.version = version
        self._parser = new_parser()
        self._set_text(text)
        self._bytes: bytes | None = None
        self.tree: Tree | None = None
        self._full_parse()

    # -- text and lines -------------------------------------------------------------------
    @property
    def text(self) -> str:
        return self._text

    def _set_text(self, text: str) -> None:
        self._text = text
        self._line_starts: list[int] | None = None  # computed lazily: edits need few lookups

    @property
    def line_starts(self) -> list[int]:
        """Code-point index where each line starts (line 0 starts at 0)."""
        if self._line_starts is None:
            self._line_starts = [0, *(m.end() for m in _LINE_BREAK.finditer(self._text))]
        return self._line_starts

    def _line_end(self, line: int) -> int:
        """Index of the end of `line`'s content (before its line break)."""
        starts = self.line_starts
        if line + 1 >= len(starts):
            return len(self._text)
        end = starts[line + 1] - 1
        if self._text[end] == "\n" and end > starts[line] and self._text[end - 1] == "\r":
            end -= 1
        return end

    def offset_at(self, position: Position) -> int:
        """Python str index of an LSP position (UTF-16 column; one past the end of its line means
        the line's end, as the spec says). Raises PositionError for a line past the document's
        end or a column inside a surrogate pair: the client is out of sync."""
        line, character = position.line, position.character
        starts = self.line_starts
        if not isinstance(line, int) or not isinstance(character, int) or line < 0 or character < 0:
            raise PositionError(f"invalid position {line}:{character}")
        if line >= len(starts):
            raise PositionError(f"line {line} is past the last line {len(starts) - 1} of {self.uri}")
        start = starts[line]
        content = self._text[start : self._line_end(line)]
        chars = _utf16_prefix_chars(content, character)
        if chars is None:
            raise PositionError(f"column {character} of line {line} is inside a surrogate pair in {self.uri}")
        return start + chars

    def position_at(self, offset: int) -> Position:
        """LSP position of a Python str index (clamped to the document)."""
        offset = max(0, min(offset, len(self._text)))
        line = bisect.bisect_right(self.line_starts, offset) - 1
        start = self.line_starts[line]
        offset = min(offset, self._line_end(line))  # between "\r" and "\n" = end of the line
        return Position(line=line, character=utf16_len(self._text[start:offset]))

    # -- edits ----------------------------------------------------------------------------
    def apply_change(self, range: Range | None, text: str) -> None:
        """Replace `range` (whole document when None) by `text`; re-parse incrementally.

        Validates the range first, so a bad range raises PositionError and changes nothing.
        """
        if range is None:
            self._set_text(text)
            self._full_parse()
            return
        start = self.offset_at(range.start)
        end = self.offset_at(range.end)
        if end < start:
            raise PositionError(f"range end {range.end} is before its start {range.start}")
        old = self._text
        self._set_text(old[:start] + text + old[end:])
        self._reparse(start, end, start + len(text), old)

    def _full_parse(self) -> None:
        data = utf8(self._text)
        if len(data) > TREE_MAX_BYTES:
            self._bytes, self.tree = None, None
            return
        self._bytes = data
        self.tree = self._parser.parse(data)

    def _reparse(self, start: int, old_end: int, new_end: int, old_text: str) -> None:
        old_bytes, tree = self._bytes, self.tree
        if tree is None or old_bytes is None:
            self._full_parse()
            return
        new_bytes = utf8(self._text)
        if len(new_bytes) > TREE_MAX_BYTES:
            self._bytes, self.tree = None, None
            return
        start_byte = len(utf8(old_text[:start]))
        old_end_byte = start_byte + len(utf8(old_text[start:old_end]))
        new_end_byte = start_byte + len(utf8(self._text[start:new_end]))
        tree.edit(
            start_byte=start_byte,
            old_end_byte=old_end_byte,
            new_end_byte=new_end_byte,
            start_point=_point(old_bytes, start_byte),
            old_end_point=_point(old_bytes, old_end_byte),
            new_end_point=_point(new_bytes, new_end_byte),
        )
        self._bytes = new_bytes
        self.tree = self._parser.parse(new_bytes, tree)


def _point(data: bytes, byte: int) -> Point:
    """tree-sitter (row, byte column); tree-sitter counts rows by "\n" only."""
    row = data.count(b"\n", 0, byte)
    return Point(row, byte - (data.rfind(b"\n", 0, byte) + 1))


class DocumentStore:
    """The documents the client has opened, by URI."""

    def __init__(self) -> None:
        self._docs: dict[str, Document] = {}

    def open(self, uri: str, language_id: str, version: int, text: str) -> Document:
        doc = Document(uri, language_id, version, text)
        self._docs[uri] = doc
        return doc

    def change(self, uri: str, version: int, changes: Iterable[Any]) -> Document:
        """Apply LSP content changes in order (objects with `.text` and an optional `.range`).

        All or nothing: if one change has a bad range, the document keeps its previous text and
        version, and PositionError is raised.
        """
        doc = self.get(uri)
        before = doc.text
        try:
            for change in changes:
                doc.apply_change(getattr(change, "range", None), change.text)
        except PositionError:
            if doc.text is not before:
                doc.apply_change(None, before)
            raise
        doc.version = version
        return doc

    def close(self, uri: str) -> None:
        self._docs.pop(uri, None)

    def get(self, uri: str) -> Document:
        try:
            return self._docs[uri]
        except KeyError:
            raise UnknownDocumentError(uri) from None

    def __contains__(self, uri: object) -> bool:
        return uri in self._docs

    def texts(self, exclude: str = "", languages: Iterable[str] | None = None) -> list[str]:
        """The texts of the open documents but `exclude`, only those in `languages` if given."""
        wanted = set(languages) if languages is not None else None
        docs = list(self._docs.values())  # the worker thread reads while the loop may open/close
        return [d.text for d in docs if d.uri != exclude and (wanted is None or d.language_id in wanted)]

    def __len__(self) -> int:
        return len(self._docs)
