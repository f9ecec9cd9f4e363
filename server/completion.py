"""The one completion pipeline: context → cache → prompt → generate → postprocess.

Used by the LSP server, the `python -m server complete` CLI and `training.evaluate`, so that
what we measure offline is exactly what an editor gets. Each stage is timed into `Stats`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from server.backends.base import Backend, BackendRequest, BackendResult
from server.cache import CompletionCache
from server.decide import Decision, should_complete
from server.lookups import WorkspaceLookups
from server.postprocess import PostContext, apply_filters, stop_reached
from server.prompt import build_prompt
from server.remote_context import ARBITER_LOGPROBS, RemoteSnippets, engine_defers
from server.retrieval.index import WorkspaceIndex
from server.retrieval.mixing import MixParams
from server.retrieval.names import workspace_offer
from server.retrieval.rules import CopyRules, loop_bound, trailing_word
from server.settings import Settings
from server.stats import Stats

if TYPE_CHECKING:  # torch loads with the model, not with the server (copy answers meanwhile)
    from server.engines.base import BaseEngine
    from server.engines.decode import GenerationResult

log = logging.getLogger(__name__)

# Text around the cursor handed to the filters: they look at the cursor line and the few lines
# after it, and the stop check runs after every token, so a 5 MB file must not reach them whole.
FILTER_CONTEXT_CHARS = 4000
# A remote engine's tokenizer is not ours: its prompt budget (maxPromptTokens) is counted in
# characters at this rate, which JavaScript in GPT-2-style BPE vocabularies exceeds (≈ 3-4).
CHARS_PER_TOKEN = 3


def cache_entry(key: str, settings: Settings, multiline: bool) -> str:
    """The completion cache's entry for document `key`: the same place with different
    output-shaping settings must not share entries."""
    return f"{key}\x00{settings.max_new_tokens}\x00{settings.max_prompt_tokens}\x00{settings.fim}\x00{multiline}"


@dataclass
class Outcome:
    """The pipeline's result for one position: the text to show, and how it came (cached, copied,
    generated in process with its `GenerationResult` or remotely with its `BackendResult`)."""

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
        index: WorkspaceIndex | None = None,
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
        # The workspace and the file itself, as the pipeline asks them (server.lookups).
        self.stats = stats if stats is not None else Stats()
        self.lookups = WorkspaceLookups(self.stats, mix or MixParams(), snippet_tokens, index)
        # A remote engine's: the tokenizer `lookups.index` was built with (the shipped model's), for
        # the snippets put in its prompt (server.remote_context).
        self.index_tokenizer: Any = None
        self._index_ready = False
        self._remote_snippets = RemoteSnippets()
        self.cache = cache
        self.token_healing = token_healing  # see server.prompt: off only to measure what it buys

    def use_index(self, index: WorkspaceIndex, tokenizer: Any, ready: bool) -> None:
        """Complete with the workspace `index`, built with `tokenizer` (`ready`: built). Answers
        cached while it was building know nothing of the other files: once it is ready, the same
        position asked again gets a fresh completion that does."""
        if ready and not self._index_ready and self.cache is not None:
            self.cache.clear()
        self._index_ready = ready
        self.lookups.index, self.index_tokenizer = index, tokenizer

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
            return self.lookups.located(outcome, text[:offset], key)
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
        """The stages in order: decide → cache → model-free shortcuts → generate (in process or
        remote) → filters and copy rules → cache. Each stage answers or passes on."""
        stats = self.stats
        with stats.timer("context"):
            decision = should_complete(text, offset, tree, settings.multiline)
        prefix, suffix = text[:offset], text[offset:]
        if not decision.complete:
            return self._undecided(prefix, suffix, key, settings, decision)
        entry = cache_entry(key, settings, decision.multiline)
        if self.cache is not None:
            with stats.timer("cache"):
                hit = self.cache.get(entry, prefix, suffix)
            if hit is not None:
                stats.incr("cache_hits")
                return Outcome(hit, decision.multiline, True, None, f"cache hit ({decision.reason})", source="cache")
        ctx = PostContext(
            prefix[-FILTER_CONTEXT_CHARS:], suffix[:FILTER_CONTEXT_CHARS], decision.multiline, decision.quote
        )
        shortcut = self._shortcut(prefix, suffix, key, ctx, settings, decision)
        if shortcut is not None:
            if self.cache is not None:
                self.cache.put(entry, prefix, suffix, shortcut.text)
            return shortcut
        engine = self.engine
        if engine is None:
            assert self.backend is not None  # the constructor guarantees one of the two
            return self._complete_remote(
                self.backend, prefix, suffix, ctx, settings, entry, cancel, decision.reason, key
            )
        outcome = self._generate(engine, prefix, suffix, key, ctx, settings, decision, cancel)
        if self.cache is not None and outcome.reason != "cancelled" and outcome.result is not None:
            self.cache.put(entry, prefix, suffix, outcome.text)
        return outcome

    def _undecided(self, prefix: str, suffix: str, key: str, settings: Settings, decision: Decision) -> Outcome:
        """Where no completion starts: the rest of a shown one being typed through, or, in a plain
        string or a comment, a sure copy; else nothing."""
        # Typing the shown completion keeps showing its rest, even where we would not start
        # one: its first character may open a string (`'fs');`) or be a word character.
        if self.cache is not None:
            for multiline in (False, True):
                hit = self.cache.get(cache_entry(key, settings, multiline), prefix, suffix)
                if hit:
                    self.stats.incr("cache_hits")
                    return Outcome(
                        hit, multiline, True, None, f"cache hit, typed ahead ({decision.reason})", source="cache"
                    )
        if decision.copy_only and self._copies(settings):
            # In a plain string or a comment the model is never asked, but text written out
            # elsewhere, always going on the same way, is offered (a licence header, a key).
            plain = PostContext(prefix[-FILTER_CONTEXT_CHARS:], suffix[:FILTER_CONTEXT_CHARS], False)
            copied = self.lookups.sure_copy(prefix, suffix, key, plain)
            if copied:
                if self.cache is not None:
                    self.cache.put(cache_entry(key, settings, False), prefix, suffix, copied)
                return Outcome(copied, False, False, None, f"copied ({decision.reason})", source="copy")
        return Outcome("", False, False, None, decision.reason)

    def _shortcut(
        self, prefix: str, suffix: str, key: str, ctx: PostContext, settings: Settings, decision: Decision
    ) -> Outcome | None:
        """A model-free answer from the workspace (one line only), or None: the next line by
        analogy at the start of a line, else a sure copy of the rest of the line."""
        if not self._copies(settings) or decision.multiline:
            return None
        # At the start of a line: the line that followed, elsewhere, lines most like the one
        # above (when they are alike enough, and all were followed by the same line).
        analogy = self.lookups.next_line(prefix, suffix, key, ctx)
        if analogy:
            return Outcome(
                analogy, False, False, None, f"next line after a similar one ({decision.reason})", source="analogy"
            )
        # A long tail of the text that reappears elsewhere, always followed by the same rest
        # of the line: copy it, character-exact, instead of asking the model.
        copied = self.lookups.sure_copy(prefix, suffix, key, ctx)
        if copied:
            return Outcome(copied, False, False, None, f"copied ({decision.reason})", source="copy")
        return None

    def _generate(
        self,
        engine: BaseEngine,
        prefix: str,
        suffix: str,
        key: str,
        ctx: PostContext,
        settings: Settings,
        decision: Decision,
        cancel: threading.Event | None,
    ) -> Outcome:
        """The in-process model: prompt, workspace guide, generate, filters and copy rules."""
        stats = self.stats
        engine.load()  # no-op once loaded; the tokenizer is needed from here on
        with stats.timer("prompt"):
            # Fit the model: the engine's own left-cut is only a safety net (it would cut the FIM
            # header off and move the window on every keystroke, defeating KV-cache reuse).
            budget = min(settings.max_prompt_tokens, engine.max_positions - settings.max_new_tokens)
            block = self.lookups.snippet_block(engine, prefix, key, settings, budget // 2)
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
            guide = self.lookups.guide(engine, prompt, prefix, suffix, key, settings)
        with stats.timer("generate"):
            result = engine.generate(
                prompt.input_ids,
                max_new_tokens=settings.max_new_tokens,
                stop=lambda generated: stop_reached(generated, ctx),
                cancel=cancel,
                sequence=key,
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
        files = self.lookups.index.files if self.lookups.index is not None else dict
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
            self.cache.put(cache_entry(key, settings, outcome.multiline), prefix, suffix, completion)
        return dataclasses.replace(
            outcome, text=completion, reason=f"from the workspace's names ({outcome.reason})", source="names"
        )

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
        copy, majority = self.lookups.probable_copy(prefix, suffix, key, ctx, self._copies(settings))
        if copy and majority:  # what the in-process model's ∞-gram mixing would mostly have copied
            if self.cache is not None:
                self.cache.put(entry, prefix, suffix, copy)
            return Outcome(copy, False, False, None, f"copied, most occurrences ({reason})", source="copy")
        chars = settings.max_prompt_tokens * CHARS_PER_TOKEN
        block = ""
        if self.lookups.index is not None and self.index_tokenizer is not None and settings.workspace_index == "on":
            with stats.timer("snippets"):  # similar workspace code first, within its own budget
                limit = min(settings.backend_snippet_tokens, settings.max_prompt_tokens // 2)
                block = self._remote_snippets.text(self.lookups.index, self.index_tokenizer, prefix, key, limit)
        request = BackendRequest(
            prompt=block + _line_aligned_tail(prefix, max(chars - len(block), CHARS_PER_TOKEN * 16)),
            max_tokens=settings.max_new_tokens,
            # FIM through the OpenAI `suffix` field; a quarter of the budget, as build_prompt does.
            suffix=suffix[: chars // 4] if settings.fim == "auto" else None,
            cancel=cancel,
            stop_check=lambda generated: stop_reached(generated, ctx),
            key=key,
            text_after=suffix[:chars],
            # A weaker copy (a plurality, or a short tail) is weighed against the engine's own
            # confidence in what it wrote instead (`engine_defers`).
            logprobs=ARBITER_LOGPROBS if copy else None,
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
        source = "remote"
        if copy and completion != copy and engine_defers(result.tokens, copy):
            completion, reason, source = copy, f"copied, the engine unsure ({reason})", "copy"
        if self.cache is not None:
            self.cache.put(entry, prefix, suffix, completion)
        return Outcome(completion, ctx.multiline, False, None, reason, result, notice, source=source)

    def _copies(self, settings: Settings) -> bool:
        """Whether sure copies are taken: with the workspace on, on the in-process model's path, and
        on a remote engine's once the server gave it the workspace index."""
        local_or_indexed = self.engine is not None or self.lookups.index is not None
        return self.copy_verdicts and local_or_indexed and settings.workspace_index == "on"


def _line_aligned_tail(text: str, chars: int) -> str:
    """The last `chars` characters of `text`, starting at a line start when one is in reach (a
    prompt cut mid-line looks like no code the engine was trained on)."""
    if len(text) <= chars:
        return text
    tail = text[-chars:]
    newline = tail.find("\n")
    return tail[newline + 1 :] if 0 <= newline < len(tail) // 2 else tail
