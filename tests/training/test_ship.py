"""training.ship: fp16 weights that load back as float32 with the same predictions, the manifest
checks (reserved and dev-set packages refused, DEST untouched), and the card's stage history."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tiny_model import build_tiny_model

from training.data.manifest import read_manifest
from training.ship import devset_packages, main, merge_stages

ROW = {"source": "npm", "package": "left-pad-ok", "version": "1.0.0", "license": "MIT", "path": "index.js",
       "sha256": "0" * 64, "split": "train"}


def _run_dir(root: Path, rows: list[dict[str, object]]) -> Path:
    src = build_tiny_model(root, seed=3)
    (src / "data_manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (src / "metrics.json").write_text('{"eval_loss": 1.0}\n', encoding="utf-8")
    return src


def _logits(model_dir: Path, text: str = "const x = require('y');\nfunction f(a) {\n") -> object:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), use_safetensors=True, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([tok(text)["input_ids"]])).logits


def test_ship_stores_fp16_that_loads_back_as_float32(tmp_path: Path) -> None:
    from safetensors import safe_open

    src = _run_dir(tmp_path / "run", [ROW])
    dest = tmp_path / "models" / "default"
    assert main([str(src), str(dest)]) == 0
    with safe_open(str(dest / "model.safetensors"), framework="pt") as f:
        assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {"torch.float16"}  # noqa: SIM118
    assert (dest / "model.safetensors").stat().st_size < 0.6 * (src / "model.safetensors").stat().st_size
    assert json.loads((dest / "config.json").read_text())["dtype"] == "float16"
    # The rows go out xz-compressed, and only so.
    assert read_manifest(dest / "data_manifest.jsonl.xz") == read_manifest(src / "data_manifest.jsonl")
    assert not (dest / "data_manifest.jsonl").exists()
    assert (dest / "tokenizer.json").is_file() and (dest / "metrics.json").is_file()
    assert "| left-pad-ok | 1.0.0 | MIT | 1 |" in (dest / "ATTRIBUTION.md").read_text()
    a, b = _logits(src), _logits(dest)
    assert (a.argmax(-1) == b.argmax(-1)).all()  # type: ignore[attr-defined]
    assert float((a - b).abs().max()) < 1e-2  # type: ignore[operator]
    assert not list(tmp_path.joinpath("models").glob(".tmp-ship-*"))


def test_training_and_the_server_load_the_fp16_model_as_float32(tmp_path: Path) -> None:
    import torch

    from server.engines.pytorch import TorchEngine
    from server.settings import Settings
    from training.config import apply_overrides, load_recipe
    from training.modeling import build_model, load_tokenizer

    dest = tmp_path / "default"
    assert main([str(_run_dir(tmp_path / "run", [ROW])), str(dest)]) == 0
    cfg = apply_overrides(load_recipe("codeparrot-js"), [f"model.name_or_path={dest}"])
    model = build_model(cfg, load_tokenizer(str(dest)))
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    engine = TorchEngine(Settings(model=str(dest), quantize="none"))
    engine.load()
    assert {p.dtype for p in engine.model.parameters()} == {torch.float32}
    # The default is float32 too, or bf16 on a CPU with bf16 instructions: never fp16 on a CPU.
    engine = TorchEngine(Settings(model=str(dest), device="cpu"))
    engine.load()
    assert {p.dtype for p in engine.model.parameters()} <= {torch.float32, torch.bfloat16}


@pytest.mark.parametrize("bad", ["reserved", "devset"])
def test_a_contaminated_manifest_is_refused_and_dest_untouched(tmp_path: Path, bad: str) -> None:
    from training.data.decontam import reserved_packages

    name = sorted(reserved_packages())[0] if bad == "reserved" else sorted(devset_packages())[0]
    src = _run_dir(tmp_path / "run", [ROW, {**ROW, "package": name}])
    dest = tmp_path / "default"
    dest.mkdir()
    (dest / "model.safetensors").write_bytes(b"old weights")
    assert main([str(src), str(dest)]) == 2
    assert sorted(p.name for p in dest.iterdir()) == ["model.safetensors"]
    assert (dest / "model.safetensors").read_bytes() == b"old weights"


def test_keep_previous_as_keeps_the_stage_history(tmp_path: Path) -> None:
    src = _run_dir(tmp_path / "run", [ROW])
    dest = tmp_path / "default"
    assert main([str(src), str(dest)]) == 0
    (dest / "metrics.json").write_text('{"eval_loss": 2.0}\n', encoding="utf-8")  # the previous stage's
    assert main([str(src), str(dest), "--keep-previous-as", "stage3"]) == 0
    assert json.loads((dest / "stage3_metrics.json").read_text())["eval_loss"] == 2.0
    assert json.loads((dest / "metrics.json").read_text())["eval_loss"] == 1.0


def test_not_a_model_dir_or_no_manifest_is_an_error(tmp_path: Path) -> None:
    assert main([str(tmp_path / "nothing"), str(tmp_path / "d")]) == 2
    src = _run_dir(tmp_path / "run", [ROW])
    (src / "data_manifest.jsonl").unlink()
    assert main([str(src), str(tmp_path / "d")]) == 2
    shutil.rmtree(src)


def test_stage_keeps_every_stages_files_in_the_manifest(tmp_path: Path) -> None:
    other = {**ROW, "package": "right-pad-ok", "sha256": "1" * 64}
    dest = tmp_path / "default"
    assert main([str(_run_dir(tmp_path / "run4", [ROW])), str(dest), "--stage", "4"]) == 0
    assert main([str(_run_dir(tmp_path / "run5", [ROW, other])), str(dest), "--stage", "5"]) == 0
    rows = read_manifest(dest / "data_manifest.jsonl.xz")
    assert [(r["package"], r["stage"]) for r in rows] == [("left-pad-ok", "4,5"), ("right-pad-ok", "5")]
    # A file two earlier corpora both held is listed twice: the first row names the new stage.
    rows = [{**ROW, "stage": "4,5"}, {**ROW, "stage": "1-3"}]
    assert [r["stage"] for r in merge_stages(rows, [ROW], "6")] == ["4,5,6", "1-3"]
    # Without --stage the run's own manifest replaces the shipped one.
    assert main([str(_run_dir(tmp_path / "run6", [other])), str(dest)]) == 0
    rows = read_manifest(dest / "data_manifest.jsonl.xz")
    assert [r["package"] for r in rows] == ["right-pad-ok"] and "stage" not in rows[0]


def test_stage_refuses_a_run_that_adds_a_dev_set_package(tmp_path: Path) -> None:
    dest = tmp_path / "default"
    assert main([str(_run_dir(tmp_path / "run4", [ROW])), str(dest), "--stage", "4"]) == 0
    before = (dest / "data_manifest.jsonl.xz").read_bytes()
    leak = {**ROW, "package": sorted(devset_packages())[0]}
    assert main([str(_run_dir(tmp_path / "run5", [ROW, leak])), str(dest), "--stage", "5"]) == 2
    assert (dest / "data_manifest.jsonl.xz").read_bytes() == before


def test_a_model_dir_over_the_size_limit_is_refused_and_dest_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.ship as ship

    dest = tmp_path / "default"
    assert main([str(_run_dir(tmp_path / "run", [ROW])), str(dest)]) == 0
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    (dest / "README.md").write_bytes(b"card " * 1000)  # what DEST keeps of its own counts too
    before["README.md"] = (dest / "README.md").read_bytes()
    size = sum(p.stat().st_size for p in dest.iterdir())
    monkeypatch.setattr(ship, "SHIP_LIMIT_BYTES", size - 1000)  # the card tips it over
    assert main([str(_run_dir(tmp_path / "run2", [ROW])), str(dest)]) == 2
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
    monkeypatch.setattr(ship, "SHIP_LIMIT_BYTES", size + 1000)
    assert main([str(_run_dir(tmp_path / "run3", [ROW])), str(dest)]) == 0


def test_a_shipped_plain_manifest_is_replaced_by_the_xz_one(tmp_path: Path) -> None:
    dest = tmp_path / "default"
    dest.mkdir()
    (dest / "data_manifest.jsonl").write_text(json.dumps({**ROW, "package": "older-ok"}) + "\n", encoding="utf-8")
    assert main([str(_run_dir(tmp_path / "run", [ROW])), str(dest), "--stage", "2"]) == 0
    assert not (dest / "data_manifest.jsonl").exists()  # its rows were read, then it goes
    assert [r["package"] for r in read_manifest(dest / "data_manifest.jsonl.xz")] == ["older-ok", "left-pad-ok"]


def test_attribution_lists_each_package_version_once_with_its_files() -> None:
    from training.ship import attribution

    rows = [ROW, {**ROW, "path": "lib/a.js", "sha256": "1" * 64},
            {**ROW, "package": "@scope/b", "version": "2.0.0", "license": "(Apache-2.0 AND MIT)"}]
    text = attribution(rows)
    assert "2 package versions, 3 files." in text
    assert "| @scope/b | 2.0.0 | (Apache-2.0 AND MIT) | 1 |" in text and "| left-pad-ok | 1.0.0 | MIT | 2 |" in text
    assert text.index("@scope/b") < text.index("left-pad-ok")  # sorted
