"""What `latency.py` prints: each replay's percentiles and stats, the naive baseline, the ratios."""

from __future__ import annotations

import argparse
import os
import statistics
from typing import Any


def pct(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


def report(args: argparse.Namespace, runs: list[tuple[str, dict[str, Any]]], naive: dict[str, Any]) -> None:
    import torch

    from server.engines.pytorch import resolve_quantize

    n_lat = naive["latencies"]
    n50, n95 = pct(n_lat, 50), pct(n_lat, 95)
    mode = "in-process Completer" if args.in_process else "stdio server"
    print(
        f"model: {args.model}  quantize: {args.quantize} ({resolve_quantize(args.quantize, 'cpu')} on this CPU; "
        f"the naive baseline is float32)  max_new_tokens: {args.max_new_tokens}"
    )
    print(
        f"torch threads: {torch.get_num_threads()}  cores visible: {len(os.sched_getaffinity(0))}  load avg: {os.getloadavg()}"
    )
    quantiles = {engine: report_run(args, f"{mode}, engine {engine}", server) for engine, server in runs}
    print(
        f"naive model.generate: {len(n_lat)} requests, prompt tokens "
        f"{statistics.fmean(naive['prompt_tokens']):.0f} avg, new tokens "
        f"{statistics.fmean(naive['new_tokens']):.1f} avg"
    )
    print(f"  p50 {n50:8.1f} ms   p95 {n95:8.1f} ms")
    for engine, (s50, s95) in quantiles.items():
        print(
            f"ratio naive/server, engine {engine}: p50 {n50 / s50:.1f}x   p95 {n95 / s95:.1f}x   "
            f"naive p50 / server p95 {n50 / s95:.1f}x"
        )
    if len(quantiles) == 2:
        (a, (a50, a95)), (b, (b50, b95)) = quantiles.items()
        print(f"ratio {a}/{b}: p50 {a50 / b50:.2f}x   p95 {a95 / b95:.2f}x")


def report_backend(args: argparse.Namespace, local: dict[str, Any], remote: dict[str, Any]) -> None:
    print(f"model: {args.model}  max_new_tokens: {args.max_new_tokens}  load avg: {os.getloadavg()}")
    l50, l95 = report_run(args, "stdio server, model in process (codeparrot.backend local)", local)
    r50, r95 = report_run(args, f"stdio server, backend openai at {args.url}", remote)
    print(f"ratio backend/in-process: p50 {r50 / l50:.2f}x   p95 {r95 / l95:.2f}x")


def report_run(args: argparse.Namespace, mode: str, server: dict[str, Any]) -> tuple[float, float]:
    """Print one replay's figures; returns its (p50, p95) in ms."""
    s_lat = server["latencies"]
    s50, s95 = pct(s_lat, 50), pct(s_lat, 95)
    stats = server["stats"]
    print(f"{mode}: {len(s_lat)} keystrokes, completion shown after {server['shown']}")
    print(f"  p50 {s50:8.1f} ms   p95 {s95:8.1f} ms   mean {statistics.fmean(s_lat):8.1f} ms")
    for stage in ("generate", "backend"):
        timed = stats.get("stages_ms", {}).get(stage, {})
        if timed:
            print(
                f"  {stage} stage p50 {timed['p50']:.1f} ms  p95 {timed['p95']:.1f} ms  ({timed['count']} calls)"
            )
    print(f"  engine {stats.get('engine')}")
    print(f"  cache hits {stats.get('cache_hits')}  last request tokens {stats.get('last')}")
    if server.get("computed"):
        print(f"  prompt tokens computed per generation: {server['computed']}")
    print(f"  cold start to first completion: {server['cold_s']:.2f} s")
    if server.get("first_shown_s") is not None:
        print(
            f"  cold start to the first completion shown (copied while the model loads): {server['first_shown_s']:.2f} s"
        )
    if server.get("indexed"):
        seconds, message = server["indexed"]
        print(f"  workspace {args.workspace}: indexed {seconds:.2f} s after start ({message})")
    print(f"  RSS: {server['rss_kb']} kB")
    return s50, s95
