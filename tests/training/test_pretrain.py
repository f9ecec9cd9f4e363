"""`python -m training.pretrain`: the time-budgeted loop on a packed token file, run for real on a
tiny GPT-2 on the CPU: the schedule, the outputs `training.ship` reads, the dry run, the refusals."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest
from fixtures_runner import pack_tiny_gpt2_run

from training import pretrain
from training.data.manifest import read_manifest
from training.pretrain import lr_factor, main

TRAIN = """
per_device_train_batch_size = 2
learning_rate = 1e-3
warmup_ratio = 0.2
logging_steps = 1
"""


@pytest.fixture(scope="module")
def corpus(npm_packages_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(recipe path, token file stem): the fixture packages packed with a tiny FIM tokenizer."""
    return pack_tiny_gpt2_run(npm_packages_dir, tmp_path_factory.mktemp("pretrain"), "tiny-pretrain", TRAIN)


def _run(corpus: tuple[Path, Path], out: Path, *extra: str) -> int:
    recipe, tokens = corpus
    return main([str(recipe), "--tokens", str(tokens), "--out", str(out), *extra])


def test_schedule_warms_up_then_decays_to_the_floor() -> None:
    assert lr_factor(0.0, 0.1, 0.1) == 0.0
    assert lr_factor(0.05, 0.1, 0.1) == pytest.approx(0.5)
    assert lr_factor(0.1, 0.1, 0.1) == pytest.approx(1.0)
    assert lr_factor(0.55, 0.1, 0.1) == pytest.approx(0.55)  # half way down the cosine: (1 + 0.1) / 2
    assert lr_factor(1.0, 0.1, 0.1) == pytest.approx(0.1)
    assert lr_factor(3.0, 0.1, 0.1) == pytest.approx(0.1)  # past the budget: the floor
    values = [lr_factor(p / 100, 0.1, 0.0) for p in range(10, 101)]
    assert all(a >= b for a, b in itertools.pairwise(values))  # never rises after warmup


def test_step_budget_trains_and_writes_what_ship_reads(corpus: tuple[Path, Path], tmp_path: Path) -> None:
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    assert _run(corpus, out, "--set", "train.max_steps=4", "--save-dtype", "float16") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 4 and metrics["tokens_seen"] == 4 * 2 * 32
    assert metrics["eval_loss"] is not None and metrics["final"] is True
    history = json.loads((out / "log_history.json").read_text())
    train_rows = [h for h in history if "loss" in h]
    assert [h["step"] for h in train_rows] == [1, 2, 3, 4]
    assert train_rows[0]["learning_rate"] == 0.0 and train_rows[1]["learning_rate"] > 0  # warmup from 0
    assert history[-1]["eval_loss"] == metrics["eval_loss"]
    # the model loads as any HF causal LM; fp16 on disk, the tied embedding stored once
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        names = list(f.keys())
        assert all(f.get_tensor(k).dtype == torch.float16 for k in names)
    assert "lm_head.weight" not in names
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert model.config.n_layer == 2 and json.loads((out / "config.json").read_text())["dtype"] == "float16"
    assert (out / "tokenizer.json").is_file() and (out / "loss.png").is_file() and (out / "recipe.toml").is_file()
    rows = read_manifest(out / "data_manifest.jsonl")
    assert rows and {r["split"] for r in rows} == {"train", "eval"}
    assert "lodash" not in {r["package"] for r in rows}  # reserved: never in the data
    assert not (out / ".tmp-final").exists()


def test_bf16_true_trains_with_cpu_autocast(corpus: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "bf16"
    assert _run(corpus, out, "--set", "train.max_steps=2", "--set", "train.bf16=true") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["precision"] == "bf16 autocast" and metrics["steps"] == 2
    assert metrics["eval_loss"] is not None and metrics["eval_loss"] == metrics["eval_loss"]  # not NaN


def test_weights_change_with_training_and_the_seed_fixes_the_run(corpus: tuple[Path, Path], tmp_path: Path) -> None:
    from safetensors.torch import load_file

    _run(corpus, tmp_path / "a", "--set", "train.max_steps=3")
    _run(corpus, tmp_path / "b", "--set", "train.max_steps=3")
    _run(corpus, tmp_path / "c", "--set", "train.max_steps=3", "--set", "train.seed=7")
    a, b, c = (load_file(str(tmp_path / d / "model.safetensors")) for d in "abc")
    assert all((a[k] == b[k]).all() for k in a)  # step budget + seed: reproducible
    assert any((a[k] != c[k]).any() for k in a)
    la = json.loads((tmp_path / "a" / "log_history.json").read_text())
    lb = json.loads((tmp_path / "b" / "log_history.json").read_text())
    assert [h.get("loss") for h in la] == [h.get("loss") for h in lb]


class SteppingClock:
    """`time` for training.pretrain whose perf_counter advances a fixed step per reading: a time
    budget then ends after a number of readings, however slow the machine is."""

    def __init__(self, step_s: float) -> None:
        self.now, self.step_s = time.perf_counter(), step_s

    def perf_counter(self) -> float:
        self.now += self.step_s
        return self.now

    def time(self) -> float:
        return time.time()


def test_time_budget_stops_on_its_own_and_publishes_checkpoints(
    corpus: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "timed"
    clock = SteppingClock(0.1)
    monkeypatch.setattr(pretrain, "time", clock)
    # 3 s of the clock, every step logged, a checkpoint and a held-out loss every ~0.6 s
    assert _run(corpus, out, "--minutes", "0.05", "--save-minutes", "0.01", "--eval-minutes", "0.01",
                "--set", "train.logging_steps=1") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] >= 2 and metrics["budget_minutes"] == 0.05
    history = json.loads((out / "log_history.json").read_text())
    lrs = [h["learning_rate"] for h in history if "learning_rate" in h]
    assert lrs[-1] < max(lrs)  # the cosine had begun to decay when time ran out
    assert sum("eval_loss" in h for h in history) >= 2  # periodic + final
    # Every publish links the one manifest the run wrote (no ~15 MB copy per checkpoint).
    assert (out / "data_manifest.jsonl").samefile(out / ".manifest" / "data_manifest.jsonl")
    assert read_manifest(out / "data_manifest.jsonl")


def test_dry_run_writes_the_manifest_and_trains_nothing(corpus: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "dry"
    assert _run(corpus, out, "--dry-run") == 0
    assert (out / "data_manifest.jsonl").is_file() and (out / "data_manifest_summary.json").is_file()
    assert not (out / "config.json").exists() and not list(out.glob("*.safetensors"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "give a budget"),
        (("--minutes", "1", "--set", "train.lr_scheduler=linear"), "warmup \\+ cosine"),
        (("--minutes", "1", "--set", "data.block_size=128"), "exceeds the model's context"),
    ],
)
def test_bad_runs_are_refused_with_a_clear_error(
    corpus: tuple[Path, Path], tmp_path: Path, capsys: Any, extra: tuple[str, ...], message: str
) -> None:
    assert _run(corpus, tmp_path / "bad", *extra) == 2
    import re

    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "bad" / "config.json").exists()


def test_a_missing_token_file_is_refused(corpus: tuple[Path, Path], tmp_path: Path, capsys: Any) -> None:
    recipe, _ = corpus
    assert main([str(recipe), "--tokens", str(tmp_path / "none"), "--out", str(tmp_path / "x"), "--minutes", "1"]) == 2
    assert "data.tokens" in capsys.readouterr().err
