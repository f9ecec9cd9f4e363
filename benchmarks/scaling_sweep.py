"""The loss half of the scaling sweep (issue 13): which model shape reaches the lowest held-out
loss for the same CPU time, trained from scratch on the packed corpus.

    python benchmarks/scaling_sweep.py --tokens corpus-data/tokens-v2 --dev corpus-data/devnpm \
        --minutes 8 --out runs/sweep

For each shape: a short pilot run measures its tokens/s on this machine; the real run gets the
number of steps that fills `--minutes` at that rate (so each shape spends the same CPU time, and
its cosine schedule ends where the budget does); then the held-out dev packages are scored with
`training.evaluate perplexity` in nats per character (tokenizer-independent). Every shape uses
the shipped tokenizer, bf16 autocast and one seed. Prints a table and writes `sweep.json` and
`sweep.png` (held-out nats/char against tokens seen, one point per shape) under `--out`.
Run it on an otherwise idle machine: the budget is wall time.

    python benchmarks/scaling_sweep.py --compare runs/sweep/sweep.json runs/sweep10/sweep.json \
        --png docs/images/scaling-sweep.png

draws several sweeps (budgets) in one plot: each shape's points joined, budget by budget.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PILOT_STEPS = 12  # the first steps pay for set-up: the rate is taken over the later half


@dataclass(frozen=True)
class Shape:
    name: str
    overrides: list[str] = field(default_factory=list)
    batch: int = 4
    block: int = 1024


GPT2 = ["--recipe", "scratch-js"]
LLAMA = ["--recipe", "scratch-js-llama"]


def gpt2(layers: int, width: int, heads: int, block: int = 1024) -> list[str]:
    return [*GPT2, "--set", f"model.n_layer={layers}", "--set", f"model.n_embd={width}",
            "--set", f"model.n_head={heads}", "--set", f"model.n_positions={block}"]


def llama(layers: int, width: int, heads: int, ffn: int, block: int = 1024) -> list[str]:
    return [*LLAMA, "--set", f"model.num_hidden_layers={layers}", "--set", f"model.hidden_size={width}",
            "--set", f"model.num_attention_heads={heads}", "--set", f"model.num_key_value_heads={heads}",
            "--set", f"model.intermediate_size={ffn}", "--set", f"model.max_position_embeddings={block}",
            "--set", "model.tie_word_embeddings=true"]


SHAPES = {
    "gpt2-4x256": Shape("gpt2-4x256", gpt2(4, 256, 4)),
    "gpt2-4x256-ctx256": Shape("gpt2-4x256-ctx256", gpt2(4, 256, 4, block=256), batch=16, block=256),
    "llama-4x256": Shape("llama-4x256", llama(4, 256, 4, 688)),
    "gpt2-6x384": Shape("gpt2-6x384", gpt2(6, 384, 6)),
    "gpt2-2x256": Shape("gpt2-2x256", gpt2(2, 256, 4)),
}


def train(shape: Shape, args: argparse.Namespace, out: Path, steps: int, warmup: int) -> dict:
    cmd = [
        sys.executable, "-m", "training.finetune", *shape.overrides, "--output-dir", str(out),
        "--set", "model.from_scratch=true", "--set", f"tokenizer.name_or_path={args.tokenizer}",
        "--set", f"data.tokens={args.tokens}", "--set", f"data.block_size={shape.block}",
        "--set", "data.eval_fraction=0.004",
        "--set", f"train.per_device_train_batch_size={shape.batch}", "--set", "train.per_device_eval_batch_size=8",
        "--set", f"train.learning_rate={args.lr}", "--set", f"train.warmup_steps={warmup}",
        "--set", f"train.max_steps={steps}", "--set", f"train.seed={args.seed}",
        "--set", "train.data_order=walk", "--set", "train.data_offset=0", "--set", "train.bf16=true",
        "--set", f"train.eval_steps={10 * steps}", "--set", f"train.save_steps={10 * steps}",
        "--set", "train.logging_steps=1", "--set", "train.progress_bar=false",
    ]
    log = out.with_suffix(".log")
    out.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, check=True)
    return json.loads((out / "metrics.json").read_text())


def pilot_rate(out: Path) -> float:
    """Tokens/s over the pilot's later half (the first steps pay for set-up)."""
    history = json.loads((out / "log_history.json").read_text())
    rows = [r for r in history if "num_input_tokens_seen" in r and "train_runtime" in r and "loss" in r]
    a, b = rows[len(rows) // 2], rows[-1]
    return (b["num_input_tokens_seen"] - a["num_input_tokens_seen"]) / (float(b["train_runtime"]) - float(a["train_runtime"]))


def held_out(run: Path, dev: Path, max_files: int) -> dict:
    summary = run / "dev.json"
    cmd = [sys.executable, "-m", "training.evaluate", "perplexity", "--model", str(run), "--set", f"data.dir={dev}",
           "--set", "data.tokens=", "--set", f"data.max_files={max_files}", "--split", "all", "--summary", str(summary)]
    subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return json.loads(summary.read_text())


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        ax.scatter(r["tokens_seen"] / 1e6, r["nats_per_char"])
        ax.annotate(f"{r['shape']} ({r['parameters'] / 1e6:.1f} M)", (r["tokens_seen"] / 1e6, r["nats_per_char"]),
                    textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("training tokens in the budget (M)")
    ax.set_ylabel("held-out dev loss (nats / char)")
    ax.set_title(f"equal CPU time per shape ({results[0]['minutes']:g} min, 2 cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_budgets(sweeps: list[list[dict]], path: Path) -> None:
    """Each shape's held-out loss at each budget, joined: which shape leads as the budget grows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_shape: dict[str, list[dict]] = {}
    for results in sweeps:
        for r in results:
            by_shape.setdefault(r["shape"], []).append(r)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, rows in by_shape.items():
        rows = sorted(rows, key=lambda r: r["minutes"])
        ax.plot([r["tokens_seen"] / 1e6 for r in rows], [r["nats_per_char"] for r in rows], marker="o",
                label=f"{name} ({rows[0]['parameters'] / 1e6:.1f} M)")
        for r in rows:
            ax.annotate(f"{r['minutes']:g} min", (r["tokens_seen"] / 1e6, r["nats_per_char"]),
                        textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("training tokens in the budget (M)")
    ax.set_ylabel("held-out dev loss (nats / char)")
    ax.set_title("equal CPU time per shape (2 cores), by budget")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def parameters(run: Path) -> int:
    from safetensors import safe_open

    total = 0
    with safe_open(str(run / "model.safetensors"), "np") as f:
        for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
            n = 1
            for dim in f.get_slice(key).get_shape():
                n *= dim
            total += n
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare", nargs="+", type=Path, metavar="SWEEP_JSON",
                    help="only plot these sweeps' results together (see --png); no training")
    ap.add_argument("--png", type=Path, default=Path("sweeps.png"), help="the --compare plot")
    ap.add_argument("--tokens", help="packed token file (training.data.tokens pack)")
    ap.add_argument("--dev", type=Path, help="held-out packages folder (corpus-data/devnpm)")
    ap.add_argument("--dev-max-files", type=int, default=0, help="score only this many dev files (0: all; for a quick check)")
    ap.add_argument("--tokenizer", default="server/models/default")
    ap.add_argument("--minutes", type=float, default=8.0, help="training wall time per shape")
    ap.add_argument("--shapes", nargs="+", default=["gpt2-4x256", "llama-4x256", "gpt2-6x384"], choices=sorted(SHAPES))
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path("runs/sweep"))
    args = ap.parse_args()
    if args.compare:
        plot_budgets([json.loads(path.read_text()) for path in args.compare], args.png)
        return
    if not args.tokens or not args.dev:
        ap.error("--tokens and --dev are required to run a sweep")

    results = []
    for name in args.shapes:
        shape = SHAPES[name]
        rate = pilot_rate_of(shape, args)
        tokens_per_step = shape.batch * shape.block
        steps = max(10, int(args.minutes * 60 * rate / tokens_per_step))
        run = args.out / name
        start = time.perf_counter()
        metrics = train(shape, args, run, steps, warmup=max(1, steps // 20))
        wall = time.perf_counter() - start
        dev = held_out(run, args.dev, args.dev_max_files)
        row = {"shape": name, "minutes": args.minutes, "pilot_tokens_per_s": round(rate), "steps": steps,
               "tokens_seen": metrics["tokens_seen"], "train_wall_s": round(wall), "parameters": parameters(run),
               "final_train_loss": metrics.get("final_train_loss"), "nats_per_char": dev["nats_per_char"],
               "dev_nats_per_token": dev["loss"], "chars_per_token": dev["chars_per_token"]}
        results.append(row)
        print(json.dumps(row), flush=True)
    (args.out / "sweep.json").write_text(json.dumps(results, indent=1) + "\n")
    plot(results, args.out / "sweep.png")
    print(f"\n| shape | parameters | tokens/s | tokens in {args.minutes:g} min | held-out nats/char |")
    print("| --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['shape']} | {r['parameters'] / 1e6:.1f} M | {r['pilot_tokens_per_s']:,} | "
              f"{r['tokens_seen'] / 1e6:.2f} M | {r['nats_per_char']:.3f} |")


def pilot_rate_of(shape: Shape, args: argparse.Namespace) -> float:
    out = args.out / f"pilot-{shape.name}"
    train(shape, args, out, PILOT_STEPS, warmup=1)
    return pilot_rate(out)


if __name__ == "__main__":
    main()
