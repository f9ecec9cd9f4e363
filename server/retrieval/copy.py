"""Copy-only completion (no model): the rest of the line after the longest earlier occurrence of
the text before the cursor, in other files or in the file itself.

It is the floor the model + workspace hybrid is measured against (`training.evaluate lines`
reports it as `baseline_copy`), and what the server answers with while the model is still loading
(`CopyBackend`, from the open documents): on the dev sets it scores about what the model does
with the file alone, and it needs neither torch nor a tokenizer, so it answers in milliseconds of
the server's start.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from server.backends.base import BackendRequest, BackendResult

COPY_MAX_TAIL = 400  # chars of the prefix's tail the copy baseline tries to find elsewhere


def copy_prediction(prefix: str, suffix: str, others: list[str]) -> str:
    """Copy-only baseline (no model): the longest tail of `prefix` that occurs in `others` (the
    package's other files) or in the file itself (earlier in the prefix, or in the suffix), and
    the rest of the line after that occurrence; ties go to the most common continuation.

    Occurrence is monotone in the tail length (a tail that occurs contains every shorter tail),
    so the length is binary-searched; each probe is a plain `str.find` per source.
    """
    tail_max = min(len(prefix), COPY_MAX_TAIL)
    # The file itself without the cursor position: the prefix before its own last char (so the
    # tail cannot match itself), and the suffix after the rest of the cursor line.
    line_end = suffix.find("\n")
    sources = [*others, prefix[:-1], suffix[line_end + 1 :] if line_end >= 0 else ""]

    def occurrences(n: int) -> list[str]:
        tail = prefix[len(prefix) - n :]
        found: list[str] = []
        for text in sources:
            start = text.find(tail)
            while start >= 0 and len(found) < 64:
                rest = text[start + n :]
                found.append(rest[: rest.find("\n")] if "\n" in rest else rest)
                start = text.find(tail, start + 1)
        return found

    best: list[str] = []
    lo, hi = 1, tail_max
    while lo <= hi:
        mid = (lo + hi) // 2
        found = occurrences(mid)
        if found:
            best, lo = found, mid + 1
        else:
            hi = mid - 1
    if not best:
        return ""
    counts: dict[str, int] = {}
    for rest in best:
        counts[rest] = counts.get(rest, 0) + 1
    return max(counts, key=lambda r: (counts[r], -best.index(r)))


class CopyBackend:
    """The `Backend` interface over `copy_prediction`: `sources(key)` gives the texts of the
    other documents to copy from (the request's own file is its prompt and `text_after`)."""

    def __init__(self, sources: Callable[[str], list[str]]) -> None:
        self.sources = sources

    def complete(self, request: BackendRequest) -> BackendResult:
        start = time.perf_counter()
        if request.cancel is not None and request.cancel.is_set():
            return BackendResult("", cancelled=True, finish_reason="cancelled")
        text = copy_prediction(request.prompt, request.text_after, self.sources(request.key))
        return BackendResult(text, ms=(time.perf_counter() - start) * 1000.0, finish_reason="stop")
