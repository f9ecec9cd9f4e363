"""The backend interface: a request in, a `BackendResult` out, plus outage bookkeeping (`Health`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from server.errors import CodeparrotError

# First wait after a failure; doubled per consecutive failure: a dead engine costs one try, not one per keystroke.
BACKOFF_START_S = 0.5
# Longest wait between tries: a restarted engine is picked up within half a minute.
BACKOFF_MAX_S = 30.0


class BackendError(CodeparrotError):
    default_message = (
        "The completion server (codeparrot.backendUrl) did not answer. Check that it is running "
        "and reachable; completions resume by themselves once it answers."
    )


@dataclass
class BackendRequest:
    prompt: str  # text before the cursor (the prefix part of the prompt)
    max_tokens: int
    suffix: str | None = None  # text after the cursor, sent as OpenAI `suffix` (FIM) when set
    stop: list[str] = field(default_factory=list)
    cancel: threading.Event | None = None
    stop_check: Callable[[str], bool] | None = None  # stop_check(text_so_far) -> True ends the stream
    key: str = ""  # the document (a URI); not sent to engines
    text_after: str = ""  # the text after the cursor whether or not FIM sends it (copy reads it)
    # Ask for each generated token's log-probability and this many alternatives (OpenAI `logprobs`);
    # None: not asked (llama-cpp-python sorts the whole vocabulary per token to answer it).
    logprobs: int | None = None


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token as the engine scored it: its text, its natural-log probability, and the
    most likely alternatives there (text -> log-probability; the token itself may be among them)."""

    text: str
    logprob: float
    top: dict[str, float] = field(default_factory=dict)


@dataclass
class BackendResult:
    text: str
    cancelled: bool = False
    ms: float = 0.0  # wall time of the request
    finish_reason: str = ""  # "stop", "length", "stop_check", "cancelled", "error", "backoff"
    error: BackendError | None = None
    # The generated tokens with their log-probabilities, when asked for and the engine sent them
    # for every token; None otherwise (not every server implements `logprobs`).
    tokens: list[TokenLogprob] | None = None


class Backend(Protocol):
    def complete(self, request: BackendRequest) -> BackendResult: ...


class Health:
    """Consecutive failures, backoff, and whether an outage still needs telling the user (once)."""

    def __init__(
        self,
        start_s: float = BACKOFF_START_S,
        max_s: float = BACKOFF_MAX_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._start, self._max, self._clock = start_s, max_s, clock
        self.failures = 0
        self.last_error: BackendError | None = None
        self._retry_at = 0.0
        self._unreported = False

    def backing_off(self) -> bool:
        """True while a request should not hit the engine."""
        with self._lock:
            return self.failures > 0 and self._clock() < self._retry_at

    def failure(self, error: BackendError) -> None:
        with self._lock:
            if self.failures == 0:
                self._unreported = True  # a new outage: tell the user once
            self.failures += 1
            self.last_error = error
            self._retry_at = self._clock() + min(self._max, self._start * 2 ** (self.failures - 1))

    def success(self) -> None:
        with self._lock:
            self.failures = 0
            self._unreported = False

    def take_report(self) -> BackendError | None:
        """The error to show the user, once per outage; None otherwise."""
        with self._lock:
            if not self._unreported:
                return None
            self._unreported = False
            return self.last_error
