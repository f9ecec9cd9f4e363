"""What the completion pipeline asks of the workspace and of the file being edited: sure copies,
next-line analogies, where a copy came from, similar-code snippets, and the ∞-gram guide the
engine mixes in (`server.retrieval` does the searching; this is the pipeline's side of it)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from server.postprocess import PostContext, apply_filters
from server.prompt import Prompt, natural_tail_ids
from server.provenance import locate_copy, locate_line
from server.retrieval.copies import COPY_MAX_TAIL, SURE_MIN_CHARS, CopyVerdict, copy_verdict, own_sources
from server.retrieval.current import CurrentDocument
from server.retrieval.index import WorkspaceIndex
from server.retrieval.mixing import MixParams, NgramGuide, prefer_local
from server.retrieval.nextline import MIN_SIMILARITY, best_of, follow_in
from server.retrieval.rules import CopyRules
from server.retrieval.suffix_array import Match, merge
from server.retrieval.vocab import blank_kinds, encoder
from server.settings import Settings
from server.stats import Stats

if TYPE_CHECKING:
    from server.completion import Outcome
    from server.engines.base import BaseEngine

# Text before the cursor tokenized for the ∞-gram query: more than MAX_QUERY tokens of code.
GUIDE_CONTEXT_CHARS = 400
# Lines of the file being edited, above and below, searched for a line like the one above a blank
# cursor line (server.retrieval.nextline); the workspace's files are indexed whole.
NEXT_LINE_OWN_LINES = 2000  # ~10 ms of regex each way; the dev sets' rows have a few hundred
# Text above the cursor line that picks the similar-code snippet (server.retrieval.snippets).
SNIPPET_QUERY_CHARS = 600
# A remote engine's path copies the majority continuation of a tail at least this long, unanimous or
# not (benchmarks/README.md, "Remote engine with the workspace": 500 rows a cut, EM/ES +0.6/+0.4
# whole line, +0.6/+0.6 mid-line over sure copies alone; 8 characters gained no more).
PROBABLE_MIN_CHARS = 16
# Shorter or split, a copy is still offered to a remote engine's path in the middle of a line after
# a tail this long, to be weighed against the engine's confidence (`remote_context.engine_defers`).
# At a line start the engine beat such copies on the tuning rows (benchmarks/README.md).
WEAK_MIN_CHARS = 4


class WorkspaceLookups:
    """The workspace index (None: only the file itself), the open document's segments per
    tokenizer, and what one request asks of them."""

    def __init__(
        self, stats: Stats, mix: MixParams, snippet_tokens: int, index: WorkspaceIndex | None
    ) -> None:
        self.stats, self.mix = stats, mix
        # Tokens of similar code from another workspace file put before the prompt (0: none).
        self.snippet_tokens = snippet_tokens
        self.index = index
        self._snippet_memo: tuple[tuple[Any, ...], list[int]] | None = None
        # Per tokenizer (by id): its blank_kinds and the documents being edited, as segments.
        self._retrieval: tuple[int, np.ndarray, CurrentDocument] | None = None

    def located(self, outcome: Outcome, prefix: str, key: str) -> Outcome:
        """`outcome` with the origin of a copy or an analogy (`server.provenance`), found in the
        workspace's other files first, then in the text before the cursor."""
        if outcome.source not in ("copy", "analogy") or not outcome.text:
            return outcome
        with self.stats.timer("provenance"):
            files = self.index.files() if self.index is not None else {}
            others = {k: t for k, t in files.items() if k != key}
            own = prefix[: prefix.rfind("\n") + 1] if outcome.source == "analogy" else prefix[:-1]
            if outcome.source == "copy":
                found = locate_copy(prefix, outcome.text, others, own)
            else:
                found = locate_line(outcome.text, others, own)
        return dataclasses.replace(outcome, copied_from=found) if found is not None else outcome

    def probable_copy(
        self, prefix: str, suffix: str, key: str, ctx: PostContext, copies: bool
    ) -> tuple[str, bool]:
        """For a remote engine, which gets no ∞-gram counts: the rest of the line that most
        occurrences of the longest tail found continue with, where it fits, and whether it is a
        majority after a long tail (PROBABLE_MIN_CHARS: taken as it is) or only a weaker copy, in
        the middle of a line after WEAK_MIN_CHARS or more (for the engine to outweigh); ("", False)
        for none."""
        if ctx.multiline or not copies:
            return "", False
        rules = CopyRules.at(key, prefix)
        mid_line = bool(prefix[prefix.rfind("\n") + 1 :].strip())
        with self.stats.timer("copy"):
            verdict = self.copy_verdict_at(
                prefix, suffix, key, rules, WEAK_MIN_CHARS if mid_line else SURE_MIN_CHARS
            )
        if not verdict.text or not rules.takes(verdict.text, verdict.length):
            return "", False
        majority = verdict.length >= PROBABLE_MIN_CHARS and 2 * verdict.votes > verdict.occurrences
        if not majority and not mid_line:
            return "", False
        return apply_filters(verdict.text, ctx), majority

    def sure_copy(self, prefix: str, suffix: str, key: str, ctx: PostContext) -> str:
        """The filtered rest of the line after a sure copy verdict (see `copy_verdict`) that fits
        where it lands (`CopyRules`), or ""."""
        rules = CopyRules.at(key, prefix)
        with self.stats.timer("copy"):
            verdict = self.copy_verdict_at(prefix, suffix, key, rules)
        copied = (
            apply_filters(verdict.text, ctx)
            if verdict.sure and rules.takes(verdict.text, verdict.length)
            else ""
        )
        if copied:
            self.stats.incr("copied")
        return copied

    def next_line(self, prefix: str, suffix: str, key: str, ctx: PostContext) -> str:
        """At the start of a blank line: the line that always followed the lines most like the
        one above it, in this file and the workspace (`server.retrieval.nextline`), or ""."""
        start, end = prefix.rfind("\n") + 1, suffix.find("\n")
        if prefix[start:].strip() or suffix[: end if end >= 0 else len(suffix)].strip():
            return ""  # not a blank line: the character-level copy and the model know better
        # The lines above the cursor line, the nearest NEXT_LINE_OWN_LINES of them (a 5 MB file is
        # not split whole at every blank line).
        above = (prefix[: start - 1] if start else "").rsplit("\n", NEXT_LINE_OWN_LINES)
        above = above[1:] if len(above) > NEXT_LINE_OWN_LINES else above
        last = next((i for i in range(len(above) - 1, -1, -1) if above[i].strip()), -1)
        if last < 0:
            return ""
        with self.stats.timer("next_line"):
            query = above[last]
            after = (
                suffix[end + 1 :].split("\n", NEXT_LINE_OWN_LINES)[:NEXT_LINE_OWN_LINES] if end >= 0 else []
            )
            found = [follow_in(query, above[:last]), follow_in(query, after)]
            rules = CopyRules.at(key, prefix)
            if self.index is not None:  # a line from a TypeScript file may not fit JavaScript
                admit = lambda line, source, text, start: rules.admits(line, len(prefix), text, start, source)  # noqa: E731
                found.append(self.index.follow(query, exclude=key, admit=admit))
            score, votes = best_of(*found)
        if score < MIN_SIMILARITY or len(votes) != 1 or not rules.fits(next(iter(votes))):
            return ""
        line = apply_filters(next(iter(votes)), ctx)
        if line:
            self.stats.incr("next_line")
        return line

    def copy_verdict_at(
        self, prefix: str, suffix: str, key: str, rules: CopyRules, at_least: int = SURE_MIN_CHARS
    ) -> CopyVerdict:
        """How the line went on after the longest tail of `prefix` (`at_least` characters or more)
        found in the file itself (away from the cursor) and the workspace's other files, counting
        the continuations that `rules` admit there."""
        own = own_sources(prefix, suffix)
        index = self.index
        if index is None:
            return copy_verdict(prefix, own, at_least=at_least, admit=lambda r, n, _t, _s: rules.admits(r, n))
        texts, narrow, first = index.copy_sources(prefix[-COPY_MAX_TAIL:], exclude=key)

        def admit(rest: str, matched: int, text: str, start: int) -> bool:
            return rules.admits(rest, matched, text, start, index.key_of(text))

        return copy_verdict(
            prefix, own + texts, at_least=at_least, narrow=lambda n: own + narrow(n), first=first, admit=admit
        )

    def snippet_block(
        self, engine: BaseEngine, prefix: str, key: str, settings: Settings, most: int
    ) -> list[int]:
        """The ids of the most similar code elsewhere in the workspace, as a path-labelled block of
        whole lines, to go before the prompt; [] when there is none. It depends only on the text
        above the cursor line, so it stays the same (and the KV cache valid) while typing on it."""
        index = self.index
        limit = min(self.snippet_tokens, most)
        if index is None or limit <= 0 or settings.workspace_index == "off":
            return []
        tokenizer = engine.tokenizer
        above = prefix[: prefix.rfind("\n") + 1][-SNIPPET_QUERY_CHARS:]
        memo = (id(index), key, above, limit)
        if self._snippet_memo is not None and self._snippet_memo[0] == memo:
            return self._snippet_memo[1]
        block = ""
        for snippet, doc in index.similar(natural_tail_ids(tokenizer, above, "", SNIPPET_QUERY_CHARS), key):
            text = tokenizer.decode(doc[snippet.start : snippet.start + limit].tolist())
            first, last = text.find("\n"), text.rfind("\n")
            if 0 <= first < last:  # whole lines only
                block += f"// {_short_path(snippet.key)}\n{text[first + 1 : last + 1]}"
        ids = encoder(tokenizer)([block + "\n"])[0] if block else []
        ids = ids[:limit] if len(ids) > limit else ids
        self._snippet_memo = (memo, ids)
        return ids

    def guide(
        self, engine: BaseEngine, prompt: Prompt, prefix: str, suffix: str, key: str, settings: Settings
    ) -> NgramGuide | None:
        """The ∞-gram guide for one request: the file itself (all of it), then the workspace."""
        if settings.workspace_index == "off":
            return None  # the model alone, exactly as without retrieval
        index = self.index
        tokenizer = engine.tokenizer
        if self._retrieval is None or self._retrieval[0] != id(tokenizer):
            kinds = blank_kinds(tokenizer)
            self._retrieval = (
                id(tokenizer),
                kinds,
                CurrentDocument(encoder(tokenizer), len(tokenizer), kinds > 0),
            )
        _, blanks, current = self._retrieval
        # Up to where the healed part starts: the cursor line holds the query followed by the
        # typed part of the word, and must not answer the query with itself.
        own = current.segments(key, prefix[: len(prefix) - len(prompt.heal)], suffix)

        def lookup(query: Sequence[int], allowed: np.ndarray | None) -> Match:
            found = merge([segment.longest(query, allowed=allowed) for segment in own])
            if index is None:
                return found
            return prefer_local(found, index.lookup(query, exclude=key, allowed=allowed), self.mix)

        # The query is the text before the completion (the healed part is generated), split as
        # the indexed files are, not as the prompt is.
        context = natural_tail_ids(tokenizer, prompt.prefix, prompt.heal, GUIDE_CONTEXT_CHARS)
        return NgramGuide([lookup], context, self.mix, blanks)


def _short_path(key: str) -> str:
    """The last two parts of a document key (URI or path): enough to say where code comes from."""
    return "/".join(key.rstrip("/").split("/")[-2:])
