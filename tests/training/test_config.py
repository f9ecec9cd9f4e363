"""RunConfig: recipes load, --set overrides coerce by field type, bad keys/values fail naming the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from training.config import (
    ConfigError,
    RunConfig,
    apply_overrides,
    list_recipes,
    load_recipe,
    validate,
)

REPO = Path(__file__).resolve().parents[2]


def test_all_recipes_load_and_validate() -> None:
    assert set(list_recipes()) >= {"codeparrot-js", "codeparrot-js-lora", "eli5-clm", "eli5-mlm", "scratch-js"}
    for name in list_recipes():
        cfg = validate(load_recipe(name))
        assert cfg.name == name
        assert Path(cfg.recipe_path).is_file()


def test_recipe_contents_match_their_purpose() -> None:
    lora = load_recipe("codeparrot-js-lora")
    assert lora.lora.enabled and lora.lora.fan_in_fan_out
    assert set(lora.lora.target_modules) == {"c_attn", "c_proj", "c_fc"}
    clm = load_recipe("eli5-clm")
    assert (clm.model.name_or_path.endswith("distilgpt2"), clm.data.block_size) == (True, 128)
    assert (clm.train.learning_rate, clm.train.weight_decay, clm.data.fim_rate) == (2e-5, 0.01, 0.0)
    mlm = load_recipe("eli5-mlm")
    assert (mlm.train.objective, mlm.train.mlm_probability, mlm.data.block_size) == ("mlm", 0.15, 128)
    scratch = load_recipe("scratch-js")
    assert scratch.model.from_scratch and scratch.tokenizer.name_or_path == ""
    assert scratch.data.source == "npm" and scratch.data.fim_rate > 0 and scratch.data.fim_spm_rate > 0
    full = load_recipe("codeparrot-js")
    assert full.data.source == "github-code" and set(full.data.licenses) == {"mit", "isc", "apache-2.0"}


def test_overrides_are_coerced_by_field_type() -> None:
    cfg = apply_overrides(
        load_recipe("scratch-js"),
        [
            "train.max_steps=10",
            "train.learning_rate=3e-4",
            "train.gradient_checkpointing=true",
            "data.dedup=no",
            "data.extensions=.js,.mjs",
            "lora.target_modules=[\"c_attn\", \"c_fc\"]",
            "data.dir=/some/where",
            "model.n_layer=3",
            "model.resid_pdrop=0.2",
        ],
    )
    assert cfg.train.max_steps == 10 and isinstance(cfg.train.max_steps, int)
    assert cfg.train.learning_rate == pytest.approx(3e-4)
    assert cfg.train.gradient_checkpointing is True and cfg.data.dedup is False
    assert cfg.data.extensions == [".js", ".mjs"]
    assert cfg.lora.target_modules == ["c_attn", "c_fc"]
    assert cfg.data.dir == "/some/where"
    assert cfg.model.extra["n_layer"] == 3 and cfg.model.extra["resid_pdrop"] == pytest.approx(0.2)
    validate(cfg)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.max_stepz=10", "train.max_stepz"),
        ("train.max_steps=ten", "train.max_steps"),
        ("train.max_steps=1.5", "train.max_steps"),
        ("train.gradient_checkpointing=maybe", "train.gradient_checkpointing"),
        ("nosection.x=1", "nosection.x"),
        ("data.fim_rate=lots", "data.fim_rate"),
        ("tokenizer.vocab_size=[1,2]", "tokenizer.vocab_size"),
    ],
)
def test_bad_override_names_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        apply_overrides(load_recipe("scratch-js"), [override])
    assert key in str(err.value)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.objective=rl", "train.objective"),
        ("train.bf16=sometimes", "train.bf16"),
        ("train.per_device_train_batch_size=0", "train.per_device_train_batch_size"),
        ("model.n_layerz=2", "model.n_layerz"),
        ("model.n_layer=two", "model.n_layer"),
        ("model.arch=notamodel", "model.arch"),
        ("train.mlm_probability=1.5", "train.mlm_probability"),
    ],
)
def test_invalid_values_fail_validation_naming_the_key(override: str, key: str) -> None:
    cfg = apply_overrides(load_recipe("scratch-js"), [override])
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert key in str(err.value)


def test_malformed_override_and_unknown_recipe() -> None:
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        apply_overrides(RunConfig(), ["train.max_steps"])
    with pytest.raises(ConfigError, match="unknown recipe"):
        load_recipe("no-such-recipe")


def test_recipe_file_with_unknown_key_is_rejected(tmp_path: Path) -> None:
    recipe = tmp_path / "mine.toml"
    recipe.write_text('[train]\nmax_steps = 3\nlearnin_rate = 0.1\n')
    with pytest.raises(ConfigError, match=r"train\.learnin_rate"):
        load_recipe(str(recipe))
    recipe.write_text('[model]\nfrom_scratch = true\nn_layer = 1\n[train]\nmax_steps = 3\n')
    cfg = validate(load_recipe(str(recipe)))
    assert cfg.name == "mine" and cfg.model.extra == {"n_layer": 1} and cfg.train.max_steps == 3


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "training.finetune", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_cli_bad_key_fails_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _cli("--recipe", "scratch-js", "--output-dir", str(out), "--set", "train.max_stepz=3", cwd=tmp_path)
    assert proc.returncode == 2
    assert "train.max_stepz" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_cli_hub_id_offline_fails_fast_with_a_clear_message(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _cli("--recipe", "codeparrot-js", "--output-dir", str(out), cwd=tmp_path)
    assert proc.returncode == 2
    assert "model.name_or_path" in proc.stderr and "HF_HUB_OFFLINE" in proc.stderr
    assert not out.exists()


def test_cli_help_and_list_recipes(tmp_path: Path) -> None:
    helped = _cli("--help", cwd=tmp_path)
    assert helped.returncode == 0
    for word in ("--recipe", "--set", "--resume", "--merge", "--list-recipes", "scratch-js", "metrics.json"):
        assert word in helped.stdout
    listed = _cli("--list-recipes", cwd=tmp_path)
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == list_recipes()
    top = subprocess.run([sys.executable, "-m", "training"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert top.returncode == 0 and "training.finetune" in top.stdout and "training.evaluate" in top.stdout
