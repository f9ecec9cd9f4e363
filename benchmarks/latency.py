"""Typing-replay latency: the real server over stdio vs. naive `model.generate` per request.

    python benchmarks/latency.py --make-codeparrot-shaped /tmp/cp-shaped --max-new-tokens 16
    python benchmarks/latency.py --model DIR [--quantize int8] [--in-process] [--engine torch|llama]
    python benchmarks/latency.py --model DIR --backend openai --url http://127.0.0.1:8080

A JavaScript file is opened with its first part as context; then the next characters are
typed one at a time (an incremental `didChange` each), with an inline-completion request after
every keystroke, awaited before the next one. The same keystrokes (a spread-out subset: the
baseline is slow) are then timed with the naive approach: the same prompt ids, no KV reuse, no
stop checks, `model.generate(max_new_tokens=N)`. Prints p50/p95 of both and their ratio, the
server's RSS, and the cold start (process spawn → first completion, model load included).
`--in-process` drives `server.completion.Completer` directly instead of the stdio server.
`--engine auto|torch|llama` is the server's `codeparrot.engine` (default auto: llama.cpp when
llama-cpp-python is installed); given twice (`--engine torch --engine llama`) the replay runs with
each, one after the other, and their ratio is printed; for llama.cpp the model's GGUF conversion is made (or found in the
cache) before the server starts, so the cold start is that of a second start. The naive baseline
is transformers' `generate` in float32 whatever the engine.
`--workspace DIR` opens DIR as the workspace folder (the replayed file is a new, unsaved file in
it): the cold start is still to the first completion (the index builds in the background
meanwhile), then the replay waits for the index to be built (its `$/progress` end, timed from
the spawn) and types with workspace retrieval on.
`--backend openai --url URL` replays the same keystrokes twice in one run, through the stdio
server with the model in process and through the server with `codeparrot.backend: openai` asking
the engine at URL (e.g. llama.cpp's server with the same model as GGUF), and prints both and their
ratio instead of the naive baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from queue import Empty, Queue
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Default replay text (our own), long enough that the prompt is several hundred tokens.
SAMPLE_JS = """\
'use strict';

const fs = require('fs');
const path = require('path');

/**
 * A small in-memory store with expiry, used by the request handlers below.
 */
class TtlCache {
  constructor(ttlMs = 60000) {
    this.ttlMs = ttlMs;
    this.entries = new Map();
  }

  get(key) {
    const entry = this.entries.get(key);
    if (!entry) {
      return undefined;
    }
    if (Date.now() > entry.expires) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key, value) {
    this.entries.set(key, { value, expires: Date.now() + this.ttlMs });
    return this;
  }
}

function readJson(file) {
  const text = fs.readFileSync(path.resolve(file), 'utf8');
  return JSON.parse(text);
}

async function fetchAll(urls, { retries = 2 } = {}) {
  const results = [];
  for (const url of urls) {
    let attempt = 0;
    while (true) {
      try {
        const res = await fetch(url);
        if (!res.ok) {
          throw new Error(`HTTP ${res.status} for ${url}`);
        }
        results.push(await res.json());
        break;
      } catch (err) {
        attempt += 1;
        if (attempt > retries) {
          throw err;
        }
      }
    }
  }
  return results;
}

function groupBy(items, keyFn) {
  const groups = {};
  for (const item of items) {
    const key = keyFn(item);
    if (!groups[key]) {
      groups[key] = [];
    }
    groups[key].push(item);
  }
  return groups;
}

function summarize(records) {
  const byUser = groupBy(records, (r) => r.user);
  const totals = Object.entries(byUser).map(([user, rows]) => ({
    user,
    count: rows.length,
    total: rows.reduce((acc, row) => acc + row.amount, 0),
  }));
  totals.sort((a, b) => b.total - a.total);
  for (let i = 0; i < totals.length; i++) {
    console.log(`${i + 1}. ${totals[i].user}: ${totals[i].total}`);
  }
  return totals;
}

module.exports = { TtlCache, readJson, fetchAll, groupBy, summarize };
"""
TYPE_FROM = "  totals.sort("  # typing starts here: the text before it is already in the file


# ----------------------------------------------------------------------------------------------
# model for timing


def make_codeparrot_shaped(out: Path) -> Path:
    """A random GPT-2 shaped like CodeParrot-small (12 x 768, vocab 32768, 1024 positions)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    sys.path.insert(0, str(REPO / "tests"))
    from tiny_model import build_tokenizer  # the fixture's real BPE tokenizer with FIM tokens

    if (out / "config.json").is_file():
        return out
    tokenizer = build_tokenizer(out)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=32768,  # CodeParrot's vocab; ids beyond the tokenizer's decode to nothing
        n_positions=1024,
        n_embd=768,
        n_layer=12,
        n_head=12,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(out, safe_serialization=True)
    return out


# ----------------------------------------------------------------------------------------------
# keystrokes


def keystrokes(text: str, start: int, chars: int) -> list[tuple[str, int]]:
    """(document text, cursor offset) after each typed character.

    At least `chars` characters are typed, rounded up to the end of a line: the typed lines are
    missing from the file at first, so the text after the cursor is the next line, as when
    someone writes new code (not the rest of an existing line, which would block completion).
    """
    end = text.find("\n", start + chars)
    end = len(text) if end == -1 else end
    return [(text[: start + n] + text[end:], start + n) for n in range(1, end - start + 1)]


def utf16_position(text: str, offset: int) -> dict[str, int]:
    before = text[:offset]
    line = before.count("\n")
    col_text = before[before.rfind("\n") + 1 :]
    return {"line": line, "character": len(col_text.encode("utf-16-le")) // 2}


# ----------------------------------------------------------------------------------------------
# a minimal JSON-RPC client over the server's stdio (hand-written: we time the raw round trip)


class StdioClient:
    def __init__(self, argv: list[str], stderr_path: Path) -> None:
        self._stderr = stderr_path.open("wb")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, cwd=REPO
        )
        self._messages: Queue[dict[str, Any]] = Queue()
        self.notifications: list[dict[str, Any]] = []  # what the server sent unasked, in order
        self._next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = 0
            while True:
                line = out.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            self._messages.put(json.loads(out.read(length)))

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def request(self, method: str, params: Any, timeout: float = 600.0) -> Any:
        self._next_id += 1
        rid = self._next_id
        self.send({"id": rid, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self._messages.get(timeout=max(0.01, deadline - time.monotonic()))
            except Empty as exc:
                raise TimeoutError(f"{method}: no answer in {timeout} s") from exc
            if "method" in msg and "id" in msg:  # a server request (progress token, config): accept it
                self.send({"id": msg["id"], "result": None})
            elif "method" in msg:
                self.notifications.append(msg)
            elif msg.get("id") == rid:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result")

    def rss_kb(self) -> dict[str, int]:
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":")
                fields[name] = int(value.split()[0])
        return fields

    def close(self) -> None:
        try:
            self.request("shutdown", None, timeout=10)
            self.notify("exit", None)
            self.proc.wait(timeout=10)
        except Exception:  # the figures are taken; a slow exit must not lose them
            self.proc.kill()
        self._stderr.close()


def run_stdio(
    args: argparse.Namespace, text: str, steps: list[tuple[str, int]], backend_url: str | None = None
) -> dict[str, Any]:
    argv = [sys.executable, "-m", "server", "--model", str(args.model)]
    argv += ["--max-new-tokens", str(args.max_new_tokens), "--max-prompt-tokens", str(args.max_prompt_tokens)]
    argv += ["--quantize", args.quantize, "--device", "cpu", "--engine", args.engine]
    if backend_url:
        argv += ["--backend", "openai", "--backend-url", backend_url, "--backend-model", args.backend_model]
    uri = "file:///bench/sample.js"
    init: dict[str, Any] = {"processId": os.getpid(), "rootUri": None, "capabilities": {}}
    if args.workspace:
        root = args.workspace.resolve()
        uri = (root / "__bench__" / "sample.js").as_uri()
        init.update(
            rootUri=root.as_uri(),
            workspaceFolders=[{"uri": root.as_uri(), "name": root.name}],
            capabilities={"window": {"workDoneProgress": True}},
        )
    t0 = time.perf_counter()
    client = StdioClient(argv, Path(args.log))
    indexed = None
    try:
        client.request("initialize", init)
        client.notify("initialized", {})
        first_text, first_offset = steps[0]
        base = first_text[: first_offset - 1] + first_text[first_offset:]
        client.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "javascript", "version": 1, "text": base}},
        )
        # Cold start: until the first request actually went through the model.
        # First shown: the first non-empty answer (while the model loads, copied from the open
        # documents; see server.retrieval.copies).
        version, cold, first_shown = 1, None, None
        while cold is None:
            pos = utf16_position(base, first_offset - 1)
            answer = client.request(
                "textDocument/inlineCompletion",
                {"textDocument": {"uri": uri}, "position": pos, "context": {"triggerKind": 2}},
            )
            if first_shown is None and answer and answer.get("items"):
                first_shown = time.perf_counter() - t0
            if client.request("codeparrot/stats", None)["requests"] > 0:
                cold = time.perf_counter() - t0
            else:
                time.sleep(0.1)  # asking again as a typist would (a request per keystroke), not in a hot loop
        if args.workspace:
            indexed = wait_for_index(client, t0)
        latencies: list[float] = []
        shown = 0
        current = base
        for new_text, offset in steps:
            typed_at = offset - 1
            version += 1
            char = new_text[typed_at]
            start = utf16_position(current, typed_at)
            change = {"range": {"start": start, "end": start}, "text": char}
            t = time.perf_counter()
            client.notify(
                "textDocument/didChange",
                {"textDocument": {"uri": uri, "version": version}, "contentChanges": [change]},
            )
            result = client.request(
                "textDocument/inlineCompletion",
                {
                    "textDocument": {"uri": uri},
                    "position": utf16_position(new_text, offset),
                    "context": {"triggerKind": 2},
                },
            )
            latencies.append((time.perf_counter() - t) * 1000.0)
            shown += bool(result and result.get("items"))
            current = new_text
            if args.interval_ms:
                time.sleep(args.interval_ms / 1000.0)
        stats = client.request("codeparrot/stats", None)
        rss = client.rss_kb()
    finally:
        client.close()
    return {"latencies": latencies, "cold_s": cold, "rss_kb": rss, "stats": stats, "shown": shown, "indexed": indexed,
            "first_shown_s": first_shown}


def wait_for_index(client: StdioClient, t0: float, timeout: float = 600.0) -> tuple[float, str]:
    """(seconds from spawn, message) when the indexing progress ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client.request("codeparrot/stats", None)  # collects what the server sent meanwhile
        for msg in client.notifications:
            value = msg.get("params", {}).get("value", {}) if msg.get("method") == "$/progress" else {}
            if value.get("kind") == "end" and "ndex" in str(value.get("message", "")):
                return time.perf_counter() - t0, str(value["message"])
        time.sleep(0.05)
    raise TimeoutError(f"the workspace index was not built within {timeout} s")


def run_in_process(args: argparse.Namespace, text: str, steps: list[tuple[str, int]]) -> dict[str, Any]:
    from server.cache import CompletionCache
    from server.completion import Completer
    from server.engines import load_engine
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
    engine = load_engine(settings)
    completer = Completer(engine, cache=CompletionCache(256))
    indexed = None
    if args.workspace:
        from server.retrieval.files import scan_workspace
        from server.retrieval.vocab import new_index

        completer.workspace = new_index(engine.tokenizer)
        completer.workspace.build((str(path), text) for path, text in scan_workspace(args.workspace))
        indexed = (time.perf_counter() - t0, f"{len(completer.workspace)} files, {completer.workspace.tokens} tokens")
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


# ----------------------------------------------------------------------------------------------
# naive baseline


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


# ----------------------------------------------------------------------------------------------
# report


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
    print(f"model: {args.model}  quantize: {args.quantize} ({resolve_quantize(args.quantize, 'cpu')} on this CPU; "
          f"the naive baseline is float32)  max_new_tokens: {args.max_new_tokens}")
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
        print(f"ratio naive/server, engine {engine}: p50 {n50 / s50:.1f}x   p95 {n95 / s95:.1f}x   "
              f"naive p50 / server p95 {n50 / s95:.1f}x")
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
            print(f"  {stage} stage p50 {timed['p50']:.1f} ms  p95 {timed['p95']:.1f} ms  ({timed['count']} calls)")
    print(f"  engine {stats.get('engine')}")
    print(f"  cache hits {stats.get('cache_hits')}  last request tokens {stats.get('last')}")
    if server.get("computed"):
        print(f"  prompt tokens computed per generation: {server['computed']}")
    print(f"  cold start to first completion: {server['cold_s']:.2f} s")
    if server.get("first_shown_s") is not None:
        print(f"  cold start to the first completion shown (copied while the model loads): {server['first_shown_s']:.2f} s")
    if server.get("indexed"):
        seconds, message = server["indexed"]
        print(f"  workspace {args.workspace}: indexed {seconds:.2f} s after start ({message})")
    print(f"  RSS: {server['rss_kb']} kB")
    return s50, s95


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="model directory to serve")
    parser.add_argument("--make-codeparrot-shaped", type=Path, metavar="DIR", help="create (once) and use")
    parser.add_argument("--file", type=Path, help="JavaScript file to replay (default: built-in sample)")
    parser.add_argument("--type-from", default=None, help="text where typing starts (default: 2/3 in)")
    parser.add_argument("--chars", type=int, default=60, help="characters typed")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--max-prompt-tokens", type=int, default=None, help="default: the server's")
    parser.add_argument("--quantize", choices=("auto", "none", "int8", "bf16"), default="auto")
    parser.add_argument("--naive-requests", type=int, default=12, help="keystrokes timed for the baseline")
    parser.add_argument("--interval-ms", type=float, default=0.0, help="pause between keystrokes")
    parser.add_argument("--in-process", action="store_true", help="drive the Completer, not the server")
    parser.add_argument("--engine", choices=("auto", "torch", "llama"), action="append",
                        help="the server's codeparrot.engine (default auto; llama.cpp's GGUF conversion is cached "
                        "first); repeat it to replay with each engine in one run")
    parser.add_argument("--no-naive", action="store_true", help="skip the baseline")
    parser.add_argument("--workspace", type=Path, help="folder opened as the workspace (retrieval on)")
    parser.add_argument("--backend", choices=("local", "openai"), default="local",
                        help="openai: also replay through an OpenAI-compatible engine at --url")
    parser.add_argument("--url", help="the engine's base URL (with --backend openai)")
    parser.add_argument("--backend-model", default="", help="`model` sent to the engine")
    parser.add_argument("--log", default="/tmp/codeparrot-latency-server.log", help="server stderr")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.make_codeparrot_shaped:
        args.model = make_codeparrot_shaped(args.make_codeparrot_shaped)
    if args.model is None:
        parser.error("--model or --make-codeparrot-shaped is required")
    if args.max_prompt_tokens is None:
        from server.settings import Settings

        args.max_prompt_tokens = Settings().max_prompt_tokens
    engines = args.engine or ["auto"]
    if any(engine != "torch" for engine in engines):
        cache_gguf(args)
    args.engine = engines[0]
    text = args.file.read_text(encoding="utf-8") if args.file else SAMPLE_JS
    marker = args.type_from if args.type_from is not None else (TYPE_FROM if not args.file else None)
    start = text.index(marker) if marker and marker in text else (len(text) * 2) // 3
    steps = keystrokes(text, start, min(args.chars, len(text) - start))[: args.chars]
    if args.backend == "openai":
        if not args.url or args.in_process:
            parser.error("--backend openai needs --url and the stdio server (not --in-process)")
        report_backend(args, run_stdio(args, text, steps), run_stdio(args, text, steps, backend_url=args.url))
        return 0
    runs = []
    for engine in engines:  # one after the other in this run: their ratio is measured under the same load
        args.engine = engine
        runs.append((engine, run_in_process(args, text, steps) if args.in_process else run_stdio(args, text, steps)))
    naive = (
        {"latencies": [float("nan")], "new_tokens": [0], "prompt_tokens": [0]}
        if args.no_naive
        else run_naive(args, steps)
    )
    report(args, runs, naive)
    return 0


if __name__ == "__main__":
    sys.exit(main())
