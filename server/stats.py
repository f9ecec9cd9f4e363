"""Request counters and per-stage latency percentiles for `codeparrot/stats`."""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

WINDOW = 1000  # samples kept per stage: recent behaviour, bounded memory
COUNTERS = ("requests", "cancelled", "cache_hits")


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p95/p99 of `samples` (interpolated between the two nearest samples)."""
    if len(samples) == 1:
        return {"p50": samples[0], "p95": samples[0], "p99": samples[0]}
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98]}


class Stats:
    """Thread-safe: the LSP loop and the generation worker both record."""

    def __init__(self, window: int = WINDOW) -> None:
        self._lock = threading.Lock()
        self._window = window
        self._stages: dict[str, deque[float]] = {}
        self._counts: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._last: dict[str, Any] = {"prompt_tokens": 0, "prompt_tokens_computed": 0, "new_tokens": 0}
        self._engine: dict[str, Any] | None = None

    def record(self, stage: str, ms: float) -> None:
        """One timing of `stage` in milliseconds."""
        with self._lock:
            samples = self._stages.get(stage)
            if samples is None:
                samples = self._stages[stage] = deque(maxlen=self._window)
            samples.append(float(ms))

    @contextmanager
    def timer(self, stage: str) -> Iterator[None]:
        """Record the time spent in the `with` block under `stage`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.record(stage, (time.perf_counter() - start) * 1000.0)

    def incr(self, counter: str, n: int = 1) -> None:
        """Add `n` to a counter ("requests", "cancelled", "cache_hits", or a new name)."""
        with self._lock:
            self._counts[counter] = self._counts.get(counter, 0) + n

    def set_last(
        self,
        prompt_tokens: int,
        prompt_tokens_computed: int,
        new_tokens: int,
        prefill_ms: float | None = None,
        decode_ms_per_token: float | None = None,
    ) -> None:
        """Token counts (and the engine's prefill time and per-token decode time) of the latest generation."""
        with self._lock:
            self._last = {
                "prompt_tokens": prompt_tokens,
                "prompt_tokens_computed": prompt_tokens_computed,
                "new_tokens": new_tokens,
                "prefill_ms": prefill_ms,
                "decode_ms_per_token": decode_ms_per_token,
            }

    def set_engine(self, description: dict[str, Any]) -> None:
        """Which engine and weight format serve completions (`BaseEngine.describe`)."""
        with self._lock:
            self._engine = dict(description)

    def snapshot(self) -> dict[str, Any]:
        """The `codeparrot/stats` result: counters, last token counts, p50/p95/p99 per stage."""
        with self._lock:
            stages = {name: list(samples) for name, samples in self._stages.items()}
            result: dict[str, Any] = dict(self._counts)
            result["last"] = dict(self._last)
            if self._engine is not None:
                result["engine"] = dict(self._engine)
        result["stages_ms"] = {
            name: {**percentiles(samples), "count": len(samples)}
            for name, samples in stages.items()
            if samples
        }
        return result
