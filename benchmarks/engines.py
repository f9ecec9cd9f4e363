"""Per-token decode and cold prefill of the in-process engines, against raw llama.cpp, in one run.

    python benchmarks/engines.py                                  # the shipped model
    python benchmarks/engines.py --model server/models/default --model /tmp/cp-shaped
    python benchmarks/engines.py --make-codeparrot-shaped /tmp/cp-shaped   # + a 12 x 768 random GPT-2

For each model (the server's own GGUF conversion, cached under $CODEPARROT_CACHE_DIR or
~/.cache/codeparrot-lsp, is made on first use):

1. Decode: greedy new tokens after a ~600-token JavaScript prompt, one thread, the logits row read
   each step, timed three ways and interleaved `--repeats` times so that machine load hits all alike:
   (a) raw llama.cpp: a minimal loop on llama-cpp-python's C API (`llama_decode` of one token,
       `llama_get_logits_ith`, numpy argmax) over the very GGUF file the server's engine loaded
       (`LlamaEngine.gguf`), in its own context;
   (b) the server's `LlamaEngine.generate` (its `decode_ms_per_token`);
   (c) the server's `TorchEngine.generate` with `quantize: auto` (bf16 on a CPU with bf16
       instructions, else float32), for reference.
   Prints the medians and the ratio server/raw (issue 24's target: <= 1.3).
2. Cold prefill of `--prefill-tokens` (768) prompt tokens, up to the first token's logits: raw
   llama.cpp in one batch, the engine (`prefill_ms`) for each `CODEPARROT_THREADS_BATCH` in
   `--threads-batch` and each prefill chunk in `--chunks` (`engine.prefill_chunk`: tokens per
   evaluation between cancel checks), torch with 1 and 2 threads.

Figures are printed, never asserted. `--json FILE` also writes them.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

SHIPPED = REPO / "server" / "models" / "default"


def prompt_ids(tokenizer: Any, n: int) -> list[int]:
    """The first `n` tokens of real JavaScript (the latency replay's sample, repeated as needed)."""
    from latency import SAMPLE_JS

    text = SAMPLE_JS
    ids: list[int] = tokenizer(text)["input_ids"]
    while len(ids) < n:
        text += "\n" + SAMPLE_JS
        ids = tokenizer(text)["input_ids"]
    return ids[:n]


class RawLlama:
    """The least Python a llama.cpp greedy loop needs: one context, one sequence, one batch."""

    def __init__(self, gguf: Path, threads: int, threads_batch: int, n_ctx: int = 1024) -> None:
        import llama_cpp

        self.lib = llama_cpp
        llama_cpp.llama_backend_init()
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = 0
        self.model = llama_cpp.llama_model_load_from_file(str(gguf).encode(), mparams)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {gguf}")
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self.model)))
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = n_ctx
        params.n_threads, params.n_threads_batch = threads, threads_batch
        params.no_perf = True
        self.ctx = llama_cpp.llama_init_from_model(self.model, params)
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_init(n_ctx, 0, 1)
        self.reset()

    def set_threads(self, threads: int, threads_batch: int) -> None:
        self.lib.llama_set_n_threads(self.ctx, threads, threads_batch)

    def reset(self) -> None:
        self.lib.llama_memory_seq_rm(self.memory, 0, -1, -1)
        self.pos = 0
        self.prompt: list[int] = []
        self.first = -1

    def eval(self, ids: list[int]) -> int:
        """Evaluate `ids` (logits for the last only); the argmax of that row."""
        import numpy as np

        b, n = self.batch, len(ids)
        b.n_tokens = n
        for i, token in enumerate(ids):
            b.token[i], b.pos[i], b.n_seq_id[i] = token, self.pos + i, 1
            b.seq_id[i][0] = 0
            b.logits[i] = i == n - 1
        if self.lib.llama_decode(self.ctx, b) != 0:
            raise RuntimeError("llama_decode failed")
        self.pos += n
        row = np.ctypeslib.as_array(self.lib.llama_get_logits_ith(self.ctx, -1), shape=(self.n_vocab,))
        return int(row.argmax())

    def prefill_ms(self, ids: list[int]) -> float:
        self.reset()
        t = time.perf_counter()
        self.eval(ids)
        return (time.perf_counter() - t) * 1000.0

    def decode_ms_per_token(self, ids: list[int], new_tokens: int) -> float:
        """`new_tokens` greedy one-token steps after `ids`, timed. The prompt's KV is kept from
        the previous call with the same `ids` (only what was generated after it is removed)."""
        if self.prompt != ids:
            self.reset()
            self.first = self.eval(ids)
            self.prompt = list(ids)
        self.lib.llama_memory_seq_rm(self.memory, 0, len(ids), -1)
        self.pos = len(ids)
        token = self.first
        t = time.perf_counter()
        for _ in range(new_tokens):
            token = self.eval([token])
        return (time.perf_counter() - t) * 1000.0 / new_tokens

    def close(self) -> None:
        self.lib.llama_batch_free(self.batch)
        self.lib.llama_free(self.ctx)
        self.lib.llama_model_free(self.model)


def engine_run(engine: Any, ids: list[int], new_tokens: int, cold: bool = True) -> Any:
    """One `generate`: cold (the document's KV forgotten first: prefill, then greedy decode) or
    warm (the prompt's KV kept from the previous call with the same ids: one token evaluated)."""
    if cold:
        engine.reset_cache()
    return engine.generate(ids, max_new_tokens=new_tokens, sequence="bench")


def load(model: Path, engine: str) -> tuple[Any, float]:
    """A loaded engine and its load time in seconds."""
    from server.engines.llamacpp import LlamaEngine
    from server.engines.pytorch import TorchEngine
    from server.settings import Settings

    settings = Settings(model=str(model), engine=engine, quantize="auto", device="cpu")
    loaded = LlamaEngine(settings) if engine == "llama" else TorchEngine(settings)
    t = time.perf_counter()
    loaded.load()
    return loaded, time.perf_counter() - t


def med(values: list[float]) -> float:
    return statistics.median(values)


def measure(model: Path, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {"model": str(model)}
    os.environ["CODEPARROT_THREADS"] = "1"  # decode on one thread, everywhere
    os.environ["CODEPARROT_THREADS_BATCH"] = str(args.threads_batch[0])
    llama, out["llama_load_s"] = load(model, "llama")
    assert llama.gguf is not None
    out["gguf"] = str(llama.gguf)
    out["format"] = llama.format
    torch_engine, out["torch_load_s"] = load(model, "torch")
    out["torch_format"] = torch_engine.format
    raw = RawLlama(llama.gguf, threads=1, threads_batch=args.threads_batch[0])
    ids = prompt_ids(llama.tokenizer, args.prompt_tokens)
    n = args.new_tokens
    raw.decode_ms_per_token(ids, 4)  # llama.cpp's first calls set up per-shape work: not timed
    engine_run(llama, ids, 4)
    engine_run(torch_engine, ids, 4)

    # 1. decode, interleaved run by run; the prompt's KV is kept, so each run is all decode
    per: dict[str, list[float]] = {"raw": [], "server": [], "torch": []}
    ratios: list[float] = []
    new_counts: set[int] = set()
    for _ in range(args.repeats):
        r = raw.decode_ms_per_token(ids, n)
        result = engine_run(llama, ids, n, cold=False)
        s = result.decode_ms_per_token
        new_counts.add(result.new_tokens)
        per["raw"].append(r)
        per["server"].append(s)
        ratios.append(s / r)
        per["torch"].append(engine_run(torch_engine, ids, n, cold=False).decode_ms_per_token)
    out["decode"] = {k: {"median": med(v), "min": min(v), "all": v} for k, v in per.items()}
    out["decode"]["server_over_raw"] = {"median": med(ratios), "all": ratios,
                                        "of_minima": min(per["server"]) / min(per["raw"])}
    out["decode"]["server_new_tokens"] = sorted(new_counts)

    # 2. cold prefill
    long_ids = prompt_ids(llama.tokenizer, args.prefill_tokens)
    prefill: dict[str, list[float]] = {}
    for tb in args.threads_batch:
        raw.set_threads(1, tb)
        prefill[f"raw, one batch, {tb} batch thread(s)"] = [raw.prefill_ms(long_ids) for _ in range(args.prefill_repeats)]
    raw.close()
    default_chunk = llama.prefill_chunk
    for tb in args.threads_batch:
        if tb != args.threads_batch[0]:
            llama.close()
            os.environ["CODEPARROT_THREADS_BATCH"] = str(tb)
            llama, _ = load(model, "llama")
            engine_run(llama, long_ids[:64], 2)
        for chunk in args.chunks:
            llama.prefill_chunk = chunk
            key = f"server llama, chunk {chunk}, {tb} batch thread(s)"
            prefill[key] = [engine_run(llama, long_ids, 1).prefill_ms for _ in range(args.prefill_repeats)]
        llama.prefill_chunk = default_chunk
    llama.close()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        key = f"server torch {torch_engine.format}, chunk {torch_engine.prefill_chunk}, {threads} thread(s)"
        prefill[key] = [engine_run(torch_engine, long_ids, 1).prefill_ms for _ in range(args.prefill_repeats)]
    torch.set_num_threads(1)
    out["prefill"] = {k: {"median": med(v), "all": v} for k, v in prefill.items()}
    out["prefill_default_chunk"] = default_chunk
    del torch_engine
    gc.collect()
    return out


def report(fig: dict[str, Any], args: argparse.Namespace) -> None:
    d = fig["decode"]
    print(f"\n== {fig['model']}  (GGUF {Path(fig['gguf']).name}, {fig['format']}; torch {fig['torch_format']}; "
          f"llama.cpp engine load {fig['llama_load_s']:.2f} s)")
    print(f"decode, ms per new token after a {args.prompt_tokens}-token prompt, 1 thread "
          f"(median and min of {args.repeats} runs of {args.new_tokens} tokens):")
    print(f"  raw llama.cpp {fig['format']:>6}   {d['raw']['median']:8.2f} {d['raw']['min']:8.2f}   {_all(d['raw'])}")
    print(f"  server llama engine  {d['server']['median']:8.2f} {d['server']['min']:8.2f}   {_all(d['server'])}  "
          f"(new tokens {d['server_new_tokens']})")
    print(f"  server torch engine  {d['torch']['median']:8.2f} {d['torch']['min']:8.2f}   {_all(d['torch'])}")
    ratio = d["server_over_raw"]
    print(f"  ratio server/raw: median of the runs' ratios {ratio['median']:.2f}x, of the minima "
          f"{ratio['of_minima']:.2f}x (each run: {_all(ratio, '.2f')}; target <= 1.3)")
    print(f"  ratio torch/server llama: {d['torch']['median'] / d['server']['median']:.2f}x")
    print(f"cold prefill of {args.prefill_tokens} tokens, ms to the first token's logits, median of "
          f"{args.prefill_repeats}:")
    for key, value in fig["prefill"].items():
        print(f"  {key:<48} {value['median']:8.1f}   {_all(value, '.0f')}")


def _all(entry: dict[str, Any], fmt: str = ".2f") -> str:
    return "[" + ", ".join(format(v, fmt) for v in entry["all"]) + "]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, action="append", help="model dir (repeatable; default: the shipped one)")
    parser.add_argument("--make-codeparrot-shaped", type=Path, metavar="DIR",
                        help="also measure a random 12 x 768 GPT-2 with a 32k vocab, made once in DIR")
    parser.add_argument("--prompt-tokens", type=int, default=600)
    parser.add_argument("--new-tokens", type=int, default=64, help="greedy tokens per decode run")
    parser.add_argument("--prefill-tokens", type=int, default=768)
    parser.add_argument("--repeats", type=int, default=9, help="decode runs of each (interleaved)")
    parser.add_argument("--prefill-repeats", type=int, default=3, help="cold prefills of each option")
    parser.add_argument("--threads-batch", type=int, nargs="+", default=[1, 2], help="CODEPARROT_THREADS_BATCH values")
    parser.add_argument("--chunks", type=int, nargs="+", default=[128, 256, 1024], help="prefill chunk sizes")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    models = list(args.model or [])
    if args.make_codeparrot_shaped:
        from latency import make_codeparrot_shaped

        models.append(make_codeparrot_shaped(args.make_codeparrot_shaped))
    if not models or (args.make_codeparrot_shaped and not args.model):
        models.insert(0, SHIPPED)
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  cores visible: {len(os.sched_getaffinity(0))}  "
          f"load avg at start: {os.getloadavg()}")
    figures = []
    for model in models:
        fig = measure(model, args)
        report(fig, args)
        figures.append(fig)
    print(f"\nload avg at end: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
