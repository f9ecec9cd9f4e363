"""`python -m training.generate` on fixture-trained tiny models of every causal recipe (no network)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fixtures_runner import (
    SMALL,
    assert_error_lines,
    build_tiny_roberta,
    one_error_line,
    write_github_parquet,
    write_repetitive_packages,
)

from training.finetune import main as finetune
from training.generate import main

REPO = Path(__file__).resolve().parents[2]
JS_PROMPT = "function add(a, b) {\n  return"
TEXT_PROMPT = "Why does the"


def _train(out: Path, recipe: str, *sets: str) -> Path:
    args = ["--recipe", recipe, "--output-dir", str(out), *SMALL, "--set", "train.max_steps=2"]
    for s in sets:
        args += ["--set", s]
    assert finetune(args) == 0
    return out


@pytest.fixture(scope="session")
def causal_dirs(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path,
                eli5_json: Path) -> dict[str, tuple[str, str, str]]:
    """recipe -> (--model, --adapter, prompt): a 2-step run of every causal recipe on fixture data."""
    root = tmp_path_factory.mktemp("gen-recipes")
    gh = write_github_parquet(root / "gh")
    packages = write_repetitive_packages(root / "npm")
    clm = _train(root / "eli5-clm", "eli5-clm", f"data.files={eli5_json}", f"model.name_or_path={tiny_model_dir}")
    scratch = _train(root / "scratch-js", "scratch-js", f"data.dir={packages}", "tokenizer.vocab_size=400",
                     "model.n_layer=1", "model.n_embd=32", "model.n_head=2", "model.n_positions=128")
    full = _train(root / "codeparrot-js", "codeparrot-js", f"data.files={gh}/*.parquet",
                  f"model.name_or_path={tiny_model_dir}")
    lora = _train(root / "lora", "codeparrot-js-lora", f"data.files={gh}/*.parquet",
                  f"model.name_or_path={tiny_model_dir}", "train.learning_rate=1e-2")
    return {
        "eli5-clm": (str(clm), "", TEXT_PROMPT),
        "scratch-js": (str(scratch), "", JS_PROMPT),
        "codeparrot-js": (str(full), "", JS_PROMPT),
        "codeparrot-js-lora": (str(lora), "", JS_PROMPT),  # the adapter dir alone names its base
        "codeparrot-js-lora --adapter": (str(tiny_model_dir), str(lora), JS_PROMPT),
    }


def _run_json(capfd: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main([*args, "--device", "cpu", "--json"]) == 0
    out = capfd.readouterr().out
    return json.loads(out)


def _error_line(capfd: pytest.CaptureFixture[str], args: list[str]) -> str:
    return one_error_line(main, capfd, args)


@pytest.mark.parametrize("recipe", ["eli5-clm", "scratch-js", "codeparrot-js", "codeparrot-js-lora",
                                    "codeparrot-js-lora --adapter"])
def test_greedy_equals_the_servers_greedy(recipe: str, causal_dirs: dict[str, tuple[str, str, str]],
                                          capfd: pytest.CaptureFixture[str]) -> None:
    from server.engines.pytorch import TorchEngine
    from server.settings import Settings

    model, adapter, prompt = causal_dirs[recipe]
    extra = ["--adapter", adapter] if adapter else []
    result = _run_json(capfd, "--model", model, *extra, "--max-new-tokens", "12", prompt)
    assert result["do_sample"] is False and len(result["continuations"]) == 1

    engine = TorchEngine(Settings(model=model, adapter=adapter, device="cpu"))
    engine.load()
    served = engine.generate(engine.tokenizer(prompt)["input_ids"], max_new_tokens=12)
    assert served.new_tokens > 0
    assert result["continuations"][0] == served.text


def test_plain_output_is_the_continuation(causal_dirs: dict[str, tuple[str, str, str]],
                                          capfd: pytest.CaptureFixture[str]) -> None:
    model, _, prompt = causal_dirs["codeparrot-js"]
    greedy = _run_json(capfd, "--model", model, prompt)["continuations"][0]
    assert main(["--model", model, "--device", "cpu", prompt]) == 0
    assert capfd.readouterr().out == greedy + "\n"


def test_sampling_is_reproducible_with_a_seed_and_differs_across_seeds(
    causal_dirs: dict[str, tuple[str, str, str]], capfd: pytest.CaptureFixture[str]
) -> None:
    model, _, prompt = causal_dirs["eli5-clm"]

    def sample(seed: int) -> list[str]:
        result = _run_json(capfd, "--model", model, prompt, "--do-sample", "--seed", str(seed), "--max-new-tokens",
                           "16", "--num-return-sequences", "3", "--temperature", "1.5", "--top-k", "0")
        assert (result["seed"], result["temperature"], result["top_k"], result["top_p"]) == (seed, 1.5, 0, 1.0)
        return list(result["continuations"])

    first = sample(1)
    assert len(first) == 3 and len(set(first)) > 1  # three draws, not one copied
    assert sample(1) == first
    assert sample(2) != first


def test_several_sequences_print_numbered(causal_dirs: dict[str, tuple[str, str, str]],
                                          capfd: pytest.CaptureFixture[str]) -> None:
    model, _, prompt = causal_dirs["scratch-js"]
    assert main(["--model", model, "--device", "cpu", prompt, "--do-sample", "--seed", "0",
                 "--num-return-sequences", "2", "--top-p", "0.9"]) == 0
    out = capfd.readouterr().out
    assert out.startswith("--- 1 ---\n") and "\n--- 2 ---\n" in out


@pytest.fixture(scope="module")
def masked_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_roberta(tmp_path_factory.mktemp("roberta"), ["the cat sat on the mat."] * 50, vocab_size=300)


@pytest.fixture(scope="module")
def pickle_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    import torch

    path = tmp_path_factory.mktemp("pickle-only")
    shutil.copy(tiny_model_dir / "config.json", path / "config.json")
    torch.save({"w": torch.zeros(2)}, path / "pytorch_model.bin")
    return path


def test_bad_inputs_give_one_line_and_exit_2(tmp_path: Path, tiny_model_dir: Path, masked_dir: Path,
                                             pickle_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    model = str(tiny_model_dir)
    cases: list[tuple[list[str], tuple[str, ...]]] = [
        (["--model", str(tmp_path / "missing"), "x"], ("does not exist",)),
        (["--model", str(pickle_dir), "x"], ("pytorch_model.bin", "never loaded")),
        (["--model", str(masked_dir), "x"], ("masked LM", "RobertaForMaskedLM", "training.fill_mask")),
        (["--model", model, "--num-return-sequences", "2", "x"], ("--do-sample",)),
        (["--model", model, "--temperature", "0.7", "x"], ("--temperature", "--do-sample")),
        (["--model", model, "--do-sample", "--top-p", "0", "x"], ("--top-p",)),
        (["--model", model, "--max-new-tokens", "0", "x"], ("--max-new-tokens",)),
        (["--model", model, "--max-new-tokens", "600", "x"], ("context of 512",)),
        (["--model", model, ""], ("prompt is empty",)),
        (["--model", model, "--adapter", str(tmp_path), "x"], ("adapter_config.json",)),
    ]
    assert_error_lines(main, capfd, cases)


def test_hub_id_offline_is_one_clear_error_line(monkeypatch: pytest.MonkeyPatch,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    line = _error_line(capfd, ["--model", "someone/not-cached-model", "x"])
    assert "HF_HUB_OFFLINE" in line


def test_command_line_errors_and_listing(tmp_path: Path) -> None:
    """The real `python -m` entry points: exit status 2 and one stderr line, before torch is imported."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "training.generate", "--model", "org/absent", "x"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and "HF_HUB_OFFLINE" in proc.stderr
    listing = subprocess.run([sys.executable, "-m", "training"], env=env, capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0
    assert "python -m training.generate" in listing.stdout and "python -m training.fill_mask" in listing.stdout
