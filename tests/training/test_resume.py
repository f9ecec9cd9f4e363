"""An interrupted run resumed from its last checkpoint reproduces the uninterrupted run's losses."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fixtures_runner import SMALL, read_json, train_losses, write_repetitive_packages

from training.finetune import main


def _args(out: Path, pkgs: Path, tok: Path, *extra: str) -> list[str]:
    return [*extra,
        "--recipe", "scratch-js", "--output-dir", str(out), *SMALL,
        "--set", f"data.dir={pkgs}", "--set", f"tokenizer.name_or_path={tok}", "--set", "data.dedup=false",
        "--set", "model.n_layer=1", "--set", "model.n_embd=32", "--set", "model.n_head=2",
        "--set", "model.resid_pdrop=0.1",  # dropout: the RNG state must be restored too
        "--set", "train.max_steps=8", "--set", "train.save_steps=4", "--set", "train.save_total_limit=3",
    ]


@pytest.mark.parametrize("order", ["shuffle", "walk"])
def test_resume_reproduces_uninterrupted_losses(tmp_path: Path, tiny_model_dir: Path, order: str) -> None:
    pkgs = write_repetitive_packages(tmp_path / "pkgs")
    full, cut = tmp_path / "full", tmp_path / "cut"
    extra = ("--set", f"train.data_order={order}")
    assert main(_args(full, pkgs, tiny_model_dir, *extra)) == 0
    assert main(_args(cut, pkgs, tiny_model_dir, *extra)) == 0

    # Interrupt `cut` after its step-4 checkpoint: what a crash at steps 5..8 leaves on disk.
    shutil.rmtree(cut / "checkpoints" / "checkpoint-8")
    for f in cut.iterdir():
        if f.is_file():
            f.unlink()
    assert (cut / "checkpoints" / "checkpoint-4").is_dir()

    assert main([*_args(cut, pkgs, tiny_model_dir, *extra), "--resume"]) == 0
    expected, resumed = train_losses(full), train_losses(cut)
    assert sorted(resumed) == sorted(expected) == list(range(1, 9))
    for step in range(5, 9):
        assert resumed[step] == pytest.approx(expected[step], abs=1e-4), step
    assert read_json(cut / "metrics.json")["steps"] == 8
    # it really continued (a restart from step 0 would reproduce the same losses too)
    assert read_json(cut / "metrics.json")["resumed_from_step"] == 4
    assert read_json(full / "metrics.json")["resumed_from_step"] == 0
    assert read_json(cut / "metrics.json")["eval_loss"] == pytest.approx(read_json(full / "metrics.json")["eval_loss"], abs=1e-4)
    assert read_json(cut / "metrics.json")["tokens_seen"] == read_json(full / "metrics.json")["tokens_seen"]


def test_resume_with_missing_checkpoint_fails_clearly(tmp_path: Path, tiny_model_dir: Path) -> None:
    pkgs = write_repetitive_packages(tmp_path / "pkgs")
    rc = main([*_args(tmp_path / "o", pkgs, tiny_model_dir), "--resume", str(tmp_path / "nope")])
    assert rc == 2


def test_walk_continues_where_the_last_run_stopped(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Sessions that continue a shipped model walk one seeded permutation of the blocks."""
    from datasets import Dataset

    from training.finetune import walk

    blocks = Dataset.from_dict({"input_ids": [[i] for i in range(10)]})
    order = [r[0] for r in walk(blocks, 7, 0)["input_ids"]]
    assert sorted(order) == list(range(10)) and order != list(range(10))
    assert [r[0] for r in walk(blocks, 7, 4)["input_ids"]] == order[4:] + order[:4]
    assert [r[0] for r in walk(blocks, 7, 14)["input_ids"]] == order[4:] + order[:4]  # wraps around
    assert [r[0] for r in walk(blocks, 8, 0)["input_ids"]] != order  # the seed picks the permutation

    pkgs = write_repetitive_packages(tmp_path / "pkgs")
    first = tmp_path / "first"
    assert main(_args(first, pkgs, tiny_model_dir, "--set", "train.data_order=walk")) == 0
    m = read_json(first / "metrics.json")
    assert m["data_offset"] == 0 and m["data_next_offset"] == (8 * 4) % m["train_blocks"]
    second = tmp_path / "second"
    assert main([*_args(second, pkgs, tiny_model_dir, "--set", "train.data_order=walk",
                        "--set", f"train.data_offset={m['data_next_offset']}"),
                 "--set", "model.from_scratch=false", "--set", f"model.name_or_path={first}"]) == 0
    m2 = read_json(second / "metrics.json")
    assert m2["data_offset"] == m["data_next_offset"]
    assert m2["data_next_offset"] == (m["data_next_offset"] + 8 * 4) % m2["train_blocks"]
    # an offset without the walk is refused before any work
    assert main(_args(tmp_path / "bad", pkgs, tiny_model_dir, "--set", "train.data_offset=3")) == 2
