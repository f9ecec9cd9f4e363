"""`python -m training.fill_mask` on a fixture-trained tiny eli5-mlm model (no network)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fixtures_runner import SMALL, assert_error_lines, build_tiny_roberta, one_error_line

from training.fill_mask import main
from training.finetune import main as finetune

REPO = Path(__file__).resolve().parents[2]
TEXT = "Why does the <mask> happen?"


@pytest.fixture(scope="session")
def mlm_dir(tmp_path_factory: pytest.TempPathFactory, eli5_json: Path) -> Path:
    """A 3-step eli5-mlm run on the eli5 fixture, from a tiny random RoBERTa."""
    from conftest import eli5_rows

    root = tmp_path_factory.mktemp("fill-mask")
    base = build_tiny_roberta(root / "roberta", [t for r in eli5_rows() for t in r["answers"]["text"]])
    out = root / "eli5-mlm"
    assert finetune(["--recipe", "eli5-mlm", "--output-dir", str(out), *SMALL, "--set", f"data.files={eli5_json}",
                     "--set", f"model.name_or_path={base}", "--set", "train.max_steps=3"]) == 0
    return out


@pytest.fixture(scope="module")
def bracket_mask_dir(mlm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same model whose tokenizer spells its mask token `[MASK]` (same id, same weights)."""
    out = tmp_path_factory.mktemp("bracket-mask") / "model"
    shutil.copytree(mlm_dir, out)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        path = out / name
        if path.is_file():
            path.write_text(path.read_text(encoding="utf-8").replace("<mask>", "[MASK]"), encoding="utf-8")
    return out


def _run_json(capfd: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main([*args, "--device", "cpu", "--json"]) == 0
    return json.loads(capfd.readouterr().out)


def _error_line(capfd: pytest.CaptureFixture[str], args: list[str]) -> str:
    return one_error_line(main, capfd, args)


def test_top_k_scored_candidates_match_the_model(mlm_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    result = _run_json(capfd, "--model", str(mlm_dir), TEXT, "--top-k", "7")
    assert result["top_k"] == 7 and len(result["masks"]) == 1
    found = result["masks"][0]
    scores = [c["score"] for c in found]
    assert len(found) == 7 and scores == sorted(scores, reverse=True)
    assert all(0.0 < s <= 1.0 for s in scores)

    # The same probabilities straight from the model: softmax at the mask position.
    tokenizer = AutoTokenizer.from_pretrained(mlm_dir)
    model = AutoModelForMaskedLM.from_pretrained(mlm_dir, use_safetensors=True).eval()
    enc = tokenizer(TEXT, return_tensors="pt")
    position = int((enc["input_ids"][0] == tokenizer.mask_token_id).nonzero()[0, 0])
    with torch.no_grad():
        probs = model(**enc).logits[0, position].softmax(-1)
    top = probs.topk(7)
    assert [c["token_id"] for c in found] == top.indices.tolist()
    assert scores == pytest.approx(top.values.tolist(), rel=1e-4)


def test_plain_output_is_one_scored_candidate_per_line(mlm_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    expected = _run_json(capfd, "--model", str(mlm_dir), TEXT, "--top-k", "3")["masks"][0]
    assert main(["--model", str(mlm_dir), "--device", "cpu", TEXT, "--top-k", "3"]) == 0
    lines = capfd.readouterr().out.splitlines()
    assert len(lines) == 3
    for line, c in zip(lines, expected, strict=True):
        score, token = line.split("  ", 1)
        assert float(score) == pytest.approx(c["score"], abs=1e-4) and json.loads(token) == c["token"]


def test_every_mask_gets_its_candidates(mlm_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    text = "The <mask> of the <mask> is blue."
    masks = _run_json(capfd, "--model", str(mlm_dir), text, "--top-k", "4")["masks"]
    assert len(masks) == 2 and all(len(m) == 4 for m in masks)
    assert main(["--model", str(mlm_dir), "--device", "cpu", text, "--top-k", "4"]) == 0
    lines = capfd.readouterr().out.splitlines()
    assert lines[0] == "--- mask 1 ---" and lines[5] == "--- mask 2 ---" and len(lines) == 10


def test_tokenizer_mask_token_and_literal_mask_agree(mlm_dir: Path, bracket_mask_dir: Path,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    reference = _run_json(capfd, "--model", str(mlm_dir), TEXT)["masks"]
    own = _run_json(capfd, "--model", str(bracket_mask_dir), TEXT.replace("<mask>", "[MASK]"))
    literal = _run_json(capfd, "--model", str(bracket_mask_dir), TEXT)
    assert own["text"] == literal["text"] == TEXT.replace("<mask>", "[MASK]")
    for result in (own["masks"], literal["masks"]):
        assert [c["token_id"] for c in result[0]] == [c["token_id"] for c in reference[0]]
        assert [c["score"] for c in result[0]] == pytest.approx([c["score"] for c in reference[0]], rel=1e-5)


def test_bad_inputs_give_one_line_and_exit_2(tmp_path: Path, mlm_dir: Path, bracket_mask_dir: Path,
                                             tiny_model_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    import torch

    pickled = tmp_path / "pickle-only"
    pickled.mkdir()
    shutil.copy(mlm_dir / "config.json", pickled / "config.json")
    torch.save({"w": torch.zeros(2)}, pickled / "pytorch_model.bin")
    cases: list[tuple[list[str], tuple[str, ...]]] = [
        (["--model", str(mlm_dir), "no mask here"], ("no mask", "<mask>")),
        (["--model", str(bracket_mask_dir), "no mask here"], ("no mask", "<mask> or [MASK]")),
        (["--model", str(tiny_model_dir), TEXT], ("causal LM", "GPT2LMHeadModel", "training.generate")),
        (["--model", str(tmp_path / "missing"), TEXT], ("does not exist",)),
        (["--model", str(pickled), TEXT], ("pytorch_model.bin", "never loaded")),
        (["--model", str(mlm_dir), TEXT, "--top-k", "0"], ("--top-k",)),
        (["--model", str(mlm_dir), "<mask> " + "word " * 400], ("at most 128",)),
    ]
    assert_error_lines(main, capfd, cases)


def test_hub_id_offline_is_one_clear_error_line(monkeypatch: pytest.MonkeyPatch,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    line = _error_line(capfd, ["--model", "someone/not-cached-mlm", TEXT])
    assert "HF_HUB_OFFLINE" in line


def test_command_line_no_mask(mlm_dir: Path, tmp_path: Path) -> None:
    """The real entry point: a text without a mask is one stderr line and exit status 2."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "training.fill_mask", "--model", str(mlm_dir), "plain text"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "no mask" in proc.stderr
