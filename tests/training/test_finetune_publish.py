"""The final model dir is published from a staging dir: no stale shards, no leftovers, markers last."""

from __future__ import annotations

from pathlib import Path

from training.publish import STAGE_NAME, publish, stage_dir


def test_publish_replaces_previous_model_files(tmp_path: Path) -> None:
    out = tmp_path / "OUT"
    (out / "checkpoints" / "checkpoint-5").mkdir(parents=True)
    for old in ("config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                "model.safetensors.index.json", "metrics.json"):
        (out / old).write_text("old")
    stage = stage_dir(out)
    assert stage == out / STAGE_NAME and not any(stage.iterdir())
    (stage / "model.safetensors").write_text("new")
    (stage / "config.json").write_text("new")
    (stage / "metrics.json").write_text("new")
    publish(stage, out)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints", "config.json", "metrics.json", "model.safetensors"]
    assert all((out / n).read_text() == "new" for n in ("config.json", "metrics.json", "model.safetensors"))
    assert (out / "checkpoints" / "checkpoint-5").is_dir()  # checkpoints survive for --resume


def test_a_failed_run_leaves_no_loadable_half_model(tmp_path: Path) -> None:
    out = tmp_path / "OUT"
    stage = stage_dir(out)
    (stage / "model.safetensors").write_text("partial")  # crash before publish
    assert not (out / "config.json").exists() and not (out / "model.safetensors").exists()
    stage = stage_dir(out)  # the next run starts from a clean stage
    assert not any(stage.iterdir())
