"""Every recipe end to end for a few steps on fixture data with tiny models (no network)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures_runner import SMALL, build_tiny_roberta, read_json, write_github_parquet

from training.finetune import main

REPO = Path(__file__).resolve().parents[2]
METRIC_KEYS = {"train_loss", "eval_loss", "perplexity", "tokens_seen", "steps", "runtime_s", "tokens_per_second"}


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}


def _check_model_dir(out: Path, *, steps: int) -> dict:
    for name in ("config.json", "tokenizer.json", "training_config.json", "recipe.toml", "metrics.json",
                 "loss.png", "data_manifest.jsonl"):
        assert (out / name).is_file(), name
    assert list(out.glob("*.safetensors")) and not list(out.glob("*.bin")) and not list(out.glob("*.pt"))
    assert not (out / ".tmp-final").exists()
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = read_json(out / "metrics.json")
    assert set(metrics) >= METRIC_KEYS
    assert metrics["steps"] == steps and metrics["tokens_seen"] > 0
    assert metrics["perplexity"] == pytest.approx(2.718281828 ** metrics["eval_loss"], rel=1e-6)
    rows = [json.loads(line) for line in (out / "data_manifest.jsonl").read_text().splitlines()]
    assert rows and all({"source", "license", "path", "sha256"} <= set(r) for r in rows)
    assert read_json(out / "training_config.json")["train"]["max_steps"] == steps
    return metrics


@pytest.mark.slow
def test_scratch_js_interface_line_then_server_completes(tmp_path: Path, npm_packages_dir: Path) -> None:
    """The issue's stable command, verbatim; then `python -m server complete` serves OUT as is."""
    out = tmp_path / "OUT"
    cmd = [sys.executable, "-m", "training.finetune", "--recipe", "scratch-js", "--output-dir", str(out),
           "--set", f"data.dir={npm_packages_dir}", "--set", "tokenizer.vocab_size=2000",
           "--set", "model.n_layer=2", "--set", "model.n_embd=64", "--set", "model.n_head=2",
           "--set", "train.max_steps=30"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_model_dir(out, steps=30)
    config = read_json(out / "config.json")
    assert (config["n_layer"], config["n_embd"], config["n_head"]) == (2, 64, 2)
    vocab = read_json(out / "tokenizer.json")["model"]["vocab"]
    assert len(vocab) <= 2000 and "<fim_prefix>" in {t["content"] for t in read_json(out / "tokenizer.json")["added_tokens"]}
    rows = [json.loads(line) for line in (out / "data_manifest.jsonl").read_text().splitlines()]
    assert {r["package"] for r in rows}.isdisjoint({"lodash", "@node-red/runtime", "zeta-gpl"})

    src = tmp_path / "a.js"
    src.write_text("function add(a, b) {\n  return a + b;\n}\nconst x = ")
    served = subprocess.run([sys.executable, "-m", "server", "complete", f"{src}:4:10", "--model", str(out)],
                            cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert served.returncode == 0, served.stderr[-3000:]


def test_codeparrot_js_interface_line_on_local_parquet(tmp_path: Path, tiny_model_dir: Path) -> None:
    github_code_parquet = write_github_parquet(tmp_path / "gh")
    out = tmp_path / "OUT"
    rc = main(["--recipe", "codeparrot-js", "--output-dir", str(out),
               "--set", f"data.files={github_code_parquet}/*.parquet",
               "--set", f"model.name_or_path={tiny_model_dir}", "--set", "train.max_steps=5"])
    assert rc == 0
    _check_model_dir(out, steps=5)
    rows = [json.loads(line) for line in (out / "data_manifest.jsonl").read_text().splitlines()]
    assert {r["license"].lower() for r in rows} <= {"mit", "isc", "apache-2.0"}
    assert all(r["path"].endswith((".js", ".mjs", ".cjs", ".jsx")) for r in rows)
    assert "gpl/x" not in {r.get("repo") for r in rows}
    # the tiny model's 512 positions cap the recipe's 1024-token blocks
    assert read_json(out / "training_config.json")["data"]["block_size"] == 512


def test_eli5_clm_with_sharded_weights(tmp_path: Path, eli5_json: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "clm"
    rc = main(["--recipe", "eli5-clm", "--output-dir", str(out), *SMALL,
               "--set", f"data.files={eli5_json}", "--set", f"model.name_or_path={tiny_model_dir}",
               "--set", "train.max_steps=3", "--set", "train.max_shard_size=200KB"])
    assert rc == 0
    _check_model_dir(out, steps=3)
    assert (out / "model.safetensors.index.json").is_file() and len(list(out.glob("model-*.safetensors"))) > 1

    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True)
    assert model.config.n_layer == 2


def test_eli5_mlm_with_tiny_roberta(tmp_path: Path, eli5_json: Path) -> None:
    from conftest import eli5_rows

    texts = [t for r in eli5_rows() for t in r["answers"]["text"]]
    roberta = build_tiny_roberta(tmp_path / "roberta", texts)
    out = tmp_path / "mlm"
    rc = main(["--recipe", "eli5-mlm", "--output-dir", str(out), *SMALL,
               "--set", f"data.files={eli5_json}", "--set", f"model.name_or_path={roberta}",
               "--set", "train.max_steps=3"])
    assert rc == 0
    metrics = _check_model_dir(out, steps=3)
    assert metrics["eval_loss"] > 0

    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(out, use_safetensors=True)
    assert model.config.model_type == "roberta"


def test_full_finetune_adds_missing_fim_tokens(tmp_path: Path, tiny_model_dir_no_fim: Path) -> None:
    """A base tokenizer without FIM tokens gets them (and the embeddings grow) for FIM recipes."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_vocab = len(AutoTokenizer.from_pretrained(tiny_model_dir_no_fim))
    data = write_github_parquet(tmp_path / "gh")
    out = tmp_path / "OUT"
    rc = main(["--recipe", "codeparrot-js", "--output-dir", str(out), *SMALL,
               "--set", f"data.files={data}/*.parquet", "--set", f"model.name_or_path={tiny_model_dir_no_fim}",
               "--set", "train.max_steps=2", "--set", "data.fim_rate=1.0"])
    assert rc == 0
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert len(tokenizer) == base_vocab + 4
    for token in ("<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>"):
        assert len(tokenizer(token)["input_ids"]) == 1
    model = AutoModelForCausalLM.from_pretrained(out, use_safetensors=True)
    assert model.get_input_embeddings().weight.shape[0] >= len(tokenizer)
    assert read_json(out / "data_manifest_summary.json")["fim_rate"] == 1.0


def test_special_ids_beyond_the_vocab_are_taken_from_the_tokenizer(tmp_path: Path, tiny_model_dir: Path) -> None:
    """CodeParrot-small's config says bos/eos 50256 with a 32768-token vocab: the saved model must not."""
    import shutil

    from training.config import apply_overrides, load_recipe
    from training.modeling import build_model, load_tokenizer

    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    config = read_json(base / "config.json")
    (base / "config.json").write_text(json.dumps({**config, "bos_token_id": 50256, "eos_token_id": 50256}))
    cfg = apply_overrides(load_recipe("codeparrot-js"), [f"model.name_or_path={base}"])
    tokenizer = load_tokenizer(str(base))
    model = build_model(cfg, tokenizer)
    assert model.config.eos_token_id == model.config.bos_token_id == tokenizer.eos_token_id


def test_shape_overrides_that_do_not_fit_the_checkpoint_name_the_keys(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Fine-tuning a 2-layer checkpoint with the scratch recipe's model.n_layer=6 left in is a config error."""
    from training.config import ConfigError, apply_overrides, load_recipe
    from training.modeling import build_model, load_tokenizer

    cfg = apply_overrides(
        load_recipe("scratch-js"),
        ["model.from_scratch=false", f"model.name_or_path={tiny_model_dir}", "model.n_embd=96"],
    )
    with pytest.raises(ConfigError) as info:
        build_model(cfg, load_tokenizer(str(tiny_model_dir)))
    message = str(info.value)
    assert "model.n_embd=96" in message and "model.n_layer=6" in message
    assert str(tiny_model_dir) in message
