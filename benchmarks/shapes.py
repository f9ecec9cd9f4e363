"""Which model shape the next accelerator run should train: decode time on a CPU and compute on a GPU.

    python benchmarks/shapes.py [--shapes 6x384,12x512,...] [--tokens 64] [--rounds 3] [--minutes 7.7]

For each candidate GPT-2 shape (vocabulary 8,192, 1,024 positions, 64-wide heads) a model with random
weights is saved beside the shipped tokenizer and loaded by the server's own llama.cpp engine (GGUF,
Q8_0 by llama.cpp's quantizer, `CODEPARROT_THREADS=1`); a 600-token prompt is evaluated, then one
token at a time through the engine's KV sequence, as the server decodes. The budget is the shipped
model on the server's torch engine (bf16 matrix products on a CPU that has them, one thread), timed
in the same rounds. Shapes are interleaved round by round so that load on a shared machine falls on
all of them alike; each cell is the median of a round's tokens, and the table gives the best round
(the least disturbed, what the machine does when idle) and the median round.

The compute columns need no GPU: training FLOPs per token (`training.kit.sizing`) at stage 6's
measured rate on one H200 (1.07 M tokens/s at 14.2 M parameters), the tokens that `--minutes` of
training buy, and epochs of corpus v3 (122.9 M tokens). Random weights decode as fast as trained
ones: the work per token does not depend on the values.
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

DEFAULT_SHAPES = "6x384,8x512,12x512,12x576,10x640,8x768,12x640,16x576,12x768"
PROMPT = 600
V3_TOKENS = 122_900_000
_LOG_CALLBACK: Any = None


def make_model(shape: str, folder: Path, tokenizer_dir: Path) -> tuple[int, dict[str, int]]:
    """A random-weight GPT-2 of `shape` (LAYERSxWIDTH) saved in `folder` with the shipped tokenizer."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    layers, width = (int(x) for x in shape.split("x"))
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=8192, n_positions=1024, n_layer=layers, n_embd=width, n_head=width // 64,
                        bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(tokenizer_dir / name, folder / name)
    return sum(p.numel() for p in model.parameters()), {"n_layer": layers, "n_embd": width, "wpe": 1024 * width}


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default=DEFAULT_SHAPES, help="LAYERSxWIDTH, comma-separated")
    ap.add_argument("--tokens", type=int, default=64, help="decoded tokens per round")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--minutes", type=float, default=7.7, help="training minutes of an accelerator run (the kit's plan)")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="shapes-"))
    os.environ["CODEPARROT_CACHE_DIR"] = str(work / "gguf")  # the random models' GGUFs go with the folder
    os.environ["CODEPARROT_THREADS"] = "1"
    os.environ["CODEPARROT_THREADS_BATCH"] = "1"
    from server.models import DEFAULT_MODEL_DIR
    from training.kit.sizing import flops_per_token, stage6_flops_per_s

    try:
        from server.engines.llamacpp import available

        why = available()
        if why is not None:
            print(f"llama.cpp is not available: {why}", file=sys.stderr)
            return 2
        import torch

        global _LOG_CALLBACK
        _LOG_CALLBACK = quiet_llama()
        torch.set_num_threads(1)
        text = "".join(p.read_text() for p in sorted((ROOT / "server").rglob("*.py")))
        engines: dict[str, Any] = {"torch bf16 (shipped)": load_engine("torch", DEFAULT_MODEL_DIR)}
        ids = engines["torch bf16 (shipped)"].tokenizer(text)["input_ids"][: PROMPT + args.tokens]
        sizes: dict[str, tuple[int, dict[str, int]]] = {}
        for shape in args.shapes.split(","):
            t = time.perf_counter()
            sizes[shape] = make_model(shape, work / shape, DEFAULT_MODEL_DIR)
            engines[shape] = load_engine("llama", work / shape)
            print(f"{shape}: {sizes[shape][0] / 1e6:.1f} M parameters, converted and loaded in "
                  f"{time.perf_counter() - t:.0f} s", file=sys.stderr)
        results: dict[str, list[float]] = {name: [] for name in engines}
        seqs = {name: engine._new_sequence("bench") for name, engine in engines.items()}  # the server's KV sequence
        for r in range(args.rounds):
            for name in engines:
                results[name].append(decode_ms(seqs[name], ids, args.tokens))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in results.items()), file=sys.stderr)
        budget = min(results["torch bf16 (shipped)"])
        rate = stage6_flops_per_s()
        print(f"\ndecode after {PROMPT} tokens, one thread, median of {args.tokens} tokens per round, {args.rounds} "
              f"rounds interleaved; budget: the shipped model on torch bf16, best round = {budget:.2f} ms/token "
              f"(median {statistics.median(results['torch bf16 (shipped)']):.2f})")
        print(f"compute at stage 6's {rate / 1e12:.0f} TFLOP/s (one H200), {args.minutes} min of training\n")
        print("| shape | parameters | × shipped | llama.cpp Q8_0 ms/token (best, median round) | best vs budget | "
              "train GFLOP/token | tokens in the run | epochs of v3 | fp16 MB |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        base_params = sizes.get("6x384", (14_186_496, {}))[0]
        for shape, (params, s) in sizes.items():
            ms = results[shape]
            fpt = flops_per_token(params, s["wpe"], s["n_layer"], s["n_embd"], 1024)
            tokens = args.minutes * 60 * rate / fpt
            print(f"| {shape} | {params / 1e6:.1f} M | {params / base_params:.1f} | {min(ms):.2f}, "
                  f"{statistics.median(ms):.2f} | {min(ms) / budget:.2f} | {fpt / 1e9:.2f} | {tokens / 1e6:.0f} M | "
                  f"{tokens / V3_TOKENS:.1f} | {2 * params / 1e6:.0f} |")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
