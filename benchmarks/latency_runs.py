"""The replays `latency.py` times: through the stdio server, in process, and naive `generate`.

Each takes the keystrokes (`latency.keystrokes`: document text and cursor after each typed
character) and returns what `latency_report` prints: per-keystroke latencies in ms, cold start,
RSS and the server's own stats.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.lsp_client import LspServer, inline_params


def server_argv(args: argparse.Namespace, backend_url: str | None = None) -> list[str]:
    """`python -m server` with the replay's model and budgets (and an OpenAI-compatible backend)."""
    argv = [sys.executable, "-m", "server", "--model", str(args.model)]
    argv += ["--max-new-tokens", str(args.max_new_tokens), "--max-prompt-tokens", str(args.max_prompt_tokens)]
    argv += ["--quantize", args.quantize, "--device", "cpu", "--engine", args.engine]
    if backend_url:
        argv += ["--backend", "openai", "--backend-url", backend_url, "--backend-model", args.backend_model]
    return argv


def run_stdio(
    args: argparse.Namespace, text: str, steps: list[tuple[str, int]], backend_url: str | None = None
) -> dict[str, Any]:
    """The keystrokes typed into the real server over stdio, each completion awaited before the next."""
    uri = "file:///bench/sample.js"
    workspace = args.workspace.resolve() if args.workspace else None
    if workspace:
        uri = (workspace / "__bench__" / "sample.js").as_uri()
    t0 = time.perf_counter()
    # A raw client (benchmarks/lsp_client.py): the time measured is the round trip itself.
    client = LspServer(server_argv(args, backend_url), stderr_path=Path(args.log), timeout=600.0)
    indexed = None
    try:
        # Without a workspace the client asks for no progress reports: nothing to index.
        client.initialize(workspace=workspace, capabilities=None if workspace else {}, process_id=os.getpid())
        first_text, first_offset = steps[0]
        base = first_text[: first_offset - 1] + first_text[first_offset:]
        client.open(uri, base)
        cold, first_shown = cold_start(client, uri, base, first_offset - 1, t0)
        if workspace:
            indexed = wait_for_index(client, t0)
        latencies, shown = type_steps(client, uri, base, steps, args.interval_ms)
        stats = client.call("codeparrot/stats", None)
        rss = client.rss_kb()
    finally:
        with contextlib.suppress(Exception):  # the figures are taken; a slow exit must not lose them
            client.close(timeout=10)
    return {
        "latencies": latencies,
        "cold_s": cold,
        "rss_kb": rss,
        "stats": stats,
        "shown": shown,
        "indexed": indexed,
        "first_shown_s": first_shown,
    }


def cold_start(client: LspServer, uri: str, text: str, offset: int, t0: float) -> tuple[float, float | None]:
    """Seconds from `t0` (the spawn) to the first request that went through the model (the cold
    start), and to the first non-empty answer (while the model loads, copied from the open
    documents; see server.retrieval.copy), or None if none came before."""
    first_shown = None
    while True:
        answer = client.call("textDocument/inlineCompletion", inline_params(uri, text, offset))
        if first_shown is None and answer and answer.get("items"):
            first_shown = time.perf_counter() - t0
        if client.call("codeparrot/stats", None)["requests"] > 0:
            return time.perf_counter() - t0, first_shown
        time.sleep(0.1)  # asking again as a typist would (a request per keystroke), not in a hot loop


def type_steps(
    client: LspServer, uri: str, base: str, steps: list[tuple[str, int]], interval_ms: float
) -> tuple[list[float], int]:
    """Each keystroke as an incremental `didChange` and an inline completion awaited: the ms from the
    change sent to the completion answered, and how many answers showed something."""
    latencies: list[float] = []
    shown = 0
    current = base
    for version, (new_text, offset) in enumerate(steps, start=2):
        typed_at = offset - 1
        t = time.perf_counter()
        client.insert(uri, version, current, typed_at, new_text[typed_at])
        result = client.call("textDocument/inlineCompletion", inline_params(uri, new_text, offset))
        latencies.append((time.perf_counter() - t) * 1000.0)
        shown += bool(result and result.get("items"))
        current = new_text
        if interval_ms:
            time.sleep(interval_ms / 1000.0)
    return latencies, shown


def wait_for_index(client: LspServer, t0: float, timeout: float = 600.0) -> tuple[float, str]:
    """(seconds from spawn, message) when the indexing progress ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client.call("codeparrot/stats", None)  # collects what the server sent meanwhile
        for msg in client.notifications:
            value = msg.get("params", {}).get("value", {}) if msg.get("method") == "$/progress" else {}
            if value.get("kind") == "end" and "ndex" in str(value.get("message", "")):
                return time.perf_counter() - t0, str(value["message"])
        time.sleep(0.05)
    raise TimeoutError(f"the workspace index was not built within {timeout} s")


def run_in_process(args: argparse.Namespace, text: str, steps: list[tuple[str, int]]) -> dict[str, Any]:
    from server.build import build_completer
    from server.settings import Settings

    settings = Settings(
        model=str(args.model),
        max_new_tokens=args.max_new_tokens,
        max_prompt_tokens=args.max_prompt_tokens,
        quantize=args.quantize,
        device="cpu",
        engine=args.engine,
    )
    t0 = time.perf_counter()
    completer = build_completer(settings)
    engine = completer.engine
    assert engine is not None  # an in-process settings' Completer
    indexed = None
    if args.workspace:
        from server.retrieval.files import scan_workspace
        from server.retrieval.vocab import new_index

        index = new_index(engine.tokenizer)
        index.build((str(path), text) for path, text in scan_workspace(args.workspace))
        completer.use_index(index, engine.tokenizer, True)
        indexed = (time.perf_counter() - t0, f"{len(index)} files, {index.tokens} tokens")
    first_text, first_offset = steps[0]
    base = first_text[: first_offset - 1] + first_text[first_offset:]
    completer.complete(base, first_offset - 1, settings=settings, key="bench")
    cold = time.perf_counter() - t0
    latencies: list[float] = []
    computed: list[int] = []
    shown = 0
    for new_text, offset in steps:
        t = time.perf_counter()
        outcome = completer.complete(new_text, offset, settings=settings, key="bench")
        latencies.append((time.perf_counter() - t) * 1000.0)
        shown += bool(outcome.text)
        if outcome.result is not None:
            computed.append(outcome.result.prompt_tokens_computed)
        if args.interval_ms:
            time.sleep(args.interval_ms / 1000.0)
    rss = {"VmRSS": _self_rss_kb()}
    return {
        "latencies": latencies,
        "cold_s": cold,
        "rss_kb": rss,
        "stats": completer.stats.snapshot(),
        "shown": shown,
        "computed": computed,
        "indexed": indexed,
    }


def cache_gguf(args: argparse.Namespace) -> None:
    """Convert the model for llama.cpp now (once; later runs find it cached), so that the cold
    start measured is a second start's. Without llama-cpp-python, nothing: the server uses torch."""
    from server.engines.llamacpp import FORMAT_OF_QUANTIZE, available, is_gguf_path

    if available() is not None or is_gguf_path(str(args.model)):
        return
    from server.engines.gguf_cache import gguf_for
    from server.models import resolve_model

    t = time.perf_counter()
    path = gguf_for(resolve_model(str(args.model), ""), FORMAT_OF_QUANTIZE[args.quantize])
    print(f"GGUF for llama.cpp: {path} (ready in {time.perf_counter() - t:.1f} s)")


def _self_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def run_naive(args: argparse.Namespace, steps: list[tuple[str, int]]) -> dict[str, Any]:
    """`model.generate` on the full prompt of each sampled keystroke: no cache, no stop checks."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from server.engines.base import default_threads
    from server.prompt import build_prompt

    torch.set_num_threads(default_threads())  # the same threads as the server: a fair comparison
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    # float32 whatever the config's dtype says (transformers loads a float16 config as float16,
    # whose CPU matmuls are many times slower: not the baseline we mean).
    model = AutoModelForCausalLM.from_pretrained(args.model, use_safetensors=True, dtype=torch.float32).eval()
    # The same prompt the Completer builds: its budget is capped to fit the model's positions.
    budget = max(16, min(args.max_prompt_tokens, int(model.config.n_positions) - args.max_new_tokens))
    every = max(1, len(steps) // args.naive_requests)
    sampled = steps[::every][: args.naive_requests]
    latencies, new_tokens, prompt_tokens = [], [], []
    for text, offset in sampled:
        t = time.perf_counter()
        prompt = build_prompt(tokenizer, text[:offset], text[offset:], budget)
        ids = torch.tensor([prompt.input_ids])
        with torch.inference_mode():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=args.max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.eos_token_id,
            )
        latencies.append((time.perf_counter() - t) * 1000.0)
        new_tokens.append(out.shape[1] - ids.shape[1])
        prompt_tokens.append(ids.shape[1])
    return {"latencies": latencies, "new_tokens": new_tokens, "prompt_tokens": prompt_tokens}
