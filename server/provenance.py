"""Where a copied completion comes from: the file and line of the text it copies.

A sure copy (`server.retrieval.copies`) is the rest of a line after the longest tail of the text
before the cursor found elsewhere; a next-line analogy (`server.retrieval.nextline`) is a whole
line that followed similar lines. Both are decided from votes over many occurrences, so the
pipeline keeps no pointer to one of them; this module finds one afterwards, only for the
completions that are shown as copies (a few string searches, not one per keystroke of the model).
Other files are preferred to the file being edited: the origin worth telling is another file.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

MIN_TAIL = 8  # characters before the cursor that must match with the copy (server.retrieval.copies)
MAX_TAIL = 400


@dataclass(frozen=True)
class Provenance:
    """Where a copied completion comes from: a path relative to its workspace folder (or the
    file's own path outside any folder), and a 1-based line."""

    path: str
    line: int

    def label(self) -> str:
        return f"{self.path}:{self.line}"


def locate_copy(prefix: str, completion: str, others: Mapping[str, str], own: str) -> tuple[str, int] | None:
    """(document key, 1-based line) of the occurrence of the longest tail of `prefix` followed by
    `completion`'s first line, in `others` (first) or `own` (the file itself, the cursor excluded
    by the caller), or None."""
    rest = completion.split("\n", 1)[0]
    if not rest.strip():
        return None
    # One scan of every text for the shortest tail: only the few texts holding it are bisected.
    shortest = prefix[-MIN_TAIL:] + rest
    sources = [(key, text) for key, text in [*others.items(), ("", own)] if shortest in text]
    best: tuple[str, int] | None = None
    lo, hi = MIN_TAIL, min(len(prefix), MAX_TAIL)
    while lo <= hi:  # occurrence is monotone in the tail's length: bisect on it
        mid = (lo + hi) // 2
        found = _find(prefix[len(prefix) - mid :] + rest, sources)
        if found is None:
            hi = mid - 1
        else:
            key, text, at = found
            best = (key, text.count("\n", 0, at + mid) + 1)
            lo = mid + 1
    return best


def locate_line(line: str, others: Mapping[str, str], own: str) -> tuple[str, int] | None:
    """(document key, 1-based line) of a line whose text is `line`'s (indentation aside), in
    `others` (first) or `own`, or None."""
    wanted = line.strip()
    if not wanted:
        return None
    for key, text in [*others.items(), ("", own)]:
        for number, candidate in enumerate(text.split("\n"), 1):
            if candidate.strip() == wanted:
                return key, number
    return None


def _find(needle: str, sources: Iterable[tuple[str, str]]) -> tuple[str, str, int] | None:
    for key, text in sources:
        at = text.find(needle)
        if at >= 0:
            return key, text, at
    return None


def relative(key: str, folders: Iterable[str]) -> str:
    """A document key (`file:` URI or path) as a path relative to the workspace folder holding it;
    the file's own path outside every folder, the key itself when it is no file."""
    path = _path_of(key)
    if path is None:
        return key
    for folder in folders:
        root = _path_of(folder)
        if root is not None and path.is_relative_to(root) and path != root:
            return str(path.relative_to(root))
    return str(path)


def provenance(found: tuple[str, int] | None, own_key: str, folders: Iterable[str]) -> Provenance | None:
    """A `Provenance` for what `locate_*` found ("" as the key: the document `own_key` itself)."""
    if found is None:
        return None
    key, line = found
    return Provenance(relative(key or own_key, folders), line)


def _path_of(key: str) -> PurePosixPath | None:
    parsed = urllib.parse.urlparse(key)
    if parsed.scheme == "file":
        return PurePosixPath(urllib.parse.unquote(parsed.path))
    if parsed.scheme == "" and key.startswith("/"):
        return PurePosixPath(key)
    return None
