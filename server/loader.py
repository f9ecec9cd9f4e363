"""Model loading for the LSP server: one load at a time, off the event loop, with $/progress.

The `Engine` already loads behind a lock; this module decides *when* to load (at `initialized`,
or the first completion request, and again after a model-related setting changed), runs the load
in its own thread so the event loop keeps answering (stats, other documents, cancellations),
reports work-done progress to the client, and turns a failure into one `window/showMessage` plus
empty results until a setting change allows a retry. The model's tokenizer is loaded first, on
its own (milliseconds, against seconds for torch and the weights), and handed to `on_tokenizer`:
the workspace index is built from it while the weights load.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from server.backends.base import BackendError
from server.build import build_completer, early_tokenizer, index_tokenizer
from server.completion import Completer
from server.errors import CodeparrotError, ModelLoadError
from server.progress import begin_progress
from server.settings import Settings
from server.stats import Stats

if TYPE_CHECKING:
    from server.engines.base import BaseEngine

logger = logging.getLogger(__name__)

# Tests only: "generate-oom:N" makes the first N model forward passes raise torch.OutOfMemoryError,
# so the out-of-memory path (engine -> GenerationError -> empty result) runs for real end to end;
# "generate-slow:MS" makes each forward pass take MS ms longer, like a large model on a slow CPU,
# so that cancellation tests do not race a tiny model that finishes in a millisecond;
# "load-slow:MS" makes each model load take MS ms longer (the copy-while-loading tests).
FAULT_ENV = "CODEPARROT_TEST_FAULTS"


def describe(settings: Settings) -> str:
    if settings.backend == "openai":
        model = f" (model {settings.backend_model})" if settings.backend_model else ""
        return f"the completion server at {settings.backend_url or '(codeparrot.backendUrl not set)'}{model}"
    model = settings.model or "the shipped default model"
    return f"{model} + adapter {settings.adapter}" if settings.adapter else model


class ModelLoader:
    """Holds the engine for the current model settings; loads it in the background from
    `initialized` (or the first completion), once per model setting."""

    def __init__(self, server: LanguageServer, stats: Stats) -> None:
        self._server = server
        self._stats = stats
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="model-load")
        self._key: tuple[Any, ...] | None = None
        self._completer: Completer | None = None
        self._task: asyncio.Future[None] | None = None
        self.error: CodeparrotError | None = None
        # Called on the event loop with the model's tokenizer, as soon as it is loaded (before the
        # weights), and again with the engine's own once the model is ready.
        self.on_tokenizer: Callable[[Any], None] | None = None
        self._shipped_tokenizer: asyncio.Future[Any] | None = None  # `index_tokenizer`, remote engines

    @property
    def loaded(self) -> bool:
        return self._completer is not None

    @property
    def current(self) -> Completer | None:
        """The loaded completer, if any (no waiting, no load started)."""
        return self._completer

    @property
    def loading(self) -> bool:
        return self._task is not None and not self._task.done()

    def forget_if_changed(self, settings: Settings) -> bool:
        """Drop the engine (and a remembered failure) when the model settings changed."""
        key = settings.model_key()
        if key == self._key:
            return False
        if self._key is not None:
            logger.info("model settings changed; the model will reload on next use")
        self._key, self._completer, self._task, self.error = key, None, None, None
        return True

    def start(self, settings: Settings) -> None:
        """Begin loading for `settings` in the background, if not loaded or loading already."""
        self.forget_if_changed(settings)
        if self._completer is None and self.error is None and self._task is None:
            self._task = asyncio.ensure_future(self._load(settings))

    async def completer(self, settings: Settings, wait_s: float) -> Completer | None:
        """The ready completer, starting the load if needed and waiting at most `wait_s` for it."""
        self.forget_if_changed(settings)
        if self._completer is not None or self.error is not None:
            return self._completer
        if self._task is None:
            self._task = asyncio.ensure_future(self._load(settings))
        try:
            await asyncio.wait_for(asyncio.shield(self._task), wait_s)
        except TimeoutError:
            logger.info("model still loading; answering empty for now")
        return self._completer

    async def _load(self, settings: Settings) -> None:
        if settings.backend == "openai":
            self._connect(settings)
            return
        key = settings.model_key()
        loop = asyncio.get_running_loop()
        bar = await begin_progress(self._server, "codeparrot: loading model", describe(settings))

        def report(message: str, percentage: int | None) -> None:  # runs in the load thread
            if bar is not None:
                bar.report(message, percentage)

        def notice(message: str) -> None:  # runs in the load thread: the engine asked for fell back
            params = types.ShowMessageParams(type=types.MessageType.Warning, message=message)
            loop.call_soon_threadsafe(self._server.window_show_message, params)

        def load() -> BaseEngine:  # in the load thread: importing torch + transformers takes seconds
            tokenizer = early_tokenizer(settings)
            if tokenizer is not None:
                loop.call_soon_threadsafe(self._tokenizer_loaded, key, tokenizer)
            from server.engines import load_engine

            _slow_load_for_tests()
            return load_engine(settings, report, notice)

        error: CodeparrotError | None = None
        engine: BaseEngine | None = None
        try:
            engine = await loop.run_in_executor(self._pool, load)
        except CodeparrotError as exc:
            error = exc
        except Exception as exc:
            logger.exception("unexpected error while loading the model")
            error = ModelLoadError(f"Could not load model: {exc}")
        if bar is not None:
            bar.end("Model ready" if error is None else "Model failed to load")
        if key != self._key:
            return  # settings changed while loading: this result is stale
        if error is not None or engine is None:
            self.error = error = error or ModelLoadError("Could not load model.")
            logger.error("model load failed: %s", error.user_message)
            self._server.window_show_message(
                types.ShowMessageParams(type=types.MessageType.Error, message=error.user_message)
            )
            return
        _inject_test_faults(engine)
        self._stats.set_engine(engine.describe())
        self._completer = build_completer(settings, engine, stats=self._stats)
        logger.info("model ready: %s on the %s engine (%s)", describe(settings), engine.name, engine.format)
        self._tokenizer_loaded(key, engine.tokenizer)  # if the early load failed, index now

    def _tokenizer_loaded(self, key: tuple[Any, ...], tokenizer: Any) -> None:
        if key == self._key and self.on_tokenizer is not None:
            try:
                self.on_tokenizer(tokenizer)
            except Exception:  # indexing must never break the model load
                logger.exception("starting the workspace index failed")

    def _connect(self, settings: Settings) -> None:
        """A remote backend: nothing to load, only the settings to check (a bad one is told once)."""
        try:
            completer = build_completer(settings, stats=self._stats)
        except BackendError as exc:
            self.error = exc
            logger.error("backend not usable: %s", exc.user_message)
            self._server.window_show_message(
                types.ShowMessageParams(type=types.MessageType.Error, message=exc.user_message)
            )
            return
        env = settings.backend_api_key_env
        if env and not os.environ.get(env):
            message = f"codeparrot.backendApiKeyEnv names {env}, which is not set in the server's environment; sending no key."
            logger.warning(message)
            self._server.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning, message=message))
        self._completer = completer
        logger.info("completing with %s", describe(settings))

    async def index_tokenizer(self, completer: Completer) -> Any:
        """The tokenizer the workspace index is built with for `completer`: its engine's, or for a
        remote engine the shipped model's (loaded once, off the event loop); None when it cannot
        load."""
        if completer.engine is not None:
            return index_tokenizer(completer)
        if self._shipped_tokenizer is None:
            loop = asyncio.get_running_loop()
            self._shipped_tokenizer = loop.run_in_executor(None, index_tokenizer, completer)
        return await asyncio.shield(self._shipped_tokenizer)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _slow_load_for_tests() -> None:
    kind, _, value = os.environ.get(FAULT_ENV, "").partition(":")
    if kind == "load-slow":
        time.sleep(int(value) / 1000)


def _inject_test_faults(engine: BaseEngine) -> None:
    """Honour FAULT_ENV (tests only); a no-op unless that variable is set. Faults enter at the KV
    sequence's `eval`, so they act the same on every engine."""
    spec = os.environ.get(FAULT_ENV, "")
    kind, _, value = spec.partition(":")
    if kind not in ("generate-oom", "generate-slow"):
        return
    remaining = [int(value)]
    new_sequence = engine._new_sequence

    def faulty_sequence(name: str) -> Any:
        seq = new_sequence(name)
        evaluate = seq.eval

        def faulty_eval(ids: list[int], rows: int) -> Any:
            if kind == "generate-slow":
                time.sleep(remaining[0] / 1000)
            elif remaining[0] > 0:
                remaining[0] -= 1
                raise MemoryError(f"out of memory (injected by {FAULT_ENV})")
            return evaluate(ids, rows)

        seq.eval = faulty_eval  # type: ignore[method-assign]
        return seq

    engine._new_sequence = faulty_sequence  # type: ignore[method-assign]
    logger.warning("%s=%s: fault injection active", FAULT_ENV, spec)
