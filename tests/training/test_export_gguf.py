"""`python -m training.export_gguf`: GPT-2 dirs as GGUF files that llama.cpp loads.

The GGUF is read back with gguf's own GGUFReader (arch, tensor names, shapes and values, vocab,
merges, special ids); bad inputs fail with exit status 2 and leave no file; and, where
llama-cpp-python is installed (the `llama` extra), llama.cpp's tokenization and greedy output
equal transformers' on a tiny trained GPT-2.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
gguf = pytest.importorskip("gguf")

from tiny_model import JS_SAMPLES  # noqa: E402

from training.export_gguf import main  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "server" / "models" / "default"
PROMPTS = ["function add(a, b) {\n  return", "const items = [1, 2, 3];\nfor (let i = 0; i <", "if (value ==="]


def field(reader: Any, key: str) -> Any:
    return reader.fields[key].contents()


def hf_state(model_dir: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(model_dir / "model.safetensors"))


def export(model_dir: Path, out: Path, *args: str) -> None:
    assert main([str(model_dir), str(out), *args]) == 0
    assert out.is_file() and not out.with_name(out.name + ".tmp").exists()


def test_round_trip_tiny(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny.gguf"
    export(tiny_model_dir, out)
    reader = gguf.GGUFReader(out)
    config = json.loads((tiny_model_dir / "config.json").read_text())
    tok = json.loads((tiny_model_dir / "tokenizer.json").read_text())
    n_embd, n_layer, vocab = config["n_embd"], config["n_layer"], config["vocab_size"]

    assert field(reader, "general.architecture") == "gpt2"
    assert field(reader, "gpt2.context_length") == config["n_positions"]
    assert field(reader, "gpt2.embedding_length") == n_embd
    assert field(reader, "gpt2.feed_forward_length") == 4 * n_embd
    assert field(reader, "gpt2.block_count") == n_layer
    assert field(reader, "gpt2.attention.head_count") == config["n_head"]
    assert field(reader, "general.file_type") == gguf.LlamaFileType.ALL_F32

    # Tensors: llama.cpp's GPT-2 names, [out, in] like nn.Linear (Conv1D transposed), tied output.
    tensors = {t.name: t for t in reader.tensors}
    per_block = ["attn_norm", "attn_qkv", "attn_output", "ffn_norm", "ffn_up", "ffn_down"]
    expected = {"token_embd.weight", "position_embd.weight", "output_norm.weight", "output_norm.bias"}
    expected |= {f"blk.{i}.{n}.{s}" for i in range(n_layer) for n in per_block for s in ("weight", "bias")}
    assert set(tensors) == expected  # no output.weight: llama.cpp falls back to token_embd
    assert all(t.tensor_type == gguf.GGMLQuantizationType.F32 for t in tensors.values())
    state = hf_state(tiny_model_dir)
    prefix = "transformer." if "transformer.wte.weight" in state else ""
    pairs = {
        "token_embd.weight": state[f"{prefix}wte.weight"],
        "position_embd.weight": state[f"{prefix}wpe.weight"],
        "blk.1.attn_qkv.weight": state[f"{prefix}h.1.attn.c_attn.weight"].T,
        "blk.1.attn_output.weight": state[f"{prefix}h.1.attn.c_proj.weight"].T,
        "blk.0.ffn_up.weight": state[f"{prefix}h.0.mlp.c_fc.weight"].T,
        "blk.0.ffn_down.weight": state[f"{prefix}h.0.mlp.c_proj.weight"].T,
        "blk.0.ffn_up.bias": state[f"{prefix}h.0.mlp.c_fc.bias"],
        "output_norm.weight": state[f"{prefix}ln_f.weight"],
    }
    for name, want in pairs.items():
        assert tensors[name].data.shape == want.shape, name
        np.testing.assert_array_equal(tensors[name].data, want, err_msg=name)
    assert list(tensors["blk.0.ffn_up.weight"].shape) == [n_embd, 4 * n_embd]  # ggml ne order

    # Tokenizer: every id's string, specials as CONTROL, merges as "a b", ids for bos/eos/FIM.
    tokens = field(reader, "tokenizer.ggml.tokens")
    vocab_ids = {**tok["model"]["vocab"], **{t["content"]: t["id"] for t in tok["added_tokens"]}}
    assert len(tokens) == vocab and all(tokens[i] == t for t, i in vocab_ids.items())
    types = field(reader, "tokenizer.ggml.token_type")
    specials = {t["id"] for t in tok["added_tokens"] if t["special"]}
    assert specials and all(types[i] == gguf.TokenType.CONTROL for i in specials)
    assert all(types[i] == gguf.TokenType.NORMAL for i in range(vocab) if i not in specials)
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    assert field(reader, "tokenizer.ggml.merges") == merges and len(merges) > 100
    assert field(reader, "tokenizer.ggml.model") == "gpt2"
    assert field(reader, "tokenizer.ggml.pre") == "gpt-2"
    eos = vocab_ids["<|endoftext|>"]
    assert field(reader, "tokenizer.ggml.bos_token_id") == field(reader, "tokenizer.ggml.eos_token_id") == eos
    assert field(reader, "tokenizer.ggml.add_bos_token") is False
    assert field(reader, "tokenizer.ggml.add_space_prefix") is False
    assert field(reader, "tokenizer.ggml.fim_pre_token_id") == vocab_ids["<fim_prefix>"]
    assert field(reader, "tokenizer.ggml.fim_suf_token_id") == vocab_ids["<fim_suffix>"]
    assert field(reader, "tokenizer.ggml.fim_mid_token_id") == vocab_ids["<fim_middle>"]


def test_f16_and_no_fim(tiny_model_dir_no_fim: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny16.gguf"
    export(tiny_model_dir_no_fim, out, "--dtype", "f16")
    reader = gguf.GGUFReader(out)
    assert field(reader, "general.file_type") == gguf.LlamaFileType.MOSTLY_F16
    for t in reader.tensors:  # matrices f16, norms and biases stay f32 (as llama.cpp's converter)
        want = gguf.GGMLQuantizationType.F16 if len(t.shape) > 1 else gguf.GGMLQuantizationType.F32
        assert t.tensor_type == want, t.name
    assert not any("fim" in key for key in reader.fields)


def test_bf16_weights_export_as_their_float32_values_without_torch(tiny_model_dir: Path, tmp_path: Path) -> None:
    # numpy has no bf16: the exporter widens its bits itself, and never imports torch (the llama.cpp
    # engine converts a model dir on its first start, and that path runs without torch).
    import torch
    from safetensors.torch import load_file, save_file

    bf16_dir = tmp_path / "bf16"
    shutil.copytree(tiny_model_dir, bf16_dir)
    state = load_file(str(tiny_model_dir / "model.safetensors"))
    save_file({k: v.to(torch.bfloat16) for k, v in state.items()}, str(bf16_dir / "model.safetensors"))
    script = (
        "import sys; from pathlib import Path; from server.engines.gguf_export import export\n"
        f"export(Path({str(bf16_dir)!r}), Path({str(tmp_path / 'bf16.gguf')!r}))\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "False", (done.stdout, done.stderr[-2000:])
    tensors = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(tmp_path / "bf16.gguf").tensors}
    wte = state["transformer.wte.weight"].to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(tensors["token_embd.weight"].reshape(wte.shape), wte)
    c_fc = state["transformer.h.0.mlp.c_fc.weight"].to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(tensors["blk.0.ffn_up.weight"].reshape(c_fc.T.shape), c_fc.T)  # Conv1D transposed


def test_merges_as_strings(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Older tokenizers store merges as "a b" strings instead of [a, b] pairs: same GGUF."""
    legacy = tmp_path / "legacy"
    shutil.copytree(tiny_model_dir, legacy)
    tok = json.loads((legacy / "tokenizer.json").read_text())
    pairs = tok["model"]["merges"]
    tok["model"]["merges"] = [m if isinstance(m, str) else " ".join(m) for m in pairs]
    (legacy / "tokenizer.json").write_text(json.dumps(tok))
    export(tiny_model_dir, tmp_path / "a.gguf")
    export(legacy, tmp_path / "b.gguf")
    merges_a = field(gguf.GGUFReader(tmp_path / "a.gguf"), "tokenizer.ggml.merges")
    assert merges_a == field(gguf.GGUFReader(tmp_path / "b.gguf"), "tokenizer.ggml.merges")


@pytest.mark.shipped_model
def test_shipped_model(tmp_path: Path) -> None:
    out = tmp_path / "default.gguf"
    export(SHIPPED, out, "--dtype", "f16")
    reader = gguf.GGUFReader(out)
    assert len(field(reader, "tokenizer.ggml.tokens")) == 8192
    config = json.loads((SHIPPED / "config.json").read_text())
    assert field(reader, "gpt2.block_count") == config["n_layer"]
    assert field(reader, "gpt2.embedding_length") == config["n_embd"]
    # f16: about the shipped fp16 safetensors (2 bytes a parameter), not twice it (f32)
    assert out.stat().st_size < 1.1 * (SHIPPED / "model.safetensors").stat().st_size + 1_000_000


def _bad_dir(tmp_path: Path, tiny_model_dir: Path, kind: str) -> Path:
    bad = tmp_path / kind
    if kind == "missing":
        return bad
    shutil.copytree(tiny_model_dir, bad)
    if kind == "pickle-only":
        (bad / "model.safetensors").rename(bad / "pytorch_model.bin")
    elif kind == "llama":
        config = json.loads((bad / "config.json").read_text())
        (bad / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    elif kind == "corrupt":  # fails while tensors are read: after the writer exists
        (bad / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    return bad


@pytest.mark.parametrize(
    ("kind", "message"),
    [("missing", "not found"), ("pickle-only", "pytorch_model.bin"), ("llama", "'llama'"), ("corrupt", "")],
)
def test_bad_inputs(kind: str, message: str, tiny_model_dir: Path, tmp_path: Path,
                    capsys: pytest.CaptureFixture[str]) -> None:
    model_dir = _bad_dir(tmp_path, tiny_model_dir, kind)
    out = tmp_path / "out" / "model.gguf"
    out.parent.mkdir()
    assert main([str(model_dir), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert list(out.parent.iterdir()) == []  # neither OUT nor OUT.tmp


def test_failure_keeps_existing_output(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.gguf"
    out.write_bytes(b"previous")
    assert main([str(_bad_dir(tmp_path, tiny_model_dir, "corrupt")), str(out)]) == 2
    assert out.read_bytes() == b"previous" and not (tmp_path / "model.gguf.tmp").exists()


def test_cli_exit_status(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "training.export_gguf", str(tmp_path / "nope"), str(tmp_path / "x.gguf")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: model dir not found")


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python not installed")
def test_llama_cpp_matches_transformers(trained_dir: Path, tmp_path: Path) -> None:
    """llama.cpp's tokenizer and greedy decoding of the exported file equal transformers'."""
    import llama_cpp
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "trained.gguf"
    export(trained_dir, out)
    llm = llama_cpp.Llama(model_path=str(out), n_ctx=512, logits_all=False, verbose=False, seed=0)
    tokenizer = AutoTokenizer.from_pretrained(str(trained_dir))
    model = AutoModelForCausalLM.from_pretrained(str(trained_dir), use_safetensors=True).eval()

    for text in [*JS_SAMPLES, "x = 'héllo wörld' // ünïcode 日本\n\t\ttabs   and  spaces 123456"]:
        assert llm.tokenize(text.encode(), add_bos=False, special=False) == tokenizer(text)["input_ids"], text
    fim = "<fim_prefix>function add(a, b) {\n  return<fim_suffix>\n}\n<fim_middle>"
    assert llm.tokenize(fim.encode(), add_bos=False, special=True) == tokenizer(fim)["input_ids"]

    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            gen = model.generate(ids, max_new_tokens=16, do_sample=False, pad_token_id=tokenizer.eos_token_id)
        want = tokenizer.decode(gen[0, ids.shape[1]:], skip_special_tokens=True)
        got = llm.create_completion(prompt, max_tokens=16, temperature=0.0)["choices"][0]["text"]
        assert got == want, prompt
