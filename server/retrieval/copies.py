"""Copy-only completion (no model): the rest of the line after the longest earlier occurrence of
the text before the cursor, in other files or in the file itself.

Three uses, one implementation:
- the floor the model + workspace hybrid is measured against (`training.evaluate lines` reports
  it as `baseline_copy`);
- what the server answers with while the model is still loading (`CopyBackend`, from the open
  documents): it needs neither torch nor a tokenizer, so it answers within a second of the start,
  and only with what the loaded server would copy (a sure verdict that fits, `rules.CopyRules`);
- a verdict the `Completer` takes instead of generating, when the match is long and every
  occurrence goes on the same way (`copy_verdict(...).sure`): characters, unlike the model's
  tokens, match a half-typed word exactly (`push(ful|` finds `push(fullName)`), and copying costs
  no forward pass. Measured through the server's Completer on the tuning rows: whole-line EM/ES
  23.3/47.6 -> 23.3/48.4 %, mid-line 32.0/53.9 -> 34.7/55.1 %; rows 0-200: 22.0/45.8 -> 21.5/46.5
  and 32.0/56.4 -> 31.5/56.4 (benchmarks/README.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from server.backends.base import BackendRequest, BackendResult
from server.retrieval.rules import CopyRules

COPY_MAX_TAIL = 400  # chars of the prefix's tail looked for elsewhere
MAX_OCCURRENCES = 64  # occurrences of the longest tail read (their continuations vote)
# A verdict is sure when at least this many characters before the cursor matched and every
# occurrence continues the same way (tuning rows: 8-32 all gain; 8 gains most on mid-line cuts).
SURE_MIN_CHARS = 8


@dataclass(frozen=True)
class CopyVerdict:
    text: str  # the most common rest of the line after the longest matching tail ("" for none)
    length: int  # characters of the tail that matched
    votes: int  # occurrences continuing with `text`
    occurrences: int  # occurrences read (at most MAX_OCCURRENCES)

    @property
    def sure(self) -> bool:
        """Long enough, unanimous, and something to insert."""
        return bool(self.text) and self.length >= SURE_MIN_CHARS and self.votes == self.occurrences


NO_VERDICT = CopyVerdict("", 0, 0, 0)


def own_sources(prefix: str, suffix: str) -> list[str]:
    """The file itself without the cursor: the prefix but its last char (so the tail cannot match
    itself), ended by a line break so that an occurrence running into the cursor still votes for
    nothing (only another text's end is no vote), and the suffix after the rest of the cursor line."""
    line_end = suffix.find("\n")
    return [prefix[:-1] + "\n", suffix[line_end + 1 :] if line_end >= 0 else ""]


# Whether a continuation may be copied to the cursor: (rest, characters matched, the text it is
# in, where it starts there) -> bool (`server.retrieval.rules.CopyRules.admits`).
Admit = Callable[[str, int, str, int], bool]


def copy_verdict(
    prefix: str,
    sources: Sequence[str],
    at_least: int = 1,
    narrow: Callable[[int], Sequence[str]] | None = None,
    first: int = 0,
    admit: Admit | None = None,
) -> CopyVerdict:
    """The longest tail of `prefix` found in `sources`, and how the line goes on after it.

    Occurrence is monotone in the tail length (a tail that occurs contains every shorter tail):
    the length is found by doubling from 8, then halving (most requests end after one probe);
    each probe is a plain `str.find` per source. Tails shorter than `at_least` are not looked
    for (NO_VERDICT instead). `narrow(n)`, when given, is the part of `sources` that may hold
    the tail of n characters (all that do, in their order; `WorkspaceIndex.copy_sources`): the
    verdict is the same, without scanning the texts that cannot match. `first` is a length to probe
    before 8 (the shortest tail that `narrow` narrows): any order of probes finds the same
    longest tail, and when that one occurs, no short tail has to be looked for everywhere.
    `admit`, when given, judges each occurrence: one it refuses does not count, so the verdict is
    the longest tail with an occurrence it admits (a definition `function formatPrice(` matches
    more of `return formatPrice(` than a call site's `= formatPrice(` does; the call site votes)."""
    tail_max = min(len(prefix), COPY_MAX_TAIL)
    if tail_max == 0:
        return NO_VERDICT

    def occurrences(n: int) -> list[str]:
        """The rest of the line after each (admitted) occurrence."""
        tail = prefix[len(prefix) - n :]
        found: list[str] = []
        for text in narrow(n) if narrow is not None else sources:
            start = text.find(tail)
            while start >= 0 and len(found) < MAX_OCCURRENCES:
                # An occurrence that ends the text (another open document's unfinished line) shows
                # nothing of how the line goes on: it is no vote, and no longer match either.
                if start + n < len(text):
                    end = text.find("\n", start + n)
                    rest = text[start + n : end if end >= 0 else len(text)]
                    if admit is None or admit(rest, n, text, start + n):
                        found.append(rest)
                start = text.find(tail, start + 1)
            if len(found) == MAX_OCCURRENCES:
                break  # enough votes: the other sources need not be searched
        return found

    lo, best = 0, list[str]()  # lo: longest length known to occur
    hi = tail_max + 1  # shortest length known not to occur
    n = min(SURE_MIN_CHARS, tail_max)
    if first > n:  # a narrowed probe first: the longest tail is past it, or below it (then from 8)
        probe = min(first, tail_max)
        found = occurrences(probe)
        if found:
            lo, best = probe, found
            n = min(2 * probe, tail_max) if probe < tail_max else hi
        else:
            hi = probe
    while n < hi:  # gallop up
        found = occurrences(n)
        if not found:
            hi = n
            break
        lo, best = n, found
        n = min(2 * n, tail_max) if n < tail_max else hi
    if hi <= at_least:
        return NO_VERDICT
    while hi - lo > 1:  # then bisect
        mid = (lo + hi) // 2
        found = occurrences(mid)
        if found:
            lo, best = mid, found
        else:
            hi = mid
    if not best or lo < at_least:
        return NO_VERDICT
    counts: dict[str, int] = {}
    for rest in best:
        counts[rest] = counts.get(rest, 0) + 1
    top = max(counts, key=lambda r: (counts[r], -best.index(r)))
    return CopyVerdict(top, lo, counts[top], len(best))


def copy_prediction(prefix: str, suffix: str, others: list[str]) -> str:
    """Copy-only baseline (no model): the longest tail of `prefix` that occurs in `others` (the
    package's other files) or in the file itself (earlier in the prefix, or in the suffix), and
    the rest of the line after that occurrence; ties go to the most common continuation."""
    return copy_verdict(prefix, [*others, *own_sources(prefix, suffix)]).text


class CopyBackend:
    """The `Backend` interface over sure copy verdicts: `sources(key)` gives the texts of the
    other documents to copy from (the request's own file is its prompt and `text_after`).

    It answers while the model loads, so it holds to what the loaded server copies: a sure verdict
    (at least SURE_MIN_CHARS matched, every occurrence going on alike) that fits where it lands
    (`CopyRules`), or nothing. The baseline's any-length copy (`copy_prediction`) once showed
    `falseturn a + b;`: the editor's selected `false`, then the rest of `return` after a one-letter
    match."""

    def __init__(self, sources: Callable[[str], list[str]]) -> None:
        self.sources = sources

    def complete(self, request: BackendRequest) -> BackendResult:
        start = time.perf_counter()
        if request.cancel is not None and request.cancel.is_set():
            return BackendResult("", cancelled=True, finish_reason="cancelled")
        prefix, rules = request.prompt, CopyRules.at(request.key, request.prompt)
        sources = [*self.sources(request.key), *own_sources(prefix, request.text_after)]
        verdict = copy_verdict(
            prefix, sources, at_least=SURE_MIN_CHARS, admit=lambda rest, n, _text, _start: rules.admits(rest, n)
        )
        text = verdict.text if verdict.sure and rules.takes(verdict.text, verdict.length) else ""
        return BackendResult(text, ms=(time.perf_counter() - start) * 1000.0, finish_reason="stop")
