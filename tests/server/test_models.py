"""Model resolution: shipped default, local dirs, pickle refusal, offline hub ids, LoRA adapters."""

from __future__ import annotations

import http.client
import json
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
import torch

import server.models as models
from server import hub
from server.engines.pytorch import TorchEngine
from server.errors import HubUnavailableError, ModelLoadError, ModelNotFoundError
from server.models import resolve_model
from server.settings import Settings


def test_local_dir_resolves(tiny_model_dir: Path) -> None:
    source = resolve_model(str(tiny_model_dir))
    assert source.path == tiny_model_dir and source.kind == "local" and source.adapter is None


def test_missing_default_tells_how_to_pass_a_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(models, "DEFAULT_MODEL_DIR", tmp_path / "default")
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("")
    assert "--model" in info.value.user_message and "codeparrot.model" in info.value.user_message


def test_present_default_is_used_for_empty_spec(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model_dir: Path
) -> None:
    default = tmp_path / "default"
    shutil.copytree(tiny_model_dir, default)
    monkeypatch.setattr(models, "DEFAULT_MODEL_DIR", default)
    source = resolve_model("  ")
    assert source.kind == "default" and source.path == default


def test_missing_dir_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model(str(tmp_path / "no-such-model"))
    assert "does not exist" in info.value.user_message


def test_dir_without_config_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model(str(tmp_path))
    assert "config.json" in info.value.user_message


def test_pickle_only_dir_is_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    shutil.copy(tiny_model_dir / "config.json", tmp_path / "config.json")
    torch.save({"w": torch.zeros(2)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(ModelLoadError) as info:
        resolve_model(str(tmp_path))
    assert "pytorch_model.bin" in info.value.user_message and "never loaded" in info.value.user_message
    eng = TorchEngine(Settings(model=str(tmp_path), device="cpu"))
    with pytest.raises(ModelLoadError):
        eng.load()


def test_hub_id_offline_fails_without_asking_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_probe(*_args: Any) -> bool:
        raise AssertionError("the hub was probed although HF_HUB_OFFLINE=1")

    monkeypatch.setattr(hub, "reachable", no_probe)
    with pytest.raises(HubUnavailableError) as info:
        resolve_model("codeparrot/codeparrot-small")
    assert "HF_HUB_OFFLINE" in info.value.user_message


def test_a_hub_that_never_answers_is_given_up_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """No offline flag and a request that hangs (DNS or a blackholed address): the bounded probe
    gives up and says so, instead of waiting on the hub library's retries."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "PROBE_TIMEOUT_S", 0.2)
    never = threading.Event()

    def hang(*_args: Any, **_kwargs: Any) -> None:
        never.wait()  # the probe thread is a daemon: it is left waiting

    monkeypatch.setattr(http.client.HTTPSConnection, "request", hang)
    with pytest.raises(HubUnavailableError) as info:
        resolve_model("someone/some-model-that-is-not-cached")
    assert "unreachable" in info.value.user_message


def test_non_hub_shaped_missing_spec_is_not_found() -> None:
    with pytest.raises(ModelNotFoundError):
        resolve_model("./relative/missing/model")
    with pytest.raises(ModelNotFoundError):
        resolve_model("just-a-name")


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real peft LoRA adapter on the tiny GPT-2, with non-zero weights so it changes outputs."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, use_safetensors=True)
    config = LoraConfig(
        r=4,
        lora_alpha=16,
        target_modules=["c_attn", "c_proj"],
        fan_in_fan_out=True,
        init_lora_weights=False,  # random A and B: a visible change, unlike the default zero B
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(1)
    peft_model = get_peft_model(base, config)
    out = tmp_path_factory.mktemp("lora")
    peft_model.save_pretrained(out, safe_serialization=True)
    cfg_path = out / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = str(tiny_model_dir)
    cfg_path.write_text(json.dumps(cfg))
    return out


def test_adapter_dir_as_model_resolves_base(adapter_dir: Path, tiny_model_dir: Path) -> None:
    source = resolve_model(str(adapter_dir))
    assert source.path == tiny_model_dir and source.adapter == adapter_dir


def test_adapter_setting_with_base_model(adapter_dir: Path, tiny_model_dir: Path) -> None:
    source = resolve_model(str(tiny_model_dir), adapter=str(adapter_dir))
    assert source.path == tiny_model_dir and source.adapter == adapter_dir
    with pytest.raises(ModelNotFoundError):
        resolve_model(str(tiny_model_dir), adapter=str(adapter_dir.parent / "missing-adapter"))


def test_pickle_only_adapter_is_refused(adapter_dir: Path, tmp_path: Path, tiny_model_dir: Path) -> None:
    shutil.copy(adapter_dir / "adapter_config.json", tmp_path / "adapter_config.json")
    torch.save({"w": torch.zeros(2)}, tmp_path / "adapter_model.bin")
    with pytest.raises(ModelLoadError) as info:
        resolve_model(str(tiny_model_dir), adapter=str(tmp_path))
    assert "adapter_model.bin" in info.value.user_message


def test_engine_loads_and_merges_adapter(adapter_dir: Path, tiny_model_dir: Path) -> None:
    base = TorchEngine(Settings(model=str(tiny_model_dir), device="cpu"))
    tuned = TorchEngine(Settings(model=str(tiny_model_dir), adapter=str(adapter_dir), device="cpu"))
    base.load()
    tuned.load()
    assert type(tuned.model).__name__ == "GPT2LMHeadModel"  # merged: no peft wrapper per token
    assert base.native and not tuned.native  # adapters load through transformers and peft
    ids = list(base.tokenizer("const items = [1, 2, 3];\n")["input_ids"])
    with torch.inference_mode():
        x = torch.tensor([ids])
        # Far beyond the two forwards' rounding differences (~1e-5, tests/server/test_gpt2.py).
        assert (base.model(x).logits - tuned.model(input_ids=x).logits).abs().max() > 1e-3
    result = tuned.generate(ids, max_new_tokens=6)
    assert result.new_tokens == 6
