"""Completion requests in flight: one generation thread, a cancel event per document (a newer
request on the same document supersedes the older one, and the engine checks the event between
tokens), and the count of requests cancelled before the pipeline saw them (`codeparrot/stats`)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import logging
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from server.stats import Stats

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Requests:
    def __init__(self, stats: Stats) -> None:
        self._stats = stats
        # One generation at a time: the model, its KV caches and the CPU cores are shared.
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="generate")
        self._inflight: dict[str, threading.Event] = {}
        self._started: weakref.WeakSet[asyncio.Future[Any]] = weakref.WeakSet()  # handler tasks that ran
        self._ids = itertools.count(1)

    def begin(self) -> None:
        """Mark the current handler task as started (a cancel after this is the pipeline's to count)."""
        if (task := asyncio.current_task()) is not None:
            self._started.add(task)

    def not_started(self, task: asyncio.Future[Any]) -> bool:
        """True when a completion request's task is pending and its handler has not begun."""
        return not task.done() and task not in self._started

    def count_cancelled_unstarted(self) -> None:
        """A completion request cancelled before the pipeline saw it still counts (stats)."""
        self._stats.incr("requests")
        self._stats.incr("cancelled")

    async def run(self, uri: str, work: Callable[[threading.Event], T]) -> T | None:
        """`work(cancel)` in the generation thread, superseding `uri`'s previous request; None when
        it was cancelled before it started. Exceptions of `work` reach the caller."""
        request_id = next(self._ids)
        cancel = threading.Event()
        if (previous := self._inflight.get(uri)) is not None:
            previous.set()  # a newer request on the same document supersedes the older one
        self._inflight[uri] = cancel
        # Exactly one of the worker and the cancel path counts a request that never reached the
        # Completer (the Completer counts the ones it interrupts itself).
        claim = threading.Lock()
        state = {"started": False}

        def guarded() -> T | None:
            with claim:
                state["started"] = True
                if cancel.is_set():
                    self.count_cancelled_unstarted()
                    return None
            return work(cancel)

        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, guarded)
        except asyncio.CancelledError:
            cancel.set()
            with claim:
                if not state["started"]:
                    state["started"] = True
                    self.count_cancelled_unstarted()
            logger.debug("request %d cancelled by the client", request_id)
            raise
        finally:
            if self._inflight.get(uri) is cancel:
                del self._inflight[uri]

    def cancel(self, uri: str) -> None:
        """Stop `uri`'s request in flight, if any (its document closed)."""
        if (event := self._inflight.pop(uri, None)) is not None:
            event.set()

    def cancel_all(self) -> None:
        for event in self._inflight.values():
            event.set()

    def after(self, release: Callable[[], None]) -> None:
        """Run `release` in the generation thread, after a generation that may still be running."""
        with contextlib.suppress(RuntimeError):  # after shutdown: the process is about to go
            self._pool.submit(release)

    def shutdown(self) -> None:
        self.cancel_all()
        self._pool.shutdown(wait=False, cancel_futures=True)


def trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc's `malloc_trim`; a no-op elsewhere).
    Tensors, token arrays and strings freed while typing leave holes that glibc keeps mapped."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM: Any = None  # libc's malloc_trim once looked up, False where there is none
