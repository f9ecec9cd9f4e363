"""Which model shape the next accelerator run should train: decode time on a CPU, compute on a GPU, and
whether the shipped model dir stays under its cap.

    python benchmarks/shapes.py [--shapes 6x384,8x448,...] [--tokens 64] [--rounds 3] [--minutes 8.2]
                                [--ship-cap-mb 60] [--sizes-only]

A shape is LAYERSxWIDTH (64-wide heads) or LAYERSxWIDTH/HEAD for a width that 64 does not divide
(10x416/32: 13 heads of 32). For each candidate GPT-2 shape (vocabulary 8,192, 1,024 positions) a
model with random weights is saved beside the shipped tokenizer and loaded by the server's own
llama.cpp engine (GGUF, Q8_0 by llama.cpp's quantizer, `CODEPARROT_THREADS=1`); a 600-token prompt
is evaluated, then one token at a time through the engine's KV sequence, as the server decodes. The
budget is the shipped model on the server's torch engine (bf16 matrix products on a CPU that has them,
one thread), timed in the same rounds. Shapes are interleaved round by round so that load on a shared
machine falls on all of them alike; each cell is the median of a round's tokens, and the table gives
the best round (the least disturbed, what the machine does when idle) and the median round.

The compute columns need no GPU: training FLOPs per token (`training.kit.sizing`) at stage 6's
measured rate on one H200 (1.07 M tokens/s at 14.2 M parameters), the tokens that `--minutes` of
training buy, and epochs of corpus v3 (122.9 M tokens). Random weights decode as fast as trained
ones: the work per token does not depend on the values.

The size columns: the fp16 weights, and the shipped model dir the kit's plan estimates for a model
trained on corpus v3 whole (`training.kit.sizing.ship_bytes`: the weights, the data manifest as xz,
the tokenizer, card, attribution and records), against `--ship-cap-mb`. Only the shapes that fit the
cap are timed (`--ship-cap-mb 0` times all); `--sizes-only` prints the sizes and compute, no timing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_SHAPES = "6x384,8x448,9x448,10x416/32,12x384,8x480/96,7x512,8x512,10x640"
PROMPT = 600
BUDGET = "torch bf16 (shipped)"  # the shipped model on the server's torch engine: the decode budget
_LOG_CALLBACK: Any = None


def parse_shape(shape: str) -> tuple[int, int, int]:
    """LAYERSxWIDTH[/HEAD] -> (layers, width, heads); heads are 64 wide unless HEAD says otherwise."""
    dims, _, head = shape.partition("/")
    layers, width = (int(x) for x in dims.split("x"))
    head_width = int(head or 64)
    if width % head_width:
        raise SystemExit(f"{shape}: {width} is not a multiple of the head width {head_width} (write {dims}/HEAD)")
    return layers, width, width // head_width


def gpt2_config(shape: str) -> Any:
    from transformers import GPT2Config

    layers, width, heads = parse_shape(shape)
    return GPT2Config(vocab_size=8192, n_positions=1024, n_layer=layers, n_embd=width, n_head=heads,
                      bos_token_id=0, eos_token_id=0)


def count_parameters(shape: str) -> tuple[int, dict[str, int]]:
    """Parameters of `shape`, built on the meta device (no memory), and what the FLOP count needs."""
    import torch
    from transformers import GPT2LMHeadModel

    with torch.device("meta"):
        model = GPT2LMHeadModel(gpt2_config(shape))
    layers, width, _ = parse_shape(shape)
    return sum(p.numel() for p in model.parameters()), {"n_layer": layers, "n_embd": width, "wpe": 1024 * width}


def make_model(shape: str, folder: Path, tokenizer_dir: Path) -> None:
    """A random-weight GPT-2 of `shape` saved in `folder` with the shipped tokenizer."""
    import torch
    from transformers import GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(gpt2_config(shape)).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(tokenizer_dir / name, folder / name)


def quiet_llama() -> Any:
    """Keep llama.cpp's own per-load log (tensor listings, quantizer lines) off stderr."""
    import ctypes

    import llama_cpp

    @llama_cpp.llama_log_callback  # type: ignore[misc]
    def _drop(_level: int, _text: bytes, _user: Any) -> None:
        return None

    llama_cpp.llama_log_set(_drop, ctypes.c_void_p(0))
    return _drop  # kept alive to the end of the process: llama.cpp logs while it frees models too


def load_engine(kind: str, model: Path) -> Any:
    from server.engines.llamacpp import LlamaEngine
    from server.engines.pytorch import TorchEngine
    from server.settings import Settings

    settings = Settings(model=str(model), quantize="auto", device="cpu")
    engine = (LlamaEngine if kind == "llama" else TorchEngine)(settings)
    engine.load()
    return engine


def decode_ms(seq: Any, ids: list[int], tokens: int) -> float:
    """Median ms per token of `tokens` single-token steps after a PROMPT-token prompt, from an empty sequence."""
    seq.truncate(0)
    seq.eval(ids[:PROMPT], rows=1)
    times = []
    for tok in ids[PROMPT : PROMPT + tokens]:
        t = time.perf_counter()
        seq.eval([tok], rows=1)
        times.append((time.perf_counter() - t) * 1000)
    seq.truncate(0)
    return statistics.median(times)


def measure(shapes: list[str], args: argparse.Namespace, work: Path) -> dict[str, list[float]] | None:
    """Decode ms per token per round: the shipped model on torch bf16 (the budget), each shape on llama.cpp Q8_0."""
    from server.engines.llamacpp import available
    from server.models import DEFAULT_MODEL_DIR

    why = available()
    if why is not None:
        print(f"llama.cpp is not available: {why}", file=sys.stderr)
        return None
    import torch

    global _LOG_CALLBACK
    _LOG_CALLBACK = quiet_llama()
    torch.set_num_threads(1)
    text = "".join(p.read_text() for p in sorted((ROOT / "server").rglob("*.py")))
    engines: dict[str, Any] = {BUDGET: load_engine("torch", DEFAULT_MODEL_DIR)}
    ids = engines[BUDGET].tokenizer(text)["input_ids"][: PROMPT + args.tokens]
    for shape in shapes:
        t = time.perf_counter()
        make_model(shape, work / shape.replace("/", "h"), DEFAULT_MODEL_DIR)
        engines[shape] = load_engine("llama", work / shape.replace("/", "h"))
        print(f"{shape}: converted and loaded in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    results: dict[str, list[float]] = {name: [] for name in engines}
    seqs = {name: engine._new_sequence("bench") for name, engine in engines.items()}  # the server's KV sequence
    for r in range(args.rounds):
        for name in engines:
            results[name].append(decode_ms(seqs[name], ids, args.tokens))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in results.items()), file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default=DEFAULT_SHAPES, help="LAYERSxWIDTH[/HEAD], comma-separated")
    ap.add_argument("--tokens", type=int, default=64, help="decoded tokens per round")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--minutes", type=float, default=8.2,
                    help="training minutes of an accelerator run (the kit's plan for corpus v3 whole, a shape under the cap)")
    ap.add_argument("--ship-cap-mb", type=float, default=None,
                    help="the shipped model dir's cap in MB (10^6 bytes; default: the kit's, 60); 0: time every shape")
    ap.add_argument("--sizes-only", action="store_true", help="sizes and compute only: no model is built or timed")
    args = ap.parse_args(argv)
    from server.models import DEFAULT_MODEL_DIR
    from training.kit.sizing import (
        SHIP_CAP_BYTES,
        TOKENS_PER_DOC,
        V3_TOKENS,
        flops_per_token,
        ship_bytes,
        stage6_flops_per_s,
        tokenizer_bytes,
    )

    cap = SHIP_CAP_BYTES if args.ship_cap_mb is None else round(args.ship_cap_mb * 1e6)
    v3_docs = V3_TOKENS // TOKENS_PER_DOC
    tok_bytes = tokenizer_bytes(DEFAULT_MODEL_DIR)
    shapes = args.shapes.split(",")
    sizes = {shape: count_parameters(shape) for shape in shapes}
    shipped = {shape: ship_bytes(params, v3_docs, tok_bytes) for shape, (params, _) in sizes.items()}
    fits = {shape: not cap or shipped[shape] <= cap for shape in shapes}
    results: dict[str, list[float]] = {}
    budget = 0.0
    if not args.sizes_only:
        work = Path(tempfile.mkdtemp(prefix="shapes-"))
        os.environ["CODEPARROT_CACHE_DIR"] = str(work / "gguf")  # the random models' GGUFs go with the folder
        os.environ["CODEPARROT_THREADS"] = "1"
        os.environ["CODEPARROT_THREADS_BATCH"] = "1"
        try:
            measured = measure([s for s in shapes if fits[s]], args, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if measured is None:
            return 2
        results = measured
        budget = min(results[BUDGET])
        print(f"\ndecode after {PROMPT} tokens, one thread, median of {args.tokens} tokens per round, {args.rounds} "
              f"rounds interleaved; budget: the shipped model on torch bf16, best round = {budget:.2f} ms/token "
              f"(median {statistics.median(results[BUDGET]):.2f}); load average {os.getloadavg()[0]:.2f}, "
              f"{os.getloadavg()[1]:.2f}, {os.getloadavg()[2]:.2f} at the end")
    rate = stage6_flops_per_s()
    print(f"compute at stage 6's {rate / 1e12:.0f} TFLOP/s (one H200), {args.minutes} min of training; shipped dir "
          f"for corpus v3 whole ({v3_docs:,} files; the manifest as xz), cap {cap / 1e6:.0f} MB\n")
    print("| shape | parameters | × shipped | llama.cpp Q8_0 ms/token (best, median round) | best vs budget | "
          "train GFLOP/token | tokens in the run | epochs of v3 | tokens per parameter | fp16 MB | shipped dir MB | "
          "fits the cap |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    base_params = count_parameters("6x384")[0]
    for shape, (params, s) in sizes.items():
        ms = results.get(shape)
        timed = f"{min(ms):.2f}, {statistics.median(ms):.2f} | {min(ms) / budget:.2f}" if ms else "- | -"
        fpt = flops_per_token(params, s["wpe"], s["n_layer"], s["n_embd"], 1024)
        tokens = args.minutes * 60 * rate / fpt
        print(f"| {shape} | {params / 1e6:.2f} M | {params / base_params:.2f} | {timed} | {fpt / 1e9:.3f} | "
              f"{tokens / 1e6:.0f} M | {tokens / V3_TOKENS:.1f} | {tokens / params:.1f} | {2 * params / 1e6:.1f} | "
              f"{shipped[shape] / 1e6:.1f} | {'yes' if fits[shape] else 'no'} |")
    return 0

if __name__ == "__main__":
    sys.exit(main())
