"""The one completion pipeline: context → cache → prompt → generate → postprocess.

Used by the LSP server, the `python -m server complete` CLI and `training.evaluate`, so that
what we measure offline is exactly what an editor gets. Each stage is timed into `Stats`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from server.backends.base import Backend, BackendRequest, BackendResult
from server.cache import CompletionCache
from server.decide import should_complete
from server.postprocess import PostContext, apply_filters, stop_reached
from server.prompt import Prompt, build_prompt, natural_tail_ids
from server.provenance import locate_copy, locate_line
from server.remote_context import RemoteSnippets
from server.retrieval.copy import COPY_MAX_TAIL, SURE_MIN_CHARS, CopyVerdict, copy_verdict, own_sources
from server.retrieval.current import CurrentDocument
from server.retrieval.index import WorkspaceIndex
from server.retrieval.mixing import MixParams, NgramGuide, prefer_local
from server.retrieval.names import workspace_offer
from server.retrieval.nextline import MIN_SIMILARITY, best_of, follow_in
from server.retrieval.rules import CopyRules, loop_bound, trailing_word
from server.retrieval.segment import Match, merge
from server.retrieval.vocab import blank_kinds, encoder
from server.settings import Settings
from server.stats import Stats

if TYPE_CHECKING:  # torch loads with the model, not with the server (copy answers meanwhile)
    from server.engines.base import BaseEngine
    from server.engines.decode import GenerationResult

log = logging.getLogger(__name__)

# Text around the cursor handed to the filters: they look at the cursor line and the few lines
# after it, and the stop check runs after every token, so a 5 MB file must not reach them whole.
FILTER_CONTEXT_CHARS = 4000
# Text before the cursor tokenized for the ∞-gram query: more than MAX_QUERY tokens of code.
GUIDE_CONTEXT_CHARS = 400
# Lines of the file being edited, above and below, searched for a line like the one above a blank
# cursor line (server.retrieval.nextline); the workspace's files are indexed whole.
NEXT_LINE_OWN_LINES = 2000  # ~10 ms of regex each way; the dev sets' rows have a few hundred
# Text above the cursor line that picks the similar-code snippet (server.retrieval.snippets).
SNIPPET_QUERY_CHARS = 600
# A remote engine's tokenizer is not ours: its prompt budget (maxPromptTokens) is counted in
# characters at this rate, which JavaScript in GPT-2-style BPE vocabularies exceeds (≈ 3-4).
CHARS_PER_TOKEN = 3
# A remote engine's path copies the majority continuation of a tail at least this long, unanimous or
# not (benchmarks/README.md, "Remote engine with the workspace": 500 rows a cut, EM/ES +0.6/+0.4
# whole line, +0.6/+0.6 mid-line over sure copies alone; 8 characters gained no more).
PROBABLE_MIN_CHARS = 16


def cache_key(key: str, settings: Settings, multiline: bool) -> str:
    """The completion cache's key: the same place with different output-shaping settings must
    not share entries."""
    return f"{key}\x00{settings.max_new_tokens}\x00{settings.max_prompt_tokens}\x00{settings.fim}\x00{multiline}"


@dataclass
class Outcome:
    text: str
    multiline: bool
    cache_hit: bool
    result: GenerationResult | None
    reason: str
    backend: BackendResult | None = None  # set when a remote backend generated (or failed)
    notice: str = ""  # a message for the user: the first failure of a backend outage, once
    # What produced the text (server.feedback.SOURCES): acceptance is counted per source.
    source: str = "model"
    # A copy's or an analogy's origin: (document key, "" for the file itself; 1-based line).
    copied_from: tuple[str, int] | None = None


class Completer:
    """Completions for one loaded `Engine`; thread-safe as far as its parts are."""

    def __init__(
        self,
        engine: BaseEngine | None,
        cache: CompletionCache | None = None,
        stats: Stats | None = None,
        *,
        token_healing: bool = True,
        workspace: WorkspaceIndex | None = None,
        mix: MixParams | None = None,
        backend: Backend | None = None,
        snippet_tokens: int = 0,
        copy_verdicts: bool = True,
    ) -> None:
        if (engine is None) == (backend is None):
            raise ValueError("a Completer generates with exactly one of an Engine and a remote Backend")
        self.engine = engine
        # A remote engine (settings.backend "openai"): text in, text out. Context decisions, the
        # completion cache, stop checks and filters stay here; token-level parts (healing, KV
        # reuse, ∞-gram mixing) need the model's logits and are the local engine's only.
        self.backend = backend
        # Take a sure character-level copy instead of generating (off only to measure what it buys).
        self.copy_verdicts = copy_verdicts
        # Tokens of similar code from another workspace file put before the prompt (0: none).
        self.snippet_tokens = snippet_tokens
        self._snippet_memo: tuple[tuple[Any, ...], list[int]] | None = None
        self.workspace = workspace  # None: only the file itself is copied from (workspaceIndex on)
        # A remote engine's: the tokenizer `workspace` was built with (the shipped model's), for
        # the snippets put in its prompt (server.remote_context).
        self.index_tokenizer: Any = None
        self._remote_snippets = RemoteSnippets()
        self.mix = mix or MixParams()
        self.cache = cache
        self.stats = stats if stats is not None else Stats()
        self.token_healing = token_healing  # see server.prompt: off only to measure what it buys
        # Per tokenizer (by id): its blank_kinds and the documents being edited, as segments.
        self._retrieval: tuple[int, np.ndarray, CurrentDocument] | None = None

    def complete(
        self,
        text: str,
        offset: int,
        *,
        tree: Any = None,
        settings: Settings,
        key: str = "",
        cancel: threading.Event | None = None,
    ) -> Outcome:
        """The completion to insert at `offset` (a str index into `text`), or "" and why not.

        `key` names the document: it scopes both the completion cache and the engine's KV cache,
        so typing in one file does not evict another file's reusable state.
        """
        stats = self.stats
        stats.incr("requests")
        start = time.perf_counter()
        try:
            outcome = self._complete(text, offset, tree, settings, key, cancel)
            outcome = self._named(outcome, text, offset, settings, key, cancel)
            return self._located(outcome, text[:offset], key)
        finally:
            stats.record("total", (time.perf_counter() - start) * 1000.0)

    def _complete(
        self,
        text: str,
        offset: int,
        tree: Any,
        settings: Settings,
        key: str,
        cancel: threading.Event | None,
    ) -> Outcome:
        stats = self.stats
        with stats.timer("context"):
            decision = should_complete(text, offset, tree, settings.multiline)
        prefix, suffix = text[:offset], text[offset:]

        if not decision.complete:
            # Typing the shown completion keeps showing its rest, even where we would not start
            # one: its first character may open a string (`'fs');`) or be a word character.
            if self.cache is not None:
                for multiline in (False, True):
                    hit = self.cache.get(cache_key(key, settings, multiline), prefix, suffix)
                    if hit:
                        stats.incr("cache_hits")
                        return Outcome(
                            hit, multiline, True, None, f"cache hit, typed ahead ({decision.reason})", source="cache"
                        )
            if decision.copy_only and self._copies(settings):
                # In a plain string or a comment the model is never asked, but text written out
                # elsewhere, always going on the same way, is offered (a licence header, a key).
                plain = PostContext(prefix[-FILTER_CONTEXT_CHARS:], suffix[:FILTER_CONTEXT_CHARS], False)
                copied = self._sure_copy(prefix, suffix, key, plain)
                if copied:
                    if self.cache is not None:
                        self.cache.put(cache_key(key, settings, False), prefix, suffix, copied)
                    return Outcome(copied, False, False, None, f"copied ({decision.reason})", source="copy")
            return Outcome("", False, False, None, decision.reason)
        entry = cache_key(key, settings, decision.multiline)
        if self.cache is not None:
            with stats.timer("cache"):
                hit = self.cache.get(entry, prefix, suffix)
            if hit is not None:
                stats.incr("cache_hits")
                return Outcome(hit, decision.multiline, True, None, f"cache hit ({decision.reason})", source="cache")

        ctx = PostContext(
            prefix[-FILTER_CONTEXT_CHARS:], suffix[:FILTER_CONTEXT_CHARS], decision.multiline, decision.quote
        )
        if self._copies(settings) and not decision.multiline:
            # At the start of a line: the line that followed, elsewhere, lines most like the one
            # above (when they are alike enough, and all were followed by the same line).
            analogy = self._next_line(prefix, suffix, key, ctx)
            if analogy:
                if self.cache is not None:
                    self.cache.put(entry, prefix, suffix, analogy)
                return Outcome(
                    analogy, False, False, None, f"next line after a similar one ({decision.reason})", source="analogy"
                )
            # A long tail of the text that reappears elsewhere, always followed by the same rest
            # of the line: copy it, character-exact, instead of asking the model.
            copied = self._sure_copy(prefix, suffix, key, ctx)
            if copied:
                if self.cache is not None:
                    self.cache.put(entry, prefix, suffix, copied)
                return Outcome(copied, False, False, None, f"copied ({decision.reason})", source="copy")
        engine = self.engine
        if engine is None:
            assert self.backend is not None  # the constructor guarantees one of the two
            return self._complete_remote(
                self.backend, prefix, suffix, ctx, settings, entry, cancel, decision.reason, key
            )
        engine.load()  # no-op once loaded; the tokenizer is needed from here on
        with stats.timer("prompt"):
            # Fit the model: the engine's own left-cut is only a safety net (it would cut the FIM
            # header off and move the window on every keystroke, defeating KV-cache reuse).
            budget = min(settings.max_prompt_tokens, engine.max_positions - settings.max_new_tokens)
            block = self._snippet_block(engine, prefix, key, settings, budget // 2)
            prompt = build_prompt(
                engine.tokenizer,
                prefix,
                suffix,
                max(budget - len(block), 16),
                heal=self.token_healing,
                fim=settings.fim == "auto",
            )
            if not prompt.input_ids:  # an empty prefix and no start token: nothing to continue
                return Outcome("", decision.multiline, False, None, "nothing before the cursor")
            if block:
                ids = block + prompt.input_ids
                prompt = dataclasses.replace(prompt, input_ids=ids, prompt_tokens=len(ids))
        with stats.timer("retrieval"):
            guide = self._guide(engine, prompt, prefix, suffix, key, settings)
        with stats.timer("generate"):
            result = engine.generate(
                prompt.input_ids,
                max_new_tokens=settings.max_new_tokens,
                stop=lambda generated: stop_reached(generated, ctx),
                cancel=cancel,
                cache_key=key,
                heal=prompt.heal,
                guide=guide,
            )
        stats.set_last(
            result.prompt_tokens,
            result.prompt_tokens_computed,
            result.new_tokens,
            round(result.prefill_ms, 2),
            None if result.decode_ms_per_token is None else round(result.decode_ms_per_token, 3),
        )
        if result.drafted:
            stats.incr("draft_tokens", result.drafted)
            stats.incr("draft_tokens_accepted", result.draft_accepted)
        if result.cancelled:
            stats.incr("cancelled")
            return Outcome("", decision.multiline, False, result, "cancelled")
        with stats.timer("postprocess"):
            completion = apply_filters(result.text, ctx)
            # The ∞-gram counts mix TypeScript files and definitions in: the copy rules hold here too.
            completion = loop_bound(prefix, completion) if CopyRules.at(key, prefix).fits(completion) else ""
        if self.cache is not None:
            self.cache.put(entry, prefix, suffix, completion)
        log.debug(
            "completion %r: %d/%d prompt tokens computed, %d new",
            completion,
            result.prompt_tokens_computed,
            result.prompt_tokens,
            result.new_tokens,
        )
        return Outcome(completion, decision.multiline, False, result, decision.reason)

    def _named(
        self, outcome: Outcome, text: str, offset: int, settings: Settings, key: str, cancel: threading.Event | None
    ) -> Outcome:
        """`outcome`, or: in a relative module path, the workspace file that the line imports; where
        the completion makes up a name for the word being typed while the project has names that
        start with it, the most common of those and the line completed after it
        (`server.retrieval.names`)."""
        if outcome.cache_hit or outcome.reason == "cancelled" or not self._copies(settings):
            return outcome
        prefix, suffix = text[:offset], text[offset:]
        files = self.workspace.files if self.workspace is not None else dict
        offer = workspace_offer(prefix, suffix, key, outcome.text, outcome.result is not None, files)
        if offer is None:
            return outcome
        completion = offer.text
        if offer.quote:
            ctx = PostContext(prefix[-FILTER_CONTEXT_CHARS:], suffix[:FILTER_CONTEXT_CHARS], False, offer.quote)
            completion = apply_filters(completion, ctx)
        elif offer.name:
            more = self._complete(prefix + completion + suffix, offset + len(completion), None, settings, key, cancel)
            # The line after the name, unless it goes on with the name itself (`formatPrice` + `s`).
            if more.reason != "cancelled" and not trailing_word(more.text[:1]):
                completion += more.text
        if not completion:
            return outcome
        if self.cache is not None:
            self.cache.put(cache_key(key, settings, outcome.multiline), prefix, suffix, completion)
        return dataclasses.replace(
            outcome, text=completion, reason=f"from the workspace's names ({outcome.reason})", source="names"
        )

    def _located(self, outcome: Outcome, prefix: str, key: str) -> Outcome:
        """`outcome` with the origin of a copy or an analogy (`server.provenance`), found in the
        workspace's other files first, then in the text before the cursor."""
        if outcome.source not in ("copy", "analogy") or not outcome.text:
            return outcome
        with self.stats.timer("provenance"):
            files = self.workspace.files() if self.workspace is not None else {}
            others = {k: t for k, t in files.items() if k != key}
            own = prefix[: prefix.rfind("\n") + 1] if outcome.source == "analogy" else prefix[:-1]
            if outcome.source == "copy":
                found = locate_copy(prefix, outcome.text, others, own)
            else:
                found = locate_line(outcome.text, others, own)
        return dataclasses.replace(outcome, copied_from=found) if found is not None else outcome

    def _complete_remote(
        self,
        backend: Backend,
        prefix: str,
        suffix: str,
        ctx: PostContext,
        settings: Settings,
        entry: str,
        cancel: threading.Event | None,
        reason: str,
        key: str,
    ) -> Outcome:
        """One request to a remote engine: the same decisions, stop checks, filters and cache."""
        stats = self.stats
        probable = self._probable_copy(prefix, suffix, key, ctx, settings)
        if probable:  # what the in-process model's ∞-gram mixing would mostly have copied
            if self.cache is not None:
                self.cache.put(entry, prefix, suffix, probable)
            return Outcome(probable, False, False, None, f"copied, most occurrences ({reason})", source="copy")
        chars = settings.max_prompt_tokens * CHARS_PER_TOKEN
        block = ""
        if self.workspace is not None and self.index_tokenizer is not None and settings.workspace_index == "on":
            with stats.timer("snippets"):  # similar workspace code first, within its own budget
                limit = min(settings.backend_snippet_tokens, settings.max_prompt_tokens // 2)
                block = self._remote_snippets.text(self.workspace, self.index_tokenizer, prefix, key, limit)
        request = BackendRequest(
            prompt=block + _line_aligned_tail(prefix, max(chars - len(block), CHARS_PER_TOKEN * 16)),
            max_tokens=settings.max_new_tokens,
            # FIM through the OpenAI `suffix` field; a quarter of the budget, as build_prompt does.
            suffix=suffix[: chars // 4] if settings.fim == "auto" else None,
            cancel=cancel,
            stop_check=lambda generated: stop_reached(generated, ctx),
            key=key,
            text_after=suffix[:chars],
        )
        result = backend.complete(request)
        if result.finish_reason != "backoff":  # a request that never left is not the engine's time
            stats.record("backend", result.ms)
        health = getattr(backend, "health", None)
        report = health.take_report() if health is not None else None
        notice = report.user_message if report is not None else ""
        if result.cancelled:
            stats.incr("cancelled")
            return Outcome("", ctx.multiline, False, None, "cancelled", result, notice)
        if result.error is not None:
            stats.incr("backend_errors")
            return Outcome("", ctx.multiline, False, None, f"backend: {result.error}", result, notice)
        with stats.timer("postprocess"):
            completion = apply_filters(result.text, ctx)
        if self.cache is not None:
            self.cache.put(entry, prefix, suffix, completion)
        return Outcome(completion, ctx.multiline, False, None, reason, result, notice, source="remote")

    def _probable_copy(self, prefix: str, suffix: str, key: str, ctx: PostContext, settings: Settings) -> str:
        """For a remote engine, which gets no ∞-gram counts: the rest of the line that most
        occurrences of a long tail (PROBABLE_MIN_CHARS) continue with, where it fits; or ""."""
        if ctx.multiline or not self._copies(settings):
            return ""
        rules = CopyRules.at(key, prefix)
        with self.stats.timer("copy"):
            verdict = self._copy_verdict(prefix, suffix, key, rules)
        if verdict.length < PROBABLE_MIN_CHARS or 2 * verdict.votes <= verdict.occurrences:
            return ""
        return apply_filters(verdict.text, ctx) if rules.takes(verdict.text, verdict.length) else ""

    def _copies(self, settings: Settings) -> bool:
        """Whether sure copies are taken: with the workspace on, on the in-process model's path, and
        on a remote engine's once the server gave it the workspace index."""
        local_or_indexed = self.engine is not None or self.workspace is not None
        return self.copy_verdicts and local_or_indexed and settings.workspace_index == "on"

    def _sure_copy(self, prefix: str, suffix: str, key: str, ctx: PostContext) -> str:
        """The filtered rest of the line after a sure copy verdict (see `copy_verdict`) that fits
        where it lands (`CopyRules`), or ""."""
        rules = CopyRules.at(key, prefix)
        with self.stats.timer("copy"):
            verdict = self._copy_verdict(prefix, suffix, key, rules)
        copied = apply_filters(verdict.text, ctx) if verdict.sure and rules.takes(verdict.text, verdict.length) else ""
        if copied:
            self.stats.incr("copied")
        return copied

    def _next_line(self, prefix: str, suffix: str, key: str, ctx: PostContext) -> str:
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
            after = suffix[end + 1 :].split("\n", NEXT_LINE_OWN_LINES)[:NEXT_LINE_OWN_LINES] if end >= 0 else []
            found = [follow_in(query, above[:last]), follow_in(query, after)]
            rules = CopyRules.at(key, prefix)
            if self.workspace is not None:  # a line from a TypeScript file may not fit JavaScript
                admit = lambda line, source, text, start: rules.admits(line, len(prefix), text, start, source)  # noqa: E731
                found.append(self.workspace.follow(query, exclude=key, admit=admit))
            score, votes = best_of(*found)
        if score < MIN_SIMILARITY or len(votes) != 1 or not rules.fits(next(iter(votes))):
            return ""
        line = apply_filters(next(iter(votes)), ctx)
        if line:
            self.stats.incr("next_line")
        return line

    def _copy_verdict(self, prefix: str, suffix: str, key: str, rules: CopyRules) -> CopyVerdict:
        """How the line went on after the longest tail of `prefix` found in the file itself (away
        from the cursor) and the workspace's other files, counting the continuations that `rules`
        admit there."""
        own = own_sources(prefix, suffix)
        workspace = self.workspace
        if workspace is None:
            return copy_verdict(prefix, own, at_least=SURE_MIN_CHARS, admit=lambda r, n, _t, _s: rules.admits(r, n))
        texts, narrow, first = workspace.copy_sources(prefix[-COPY_MAX_TAIL:], exclude=key)

        def admit(rest: str, matched: int, text: str, start: int) -> bool:
            return rules.admits(rest, matched, text, start, workspace.key_of(text))

        return copy_verdict(
            prefix, own + texts, at_least=SURE_MIN_CHARS, narrow=lambda n: own + narrow(n), first=first, admit=admit
        )

    def _snippet_block(self, engine: BaseEngine, prefix: str, key: str, settings: Settings, most: int) -> list[int]:
        """The ids of the most similar code elsewhere in the workspace, as a path-labelled block of
        whole lines, to go before the prompt; [] when there is none. It depends only on the text
        above the cursor line, so it stays the same (and the KV cache valid) while typing on it."""
        workspace = self.workspace
        limit = min(self.snippet_tokens, most)
        if workspace is None or limit <= 0 or settings.workspace_index == "off":
            return []
        tokenizer = engine.tokenizer
        above = prefix[: prefix.rfind("\n") + 1][-SNIPPET_QUERY_CHARS:]
        memo = (id(workspace), key, above, limit)
        if self._snippet_memo is not None and self._snippet_memo[0] == memo:
            return self._snippet_memo[1]
        block = ""
        for snippet, doc in workspace.similar(natural_tail_ids(tokenizer, above, "", SNIPPET_QUERY_CHARS), key):
            text = tokenizer.decode(doc[snippet.start : snippet.start + limit].tolist())
            first, last = text.find("\n"), text.rfind("\n")
            if 0 <= first < last:  # whole lines only
                block += f"// {_short_path(snippet.key)}\n{text[first + 1 : last + 1]}"
        ids = encoder(tokenizer)([block + "\n"])[0] if block else []
        ids = ids[:limit] if len(ids) > limit else ids
        self._snippet_memo = (memo, ids)
        return ids

    def _guide(
        self, engine: BaseEngine, prompt: Prompt, prefix: str, suffix: str, key: str, settings: Settings
    ) -> NgramGuide | None:
        """The ∞-gram guide for one request: the file itself (all of it), then the workspace."""
        if settings.workspace_index == "off":
            return None  # the model alone, exactly as without retrieval
        workspace = self.workspace
        tokenizer = engine.tokenizer
        if self._retrieval is None or self._retrieval[0] != id(tokenizer):
            kinds = blank_kinds(tokenizer)
            self._retrieval = (id(tokenizer), kinds, CurrentDocument(encoder(tokenizer), len(tokenizer), kinds > 0))
        _, blanks, current = self._retrieval
        # Up to where the healed part starts: the cursor line holds the query followed by the
        # typed part of the word, and must not answer the query with itself.
        own = current.segments(key, prefix[: len(prefix) - len(prompt.heal)], suffix)

        def lookup(query: Sequence[int], allowed: np.ndarray | None) -> Match:
            found = merge([segment.longest(query, allowed=allowed) for segment in own])
            if workspace is None:
                return found
            return prefer_local(found, workspace.lookup(query, exclude=key, allowed=allowed), self.mix)

        # The query is the text before the completion (the healed part is generated), split as
        # the indexed files are, not as the prompt is.
        context = natural_tail_ids(tokenizer, prompt.prefix, prompt.heal, GUIDE_CONTEXT_CHARS)
        return NgramGuide([lookup], context, self.mix, blanks)


def _line_aligned_tail(text: str, chars: int) -> str:
    """The last `chars` characters of `text`, starting at a line start when one is in reach (a
    prompt cut mid-line looks like no code the engine was trained on)."""
    if len(text) <= chars:
        return text
    tail = text[-chars:]
    newline = tail.find("\n")
    return tail[newline + 1 :] if 0 <= newline < len(tail) // 2 else tail


def _short_path(key: str) -> str:
    """The last two parts of a document key (URI or path): enough to say where code comes from."""
    return "/".join(key.rstrip("/").split("/")[-2:])
