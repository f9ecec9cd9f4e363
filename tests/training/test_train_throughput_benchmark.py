"""benchmarks/train_throughput.py runs end to end on a tiny model and counts only useful tokens.

No timing is asserted (the machines are noisy); what is checked is what the figures are made of:
the seed rows are mostly padding and only their real tokens count, ours are full packed blocks.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from conftest import js_source, write_package

REPO = Path(__file__).resolve().parents[2]


def load_benchmark():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("train_throughput", REPO / "benchmarks" / "train_throughput.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_throughput"] = module
    spec.loader.exec_module(module)
    return module


def test_benchmark_counts_useful_tokens(tmp_path: Path) -> None:
    pkgs = tmp_path / "pkgs"
    for i in range(16):
        files = {f"lib/m{j}.js": js_source(100 * i + j, n_blocks=1 + (i + j) % 2) for j in range(4)}
        write_package(pkgs, f"pkg{i}", {"name": f"pkg{i}", "version": "1.0.0", "license": "MIT"}, files)
    out = tmp_path / "result.json"
    block, batch, ours_steps, seed_steps = 512, 2, 2, 3
    rc = load_benchmark().main([
        "--data-dir", str(pkgs), "--block-size", str(block), "--vocab-size", "300",
        "--n-layer", "1", "--n-embd", "32", "--n-head", "2", "--batch", str(batch),
        "--seed-steps", str(seed_steps), "--ours-steps", str(ours_steps), "--warmup-steps", "1",
        "--json", str(out),
    ])
    assert rc == 0
    result = json.loads(out.read_text())
    assert result["documents"] == result["seed_rows"] > 0
    assert result["packed_blocks"] >= (1 + ours_steps) * batch  # no short last batch in the timed steps
    assert result["model"]["dropout"] == 0.0
    # ours: full packed blocks, only the timed steps count; the EOS between documents is the pad
    # id too (GPT-2 style), so those few separators are the only tokens not counted
    full = ours_steps * batch * block
    assert 0.95 * full < result["ours"]["useful_tokens"] <= full
    # seed: one padded row per step, of which only the real tokens count
    assert 0 < result["seed"]["useful_tokens"] < seed_steps * block
    assert 0 < result["seed_padding_share"] < 1
    assert result["ratio"] > 0 and result["seed"]["useful_tokens_per_s"] > 0
