"""The one way a `Completer` is built, and the tokenizer its workspace index is built with: for
the editor's loader, the `complete` CLI, evaluation and the benchmarks, so that what is measured
offline is what an editor gets."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.cache import CompletionCache
from server.completion import Completer
from server.settings import Settings
from server.stats import Stats

if TYPE_CHECKING:
    from server.engines.base import BaseEngine

logger = logging.getLogger(__name__)

# Recent completions remembered for exact and typed-ahead hits; a few hundred strings is cheap.
CACHE_ENTRIES = 256


def build_completer(
    settings: Settings,
    engine: BaseEngine | None = None,
    *,
    stats: Stats | None = None,
    cache_entries: int = CACHE_ENTRIES,
    **measure: Any,
) -> Completer:
    """The Completer for `settings`: around `engine` (loaded here when None) for the in-process
    backend, or the remote engine `settings.backend` names (a bad URL raises `BackendError`).

    `cache_entries` 0: no completion cache (evaluation scores each row on its own). `measure`:
    what only measurements change (`token_healing`, `copy_verdicts`, `snippet_tokens`, `mix`)."""
    cache = CompletionCache(cache_entries) if cache_entries > 0 else None
    if settings.backend == "openai":
        from server.backends.openai import OpenAIBackend

        return Completer(None, cache=cache, stats=stats, backend=OpenAIBackend.from_settings(settings), **measure)
    if engine is None:
        from server.engines import load_engine

        engine = load_engine(settings)
    return Completer(engine, cache=cache, stats=stats, **measure)


def early_tokenizer(settings: Settings) -> Any:
    """The tokenizer the engine will load for `settings` (the adapter's when it has one), loaded
    on its own; None when that fails (the engine then reports why, and its own tokenizer is
    handed over once loaded)."""
    try:
        from server.models import resolve_model
        from server.tokenizer import gguf_tokenizer, is_gguf_path, load_model_tokenizer

        if is_gguf_path(settings.model):
            return gguf_tokenizer(Path(settings.model).expanduser())
        return load_model_tokenizer(resolve_model(settings.model, settings.adapter))
    except Exception as exc:
        logger.info("tokenizer not loaded ahead of the model (%s); indexing waits for the model", exc)
        return None


def index_tokenizer(completer: Completer) -> Any:
    """The tokenizer a workspace index is built with for `completer`: its engine's, or for a remote
    engine the shipped model's (copies, analogies and prompt snippets only); None when it cannot load."""
    if completer.engine is not None:
        return completer.engine.tokenizer
    return early_tokenizer(Settings())
