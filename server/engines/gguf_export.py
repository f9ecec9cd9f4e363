"""A GPT-2 Hugging Face dir as one GGUF file for llama.cpp (the llama.cpp engine's conversion, and
`python -m training.export_gguf`).

Converts a local Hugging Face GPT-2 causal LM directory (`config.json` with model_type "gpt2",
`model.safetensors`, a byte-level BPE `tokenizer.json`) into one GGUF file that llama.cpp and
llama-cpp-python load. It writes what llama.cpp's own `convert_hf_to_gguf.py` writes for GPT-2,
with the `gguf` package (ggml project) and no llama.cpp checkout:

- tensors under llama.cpp's GPT-2 names (gguf's TensorNameMap: token_embd, position_embd,
  blk.N.attn_norm/attn_qkv/attn_output/ffn_norm/ffn_up/ffn_down, output_norm); HF GPT-2's
  Conv1D weights are stored [in, out], so c_attn/c_proj/c_fc are transposed to Linear's [out, in];
  tied embeddings write no `output.weight` (llama.cpp's GPT-2 loader falls back to token_embd);
- hyperparameters (context, embedding and feed-forward lengths, blocks, heads, layer-norm eps);
- the tokenizer: "gpt2" BPE with the "gpt-2" pre-tokenizer regex, tokens in id order with
  special added tokens typed CONTROL, merges as "a b", bos/eos, FIM token ids when present.

Only safetensors are read (never pickles, never remote code). The file is written to OUT.tmp
and renamed, so a failure never leaves a half-written OUT.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from safetensors import SafetensorError, safe_open

from server import fim

# HF GPT-2 Conv1D layers: weight stored [in_features, out_features], the transpose of nn.Linear.
CONV1D_SUFFIXES = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")
# Non-persistent causal-mask buffers that older transformers versions saved: not weights.
SKIP_SUFFIXES = (".attn.bias", ".attn.masked_bias")
# llama.cpp's GPT-2 graph uses the tanh GELU (= HF "gelu_new"); exact "gelu" differs by ~1e-3.
GELU_ACTS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast", "gelu")
FIM_KEYS = {  # tokenizer content -> GGUF key (llama.cpp would also guess these from the text)
    fim.PREFIX: gguf.Keys.Tokenizer.FIM_PRE_ID,
    fim.SUFFIX: gguf.Keys.Tokenizer.FIM_SUF_ID,
    fim.MIDDLE: gguf.Keys.Tokenizer.FIM_MID_ID,
    fim.PAD: gguf.Keys.Tokenizer.FIM_PAD_ID,
}


class ExportError(Exception):
    """A model dir this conversion cannot write (its message says why)."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ExportError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise ExportError(f"{path} is not a JSON object")
    return data


def load_config(model_dir: Path) -> dict[str, Any]:
    """config.json of a GPT-2 whose graph llama.cpp's GPT-2 architecture computes exactly."""
    if not model_dir.is_dir():
        raise ExportError(f"model dir not found: {model_dir}")
    if not (model_dir / "config.json").is_file():
        raise ExportError(f"{model_dir} has no config.json (not a Hugging Face model dir)")
    config = _read_json(model_dir / "config.json")
    if config.get("model_type") != "gpt2":
        raise ExportError(f"model_type is {config.get('model_type')!r}; only 'gpt2' can be exported")
    if not (model_dir / "model.safetensors").is_file():
        pickles = sorted(p.name for p in model_dir.glob("*.bin")) + sorted(p.name for p in model_dir.glob("*.pt"))
        found = f" (found {', '.join(pickles)}: pickles are never loaded)" if pickles else ""
        raise ExportError(f"{model_dir} has no model.safetensors{found}")
    if not (model_dir / "tokenizer.json").is_file():
        raise ExportError(f"{model_dir} has no tokenizer.json")
    act = config.get("activation_function", "gelu_new")
    if act not in GELU_ACTS:
        raise ExportError(f"activation_function {act!r}: llama.cpp's GPT-2 only computes GELU")
    if config.get("scale_attn_by_inverse_layer_idx") or config.get("scale_attn_weights") is False:
        raise ExportError("non-standard attention scaling: llama.cpp's GPT-2 scales by 1/sqrt(head_dim)")
    if config.get("add_cross_attention"):
        raise ExportError("cross-attention GPT-2 (encoder-decoder) cannot be exported")
    return config


def load_tokenizer(model_dir: Path, vocab_size: int) -> tuple[list[str], list[int], list[str], dict[str, int]]:
    """(tokens in id order, token types, merges as "a b", added token content -> id) from tokenizer.json."""
    tok = _read_json(model_dir / "tokenizer.json")
    model = tok.get("model") or {}
    if model.get("type") != "BPE":
        raise ExportError(f"tokenizer.json model is {model.get('type')!r}, not byte-level BPE")
    pre = tok.get("pre_tokenizer") or {}
    # tokenizer.ggml.pre "gpt-2" is exactly ByteLevel with GPT-2's split regex; anything else
    # (no regex, a custom Split sequence) would tokenize differently in llama.cpp.
    if pre.get("type") != "ByteLevel" or pre.get("use_regex", True) is False:
        raise ExportError(f"pre-tokenizer {pre.get('type')!r} is not GPT-2's ByteLevel regex split")
    by_id: dict[int, str] = {int(i): t for t, i in model["vocab"].items()}
    added: dict[str, int] = {}
    types: dict[int, int] = {}
    for t in tok.get("added_tokens") or []:
        by_id[int(t["id"])] = t["content"]
        added[t["content"]] = int(t["id"])
        # Special tokens (<|endoftext|>, <fim_*>) are CONTROL: llama.cpp matches them in a prompt
        # only when asked to parse specials, like HF; other added tokens are plain text pieces.
        types[int(t["id"])] = gguf.TokenType.CONTROL if t.get("special") else gguf.TokenType.USER_DEFINED
    n = max(by_id) + 1
    if n > vocab_size:
        raise ExportError(f"tokenizer has {n} tokens but config.json vocab_size is {vocab_size}")
    tokens: list[str] = []
    token_types: list[int] = []
    for i in range(vocab_size):  # embedding rows beyond the tokenizer (padding) get unused names
        if i in by_id:
            tokens.append(by_id[i])
            token_types.append(types.get(i, gguf.TokenType.NORMAL))
        else:
            tokens.append(f"[PAD{i}]")
            token_types.append(gguf.TokenType.UNUSED)
    # tokenizers >= 0.20 stores merges as [a, b] pairs, older versions as "a b" strings.
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    return tokens, token_types, merges, added


def _special_id(config: dict[str, Any], key: str, tok_config: dict[str, Any], added: dict[str, int]) -> int | None:
    """bos/eos/pad id from config.json, else tokenizer_config.json's token text."""
    if isinstance(config.get(f"{key}_token_id"), int):
        return int(config[f"{key}_token_id"])
    text = tok_config.get(f"{key}_token")
    if isinstance(text, dict):  # older AddedToken serialisation
        text = text.get("content")
    return added.get(text) if isinstance(text, str) else None


def float32_tensors(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    """Each tensor of a safetensors file as float32, read with numpy (no torch: the llama.cpp path
    never imports it). safetensors' numpy reader has no bf16, so its bits are widened here."""
    try:
        with safe_open(str(path), framework="numpy") as f:  # validates the header and offsets
            names = list(f.keys())
            dtypes = {name: f.get_slice(name).get_dtype() for name in names}
            for name in names:
                if dtypes[name] != "BF16":
                    yield name, np.asarray(f.get_tensor(name), dtype=np.float32)
    except SafetensorError as e:
        raise ExportError(f"cannot read {path}: {e}") from None
    bf16 = [name for name, kind in dtypes.items() if kind == "BF16"]
    if bf16:
        with path.open("rb") as raw:
            (size,) = struct.unpack("<Q", raw.read(8))
            header = json.loads(raw.read(size))
        data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + size)
        for name in bf16:
            start, end = header[name]["data_offsets"]
            bits = data[start:end].view("<u2").astype(np.uint32) << 16
            yield name, bits.view(np.float32).reshape(header[name]["shape"])


def export(model_dir: Path, out: Path, dtype: str = "f32") -> None:
    """Write `model_dir` as GGUF to `out` (atomically)."""
    config = load_config(model_dir)
    n_layer, n_embd = int(config["n_layer"]), int(config["n_embd"])
    vocab_size = int(config["vocab_size"])
    tokens, token_types, merges, added = load_tokenizer(model_dir, vocab_size)
    tok_config_path = model_dir / "tokenizer_config.json"
    tok_config = _read_json(tok_config_path) if tok_config_path.is_file() else {}
    if not out.parent.is_dir():
        raise ExportError(f"output folder not found: {out.parent}")

    tmp = out.with_name(out.name + ".tmp")
    writer = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.GPT2])
    try:
        writer.add_name(model_dir.resolve().name)
        writer.add_context_length(int(config.get("n_positions") or config["n_ctx"]))
        writer.add_embedding_length(n_embd)
        writer.add_feed_forward_length(int(config.get("n_inner") or 4 * n_embd))
        writer.add_block_count(n_layer)
        writer.add_head_count(int(config["n_head"]))
        writer.add_layer_norm_eps(float(config.get("layer_norm_epsilon", 1e-5)))
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if dtype == "f16" else gguf.LlamaFileType.ALL_F32)

        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("gpt-2")  # ByteLevel(use_regex=True): the GPT-2 split regex
        writer.add_token_list(tokens)
        writer.add_token_types(token_types)
        writer.add_token_merges(merges)
        for key, add in (("bos", writer.add_bos_token_id), ("eos", writer.add_eos_token_id),
                         ("pad", writer.add_pad_token_id)):
            token_id = _special_id(config, key, tok_config, added)
            if token_id is not None:
                add(token_id)
        writer.add_add_bos_token(False)  # GPT-2 prompts start with the text itself
        writer.add_add_eos_token(False)
        # GPT-2 adds no leading space. Without this key llama-cpp-python assumes "true" and, for a
        # request with a `suffix`, prepends "☺" to the suffix and drops its first two tokens.
        writer.add_add_space_prefix(False)
        for content, gguf_key in FIM_KEYS.items():
            if content in added:
                writer.add_uint32(gguf_key, added[content])

        names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GPT2, n_layer)
        tied = config.get("tie_word_embeddings", True)
        for name, data in float32_tensors(model_dir / "model.safetensors"):
            if name.endswith(SKIP_SUFFIXES) or (tied and name.endswith("lm_head.weight")):
                continue  # tied: llama.cpp reuses token_embd as the output projection
            new_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
            if new_name is None:
                raise ExportError(f"unexpected tensor {name!r} in model.safetensors")
            array = np.ascontiguousarray(data.T if name.endswith(CONV1D_SUFFIXES) else data)
            # f16 halves the file; 1-D tensors (norms, biases) stay f32 as llama.cpp's converter does.
            if dtype == "f16" and array.ndim > 1:
                array = array.astype(np.float16)
            writer.add_tensor(new_name, array)

        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
