"""GPT-2 inference in plain torch: the shipped model's forward pass without importing transformers.

Why by hand (DESIGN: prefer the library, say why when not): on the 2-core machines this project
targets, `import transformers` plus its GPT-2 modeling stack costs ~2.7 s after torch (torch
dynamo, distributed tensors and scipy come with it), most of the issue's 3 s budget from a cold
start to the first completion; and for a 14 M-parameter model its per-call overhead (mask
building, cache classes, output dataclasses) is a large part of each decode step. A GPT-2 forward
is a few dozen lines over `nn.Linear` and `scaled_dot_product_attention`; the tokenizer still
comes from transformers, whose tokenizer module imports in ~0.5 s.

Only plain GPT-2 checkpoints load here (`load_native` returns None for anything else: adapters,
unusual attention options, other architectures), and the engine then uses transformers as
before. `tests/server/test_gpt2.py` checks the logits against transformers' `GPT2LMHeadModel`.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

# transformers' names for the activations a GPT-2 config may name, as torch calls.
_ACTIVATIONS = {
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: F.gelu(x, approximate="tanh"),
    "gelu": F.gelu,
    "relu": F.relu,
}
# Buffers older GPT-2 checkpoints carry (the causal mask); not weights.
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")


@dataclass(frozen=True)
class GPT2Shape:
    vocab_size: int
    n_positions: int
    n_embd: int
    n_layer: int
    n_head: int
    n_inner: int
    layer_norm_epsilon: float
    activation: str
    scale_attn_weights: bool

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GPT2Shape | None:
        """The shape of a plain GPT-2 config; None when it asks for anything this module lacks."""
        architectures = config.get("architectures") or ["GPT2LMHeadModel"]
        if config.get("model_type") != "gpt2" or architectures != ["GPT2LMHeadModel"]:
            return None
        unsupported = ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "add_cross_attention")
        if any(config.get(flag) for flag in unsupported) or config.get("tie_word_embeddings", True) is False:
            return None
        activation = config.get("activation_function", "gelu_new")
        if activation not in _ACTIVATIONS:
            return None
        n_embd = int(config.get("n_embd", 768))
        return cls(
            vocab_size=int(config.get("vocab_size", 50257)),
            n_positions=int(config.get("n_positions", 1024)),
            n_embd=n_embd,
            n_layer=int(config.get("n_layer", 12)),
            n_head=int(config.get("n_head", 12)),
            n_inner=int(config.get("n_inner") or 4 * n_embd),
            layer_norm_epsilon=float(config.get("layer_norm_epsilon", 1e-5)),
            activation=activation,
            scale_attn_weights=bool(config.get("scale_attn_weights", True)),
        )


class KVCache:
    """Keys and values of every layer for one token sequence, in buffers that grow by doubling.

    The subset of transformers' `DynamicCache` the engine uses: `crop(-n)` drops the last n
    tokens (transformers 5's meaning: `crop(0)` keeps everything) and is a length change, and
    appending a token copies nothing but the token (`DynamicCache` concatenates the whole
    sequence at every step); the same argument name (`cache`) as transformers 5's models. With
    bf16 weights on a CPU the buffers stay float32 (see `_Block.forward`).
    """

    is_croppable = True

    def __init__(self, layers: int) -> None:
        self.keys: list[torch.Tensor | None] = [None] * layers
        self.values: list[torch.Tensor | None] = [None] * layers
        self.length = 0

    def get_seq_length(self) -> int:
        return self.length

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError(f"crop takes a count of tokens to remove as a negative int, not {tokens_to_remove}")
        self.length = max(0, self.length + tokens_to_remove)

    def append(self, layer: int, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write (1, heads, T, head_dim) after the first `length` positions; all keys/values so far."""
        start, end = self.length, self.length + key.shape[2]
        keys, values = self.keys[layer], self.values[layer]
        if keys is None or values is None or keys.shape[2] < end:
            capacity = max(64, 1 << math.ceil(math.log2(end)))
            grown_k = key.new_empty(key.shape[0], key.shape[1], capacity, key.shape[3])
            grown_v = torch.empty_like(grown_k)
            if keys is not None and values is not None and start:
                grown_k[:, :, :start] = keys[:, :, :start]
                grown_v[:, :, :start] = values[:, :, :start]
            keys, values = self.keys[layer], self.values[layer] = grown_k, grown_v
        keys[:, :, start:end] = key
        values[:, :, start:end] = value
        return keys[:, :, :end], values[:, :, :end]


@dataclass
class CausalLMOutput:
    logits: torch.Tensor  # (1, rows, vocab)
    cache: KVCache


def _empty(*shape: int, device: str) -> nn.Parameter:
    return nn.Parameter(torch.empty(*shape, device=device), requires_grad=False)


class _Linear(nn.Module):
    """y = x Wᵀ + b with uninitialised parameters: they are always loaded from a checkpoint, and
    nn.Linear's random init costs time (and, on "meta", imports torch's reference ops: ~1.3 s)."""

    def __init__(self, n_in: int, n_out: int, device: str) -> None:
        super().__init__()
        self.weight = _empty(n_out, n_in, device=device)
        self.bias = _empty(n_out, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class _LayerNorm(nn.Module):
    def __init__(self, width: int, eps: float, device: str) -> None:
        super().__init__()
        self.eps = eps
        self.weight = _empty(width, device=device)
        self.bias = _empty(width, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class _Embedding(nn.Module):
    def __init__(self, rows: int, width: int, device: str) -> None:
        super().__init__()
        self.num_embeddings = rows
        self.weight = _empty(rows, width, device=device)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight)


class _Block(nn.Module):
    def __init__(self, shape: GPT2Shape, device: str) -> None:
        super().__init__()
        d = shape.n_embd
        self.n_head = shape.n_head
        self.scale = None if shape.scale_attn_weights else 1.0  # None: 1/sqrt(head_dim)
        self.act = _ACTIVATIONS[shape.activation]
        self.ln_1 = _LayerNorm(d, shape.layer_norm_epsilon, device)
        self.c_attn = _Linear(d, 3 * d, device)
        self.attn_proj = _Linear(d, d, device)
        self.ln_2 = _LayerNorm(d, shape.layer_norm_epsilon, device)
        self.c_fc = _Linear(d, shape.n_inner, device)
        self.mlp_proj = _Linear(shape.n_inner, d, device)

    def forward(self, x: torch.Tensor, cache: KVCache, layer: int, mask: torch.Tensor | None) -> torch.Tensor:
        batch, steps, width = x.shape
        qkv = self.c_attn(self.ln_1(x))
        if qkv.device.type == "cpu" and qkv.dtype != torch.float32:
            # bf16 weights halve what a decode step reads, but torch's CPU attention kernel is ~6x
            # slower in bf16 than in float32 (one query over 600 keys: 219 vs 33 µs): attention
            # and the KV cache stay float32, only the matrix products run in bf16.
            qkv = qkv.float()
        q, k, v = qkv.split(width, dim=2)
        heads = (batch, steps, self.n_head, width // self.n_head)
        q, k, v = (t.view(heads).transpose(1, 2) for t in (q, k, v))
        keys, values = cache.append(layer, k, v)
        causal = mask is None and steps > 1  # a cold prefill: the plain causal triangle
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, is_causal=causal, scale=self.scale)
        x = x + self.attn_proj(y.transpose(1, 2).reshape(batch, steps, width).to(x.dtype))
        return x + self.mlp_proj(self.act(self.c_fc(self.ln_2(x))))


class GPT2LM(nn.Module):
    """GPT-2 with a tied LM head, called like transformers' model by `server.engines.pytorch.Engine`."""

    def __init__(self, shape: GPT2Shape, device: str = "cpu") -> None:
        """Uninitialised on `device` ("meta" allocates nothing): `load_native` assigns the weights."""
        super().__init__()
        self.shape = shape
        self.wte = _Embedding(shape.vocab_size, shape.n_embd, device)
        self.wpe = _Embedding(shape.n_positions, shape.n_embd, device)
        self.h = nn.ModuleList(_Block(shape, device) for _ in range(shape.n_layer))
        self.ln_f = _LayerNorm(shape.n_embd, shape.layer_norm_epsilon, device)

    def get_input_embeddings(self) -> _Embedding:
        return self.wte

    def new_cache(self) -> KVCache:
        return KVCache(self.shape.n_layer)

    def forward(
        self,
        input_ids: torch.Tensor,
        cache: KVCache | None = None,
        use_cache: bool = True,
        logits_to_keep: int = 0,
    ) -> CausalLMOutput:
        """Logits of the last `logits_to_keep` positions (0: all) after the tokens in `cache`."""
        cache = cache if cache is not None else self.new_cache()
        past, steps = cache.length, input_ids.shape[1]
        if past + steps > self.shape.n_positions:
            raise ValueError(f"{past + steps} positions exceed the model's {self.shape.n_positions}")
        positions = torch.arange(past, past + steps, device=input_ids.device)
        x = self.wte(input_ids) + self.wpe(positions)
        mask = None
        if past and steps > 1:  # new tokens after cached ones: each sees the past and its own left
            seen = torch.arange(past + steps, device=input_ids.device)
            mask = seen[None, :] <= positions[:, None]
        for layer, block in enumerate(self.h):
            x = block(x, cache, layer, mask)
        cache.length = past + steps
        if logits_to_keep:
            x = x[:, -logits_to_keep:]
        logits = F.linear(self.ln_f(x), self.wte.weight)
        return CausalLMOutput(logits, cache)


def _state_dict(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of a (possibly sharded) safetensors checkpoint; keys without `transformer.`."""
    from safetensors.torch import load_file

    index = directory / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    tensors: dict[str, torch.Tensor] = {}
    for name in files:
        tensors.update(load_file(str(directory / name)))
    return {k.removeprefix("transformer."): v for k, v in tensors.items() if not k.endswith(_IGNORED_SUFFIXES)}


def _ours(key: str) -> str:
    """Our parameter name for a checkpoint key (GPT-2's Conv1D projections are our Linears)."""
    return key.replace(".attn.c_attn.", ".c_attn.").replace(".attn.c_proj.", ".attn_proj.").replace(
        ".mlp.c_fc.", ".c_fc."
    ).replace(".mlp.c_proj.", ".mlp_proj.")


def load_native(directory: Path, dtype: torch.dtype = torch.float32) -> GPT2LM | None:
    """The model in `directory` as a `GPT2LM`, or None when it is not a plain GPT-2 safetensors
    checkpoint (the caller then loads it with transformers)."""
    config_path = directory / "config.json"
    if not config_path.is_file() or not (
        (directory / "model.safetensors").is_file() or (directory / "model.safetensors.index.json").is_file()
    ):
        return None
    shape = GPT2Shape.from_config(json.loads(config_path.read_text()))
    if shape is None:
        return None
    checkpoint = _state_dict(directory)
    checkpoint.pop("lm_head.weight", None)  # tied to wte (tie_word_embeddings is checked above)
    state: dict[str, torch.Tensor] = {}
    for key, tensor in checkpoint.items():
        name = _ours(key)
        # Conv1D stores (in, out): y = x @ W + b; nn.Linear wants (out, in).
        is_conv = tensor.dim() == 2 and name.endswith(("c_attn.weight", "attn_proj.weight", "c_fc.weight", "mlp_proj.weight"))
        state[name] = (tensor.t() if is_conv else tensor).to(dtype).contiguous()
    model = GPT2LM(shape, device="meta")
    expected = set(model.state_dict())
    if set(state) != expected:
        log.info(
            "%s: not loaded natively (missing %s, unexpected %s); using transformers",
            directory,
            sorted(expected - set(state))[:3],
            sorted(set(state) - expected)[:3],
        )
        return None
    model.load_state_dict(state, assign=True)
    return model.eval()
