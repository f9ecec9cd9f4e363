"""The one way a `Completer` is built: by the editor's loader, the `complete` CLI, evaluation
and the benchmarks, so that what is measured offline is what an editor gets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from server.cache import CompletionCache
from server.completion import Completer
from server.settings import Settings
from server.stats import Stats

if TYPE_CHECKING:
    from server.engines.base import BaseEngine

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
