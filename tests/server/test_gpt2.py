"""server.gpt2: the native GPT-2 forward against transformers' GPT2LMHeadModel, and when the
engine uses it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from server.engines.pytorch import TorchEngine
from server.gpt2 import GPT2LM, KVCache, load_native
from server.settings import Settings
from server.tokenizer import NATIVE_ENV

ROOT = Path(__file__).resolve().parents[2]
CODE = "function add(a, b) {\n  return a + b;\n}\nconst items = [1, 2, 3];\nfor (let i = 0; i < items.length; i++) {\n"


def reference(directory: Path) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(directory), dtype=torch.float32).eval()


def native(directory: Path) -> GPT2LM:
    model = load_native(directory)
    assert model is not None, f"{directory} should load natively"
    return model


@pytest.fixture(scope="module")
def models(trained_dir: Path) -> tuple[GPT2LM, torch.nn.Module]:
    return native(trained_dir), reference(trained_dir)


def ids(n: int, vocab: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, (1, n), generator=torch.Generator().manual_seed(seed))


@torch.inference_mode()
def test_logits_match_transformers(models: tuple[GPT2LM, torch.nn.Module]) -> None:
    ours, theirs = models
    x = ids(200, ours.shape.vocab_size)
    expected = theirs(input_ids=x).logits
    assert torch.allclose(ours(x).logits, expected, atol=1e-4)
    # The last rows only, as the engine asks for them.
    assert torch.allclose(ours(x, logits_to_keep=3).logits, expected[:, -3:], atol=1e-4)


@torch.inference_mode()
def test_cache_prefill_in_chunks_decode_and_crop(models: tuple[GPT2LM, torch.nn.Module]) -> None:
    """Cached keys/values give the same logits as one pass: chunks after a past (the causal mask
    with an offset), one token at a time (growing the buffers past their first capacity), a crop
    and a recompute from there (typing after a deleted word), and a draft of several rows."""
    ours, theirs = models
    x = ids(180, ours.shape.vocab_size, seed=1)
    expected = theirs(input_ids=x).logits
    cache = ours.new_cache()
    ours(x[:, :50], cache)
    out = ours(x[:, 50:100], cache)
    assert out.cache is cache and cache.get_seq_length() == 100
    assert torch.allclose(out.logits, expected[:, 50:100], atol=1e-4)
    for t in range(100, 140):
        step = ours(x[:, t : t + 1], cache, logits_to_keep=1).logits
        assert torch.allclose(step[0, -1], expected[0, t], atol=1e-4)
    cache.crop(-30)  # back to 110 tokens, as transformers' DynamicCache.crop(-30)
    assert cache.get_seq_length() == 110
    again = ours(x[:, 110:180], cache, logits_to_keep=5).logits
    assert torch.allclose(again, expected[:, 175:180], atol=1e-4)
    cache.crop(0)  # transformers 5: nothing to remove
    assert cache.get_seq_length() == 180
    cache.crop(-160)
    assert cache.get_seq_length() == 20
    assert torch.allclose(ours(x[:, 20:21], cache).logits[0, -1], expected[0, 20], atol=1e-4)


def test_kv_cache_crop_semantics() -> None:
    cache = KVCache(layers=1)
    k = torch.zeros(1, 2, 5, 4)
    keys, values = cache.append(0, k, k)
    cache.length = 5
    assert keys.shape[2] == 5 and values.shape[2] == 5
    cache.crop(-2)
    assert cache.length == 3
    cache.crop(0)  # as transformers 5's DynamicCache: crop(0) removes nothing
    assert cache.length == 3
    with pytest.raises(ValueError, match="negative"):
        cache.crop(2)  # the legacy "keep n" meaning is refused, as transformers 5 does
    cache.crop(-10)
    assert cache.length == 0


def test_too_many_positions_is_an_error(trained_dir: Path) -> None:
    model = native(trained_dir)
    with pytest.raises(ValueError, match="exceed"):
        model(ids(model.shape.n_positions + 1, model.shape.vocab_size))


def test_engine_generates_what_transformers_generates(trained_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Greedy text, with healing and KV reuse across keystrokes, is the same on both forwards,
    and the same as a cold start: including when the new prompt extends the whole cached
    sequence (the engine then crops nothing: `crop(0)`)."""
    fast = TorchEngine(Settings(model=str(trained_dir), device="cpu"))
    fast.load()
    monkeypatch.setenv(NATIVE_ENV, "0")
    slow = TorchEngine(Settings(model=str(trained_dir), device="cpu"))
    slow.load()
    assert fast.native and not slow.native
    tokenizer = fast.tokenizer
    for n in range(len(CODE) - 30, len(CODE) + 1, 6):
        prompt = tokenizer(CODE[:n])["input_ids"]
        a = fast.generate(prompt, max_new_tokens=12, sequence="typing", heal=" ")
        b = slow.generate(prompt, max_new_tokens=12, sequence="typing", heal=" ")
        assert (a.text, a.token_ids, a.prompt_tokens_computed) == (b.text, b.token_ids, b.prompt_tokens_computed)
        assert a.text
        cold = fast.generate(prompt, max_new_tokens=12, sequence=f"cold-{n}", heal=" ")
        assert cold.token_ids == a.token_ids
        # The next prompt is this one plus what was generated: all of the cache is reused.
        longer = prompt + a.token_ids
        warm = fast.generate(longer, max_new_tokens=6, sequence="typing")
        assert warm.prompt_tokens_computed == 1
        assert warm.token_ids == fast.generate(longer, max_new_tokens=6, sequence=f"cold-long-{n}").token_ids
        slow.generate(longer, max_new_tokens=6, sequence="typing")


def test_sharded_checkpoint_loads(trained_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(trained_dir))
    model.save_pretrained(tmp_path, safe_serialization=True, max_shard_size="100KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    x = ids(40, model.config.vocab_size)
    with torch.inference_mode():
        assert torch.allclose(native(tmp_path)(x).logits, native(trained_dir)(x).logits)


@pytest.mark.parametrize(
    "change",
    [
        {"scale_attn_by_inverse_layer_idx": True},
        {"reorder_and_upcast_attn": True},
        {"activation_function": "swish"},
        {"model_type": "llama"},
        {"tie_word_embeddings": False},
    ],
)
def test_other_configs_are_left_to_transformers(trained_dir: Path, tmp_path: Path, change: dict) -> None:
    shutil.copytree(trained_dir, tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    config.update(change)
    config_path.write_text(json.dumps(config))
    assert load_native(tmp_path / "m") is None


def test_missing_tensor_is_left_to_transformers(trained_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    (tmp_path / "m").mkdir()
    shutil.copy(trained_dir / "config.json", tmp_path / "m")
    tensors = load_file(str(trained_dir / "model.safetensors"))
    tensors.pop(next(k for k in tensors if k.endswith("ln_f.bias")))
    save_file(tensors, str(tmp_path / "m" / "model.safetensors"))
    assert load_native(tmp_path / "m") is None
    assert load_native(tmp_path / "nothing-here") is None


def test_engine_falls_back_for_int8_and_adapters(trained_dir: Path) -> None:
    engine = TorchEngine(Settings(model=str(trained_dir), device="cpu", quantize="int8"))
    engine.load()
    assert not engine.native
    assert engine.generate([1, 2, 3], max_new_tokens=3).new_tokens >= 1


def test_bf16_runs_natively(trained_dir: Path) -> None:
    engine = TorchEngine(Settings(model=str(trained_dir), device="cpu", quantize="bf16"))
    engine.load()
    assert engine.native and next(engine.model.parameters()).dtype == torch.bfloat16
    x = ids(60, engine.model.shape.vocab_size)
    with torch.inference_mode():
        low = engine.model(x).logits.float()
        full = native(trained_dir)(x).logits
    assert (low.argmax(-1) == full.argmax(-1)).float().mean() > 0.9
    assert engine.generate(engine.tokenizer(CODE)["input_ids"], max_new_tokens=4, heal=" ", sequence="a").new_tokens >= 1
    # Only the matrix products run in bf16: attention and its cache stay float32 (torch's CPU
    # attention is several times slower in bf16).
    cache = engine._sequences["a"].cache
    assert all(k is not None and k.dtype == torch.float32 for k in cache.keys)


def test_loading_and_generating_never_imports_transformers_models(trained_dir: Path) -> None:
    """The cold-start saving: neither transformers (its tokenizer wrapper and modeling code) nor
    torch's compiler stack (~3.5 s of imports on 2 cores) is imported to load the model and
    complete."""
    script = (
        "import sys\n"
        "from server.engines.pytorch import TorchEngine\n"
        "from server.settings import Settings\n"
        f"engine = TorchEngine(Settings(model={str(trained_dir)!r}, device='cpu'))\n"
        "engine.load()\n"
        f"result = engine.generate(engine.tokenizer({CODE!r})['input_ids'], max_new_tokens=5, heal=' ')\n"
        "assert engine.native and result.new_tokens >= 1\n"
        "print(sorted(m for m in sys.modules if m.startswith(('transformers', 'torch._dynamo'))))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(NATIVE_ENV, None)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    imported = done.stdout.strip().splitlines()[-1]
    assert imported == "[]", imported
