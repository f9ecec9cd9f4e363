"""Stats: counters, last token counts, per-stage percentiles over a bounded window."""

from __future__ import annotations

import json
import threading

import pytest

from server.stats import Stats, percentiles


def test_empty_snapshot_has_the_documented_shape() -> None:
    snap = Stats().snapshot()
    assert snap == {
        "requests": 0,
        "cancelled": 0,
        "cache_hits": 0,
        "last": {"prompt_tokens": 0, "prompt_tokens_computed": 0, "new_tokens": 0},
        "stages_ms": {},
    }
    json.dumps(snap)  # goes over JSON-RPC


def test_percentiles_of_known_samples() -> None:
    s = Stats()
    for ms in range(1, 101):  # 1..100 ms
        s.record("generate", float(ms))
    gen = s.snapshot()["stages_ms"]["generate"]
    assert gen["count"] == 100
    assert gen["p50"] == pytest.approx(50.5)
    assert gen["p95"] == pytest.approx(95.05)
    assert gen["p99"] == pytest.approx(99.01)
    assert gen["p50"] <= gen["p95"] <= gen["p99"]


def test_single_sample() -> None:
    assert percentiles([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0}


def test_window_keeps_recent_samples_only() -> None:
    s = Stats(window=10)
    for _ in range(100):
        s.record("prompt", 1000.0)
    for _ in range(10):
        s.record("prompt", 1.0)
    p = s.snapshot()["stages_ms"]["prompt"]
    assert p["count"] == 10 and p["p99"] == 1.0


def test_counters_and_last() -> None:
    s = Stats()
    s.incr("requests")
    s.incr("requests")
    s.incr("cache_hits")
    s.incr("cancelled", 3)
    s.set_last(prompt_tokens=120, prompt_tokens_computed=4, new_tokens=9, prefill_ms=12.5, decode_ms_per_token=1.25)
    s.set_engine({"name": "llama", "format": "q8_0"})
    snap = s.snapshot()
    assert (snap["requests"], snap["cache_hits"], snap["cancelled"]) == (2, 1, 3)
    assert snap["last"] == {
        "prompt_tokens": 120, "prompt_tokens_computed": 4, "new_tokens": 9, "prefill_ms": 12.5, "decode_ms_per_token": 1.25
    }
    assert snap["engine"] == {"name": "llama", "format": "q8_0"}


def test_timer_records_elapsed_time_even_on_error() -> None:
    s = Stats()
    with s.timer("context"):
        pass
    with pytest.raises(ValueError), s.timer("context"):
        raise ValueError
    ctx = s.snapshot()["stages_ms"]["context"]
    assert ctx["count"] == 2 and ctx["p50"] >= 0.0


def test_snapshot_is_a_copy() -> None:
    s = Stats()
    s.record("generate", 1.0)
    snap = s.snapshot()
    snap["last"]["new_tokens"] = 99
    s.record("generate", 2.0)
    assert s.snapshot()["last"]["new_tokens"] == 0 and snap["stages_ms"]["generate"]["count"] == 1


def test_thread_safe_recording() -> None:
    s = Stats(window=100_000)

    def work() -> None:
        for i in range(2000):
            s.record("generate", float(i))
            s.incr("requests")
            if i % 100 == 0:
                s.snapshot()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = s.snapshot()
    assert snap["requests"] == 8000 and snap["stages_ms"]["generate"]["count"] == 8000
