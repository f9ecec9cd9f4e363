"""The document being edited, as ∞-gram segments: its other lines (cached) and the cursor line.

The workspace index leaves the current document out (its indexed copy is older than the editor's
text and may hold the very line being typed), and the prompt window holds only the ~768 tokens
around the cursor; an earlier function written the same way, a table further up, is in the rest
of the file. So the whole file is searched, in two segments: the lines above and below the
cursor line, which change only when the cursor moves to another line or the user edits there
(kept per document and reused across keystrokes), and the cursor line itself (a few tokens,
rebuilt per request: `a(1), a(2), a(` copies from it).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from server.retrieval.index import Encode
from server.retrieval.suffix_array import Segment

MAX_CHARS = 200_000  # per side of the cursor line: a lookup in a huge file stays near the cursor
MAX_DOCS = 8  # documents whose other-lines segment is kept (one per file being typed in)


class CurrentDocument:
    """`segments(key, prefix, suffix)`: Segments over the document `prefix + suffix` (split at
    the cursor), the lines around the cursor line reused while they stay the same."""

    def __init__(self, encode: Encode, vocab_size: int, blank: np.ndarray | None = None) -> None:
        self.encode = encode
        self.vocab_size = vocab_size
        self.blank = blank
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[str, str, Segment]] = OrderedDict()

    def segments(self, key: str, prefix: str, suffix: str) -> list[Segment]:
        line_start = prefix.rfind("\n") + 1
        line_end = suffix.find("\n")
        line_end = len(suffix) if line_end < 0 else line_end
        above, below = prefix[max(0, line_start - MAX_CHARS) : line_start], suffix[line_end : line_end + MAX_CHARS]
        line = self.encode([prefix[line_start:], suffix[:line_end]])
        return [
            self._around(key, above, below),
            Segment([("before", line[0]), ("after", line[1])], self.vocab_size, self.blank),
        ]

    def _around(self, key: str, above: str, below: str) -> Segment:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == above and hit[1] == below:
                self._cache.move_to_end(key)
                return hit[2]
        ids = self.encode([above, below])
        segment = Segment([("above", ids[0]), ("below", ids[1])], self.vocab_size, self.blank)
        with self._lock:
            self._cache[key] = (above, below, segment)
            self._cache.move_to_end(key)
            while len(self._cache) > MAX_DOCS:
                self._cache.popitem(last=False)
        return segment
