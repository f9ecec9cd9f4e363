"""Two CPU processes (gloo) via `accelerate launch`: one model dir, written once, world size 2.

On a machine without GPUs, plain `accelerate launch --num_processes 2` (no config file) starts ONE
process (its simple launcher); `--multi_gpu` selects the torchrun launcher, and the runner's
`use_cpu` (no CUDA) makes accelerate form a gloo process group.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures_runner import SMALL, read_json, write_repetitive_packages

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_process_cpu_run(tmp_path: Path, tiny_model_dir: Path) -> None:
    accelerate = shutil.which("accelerate") or str(Path(sys.executable).parent / "accelerate")
    pkgs = write_repetitive_packages(tmp_path / "pkgs")
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [
        accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "-m", "training.finetune",
        "--recipe", "scratch-js", "--output-dir", str(out), *SMALL,
        "--set", f"data.dir={pkgs}", "--set", f"tokenizer.name_or_path={tiny_model_dir}", "--set", "data.dedup=false",
        "--set", "model.n_layer=1", "--set", "model.n_embd=32", "--set", "model.n_head=2",
        "--set", "train.max_steps=3",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    metrics = read_json(out / "metrics.json")
    assert metrics["world_size"] == 2 and metrics["steps"] == 3
    # 2 processes x batch 4 x block 64 per step: the tokens seen count both ranks
    assert metrics["tokens_seen"] == 3 * 2 * 4 * 64
    assert (out / "model.safetensors").is_file() and not (out / ".tmp-final").exists()
    rows = (out / "data_manifest.jsonl").read_text().splitlines()
    assert len(rows) == len({json.loads(r)["sha256"] for r in rows})  # written once, not by both ranks
