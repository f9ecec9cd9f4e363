"""Sizes a plan needs before anything is built: the model's parameters and compute per token, what
comes back, what the shipped model dir will weigh (it may hold at most `SHIP_CAP_BYTES`), and what a
token file will weigh once compressed.

The throughput guess is stage 6's measured rate (1.07 M tokens/s at 14.2 M parameters, 6 x 384,
context 1,024, on one H200), turned into FLOP/s by the usual count: 6 FLOPs per matrix parameter
per token (forward and backward) plus 12 * layers * width * context for attention. A larger model
fills the GPU better, so this undercounts its tokens/s; the first minute's log says by how much,
and the time-based schedule needs no step count either way.
"""

from __future__ import annotations

import lzma
from pathlib import Path
from typing import Any

from training.kit.plan import MIB, PlanError
from training.ship import SHIP_LIMIT_BYTES

STAGE6: dict[str, int] = {"parameters": 14_186_496, "positions_params": 1024 * 384, "n_layer": 6, "n_embd": 384, "context": 1024,
          "tokens_per_s": 1_068_438}
STAGE6_XZ_RATIO = 4.8  # stage 6's token file + sidecar (72 M tokens) under xz
SIDECAR_BYTES_PER_DOC = 215  # offsets + manifest row per document in a token file's JSON
TOKENS_PER_DOC = 1040  # corpus v3: 72.0 M tokens in 69,217 files
MANIFEST_BYTES_PER_DOC = 230  # data_manifest.jsonl row (stage 6: 15.2 MB for 69,217 files, 219 bytes)
MANIFEST_XZ_RATIO = 5  # data_manifest.jsonl.xz (stage 6's as shipped: 15.2 MB -> 2.85 MB, 5.3x)
RECORDS_BYTES = 150_000  # metrics, loss curve, plot, configs beside the weights
CARD_BYTES = 400_000  # README.md + ATTRIBUTION.md (stage 6: 196 kB for 4,734 packages; corpus v3 has ~8,000)
SHIP_CAP_BYTES = SHIP_LIMIT_BYTES  # the shipped model dir, everything in it: 60 MB (training.ship refuses more)
V3_TOKENS = 122_900_000  # corpus v3 whole
SAMPLE_BYTES = 16 * MIB


def flops_per_token(parameters: int, positions_params: int, n_layer: int, n_embd: int, context: int) -> float:
    """Training FLOPs per token: 6 per matrix parameter (the tied output layer included), plus attention."""
    return 6.0 * (parameters - positions_params) + 12.0 * n_layer * n_embd * context


def stage6_flops_per_s() -> float:
    s = STAGE6
    return s["tokens_per_s"] * flops_per_token(s["parameters"], s["positions_params"], s["n_layer"], s["n_embd"],
                                               s["context"])


def manifest_xz_bytes(n_documents: int) -> int:
    """The data manifest of `n_documents` files, xz-compressed (as it ships and as it comes back)."""
    return MANIFEST_BYTES_PER_DOC * n_documents // MANIFEST_XZ_RATIO


def ship_bytes(parameters: int, n_documents: int, tokenizer_bytes: int) -> int:
    """The shipped model dir: fp16 weights, the manifest as xz, the tokenizer, card, attribution, records."""
    return 2 * parameters + manifest_xz_bytes(n_documents) + tokenizer_bytes + CARD_BYTES + RECORDS_BYTES


def tokenizer_bytes(tok_dir: Path) -> int:
    """The tokenizer's files in a model dir (tokenizer.json, tokenizer_config.json, ...)."""
    return sum(f.stat().st_size for f in tok_dir.glob("*token*") if f.is_file()) if tok_dir.is_dir() else 0


def check_ship_cap(shipped: int, weights: int, cap: int, shape: str) -> None:
    """Refuse a shape whose shipped dir (`shipped` bytes, `weights` of them fp16 weights) would weigh more than
    `cap` bytes; a cap of 0 refuses nothing (a run that will not ship)."""
    if cap and shipped > cap:
        room = max(0, cap - (shipped - weights))
        raise PlanError(f"{shape} cannot ship: its model dir would weigh ~{shipped / 1e6:.1f} MB (fp16 weights "
                        f"{weights / 1e6:.1f} MB, the manifest as xz, tokenizer, card, records), over the "
                        f"{cap / 1e6:.0f} MB cap, which leaves ~{room / 2e6:.1f} M parameters; pick a smaller shape "
                        "(benchmarks/shapes.py), or plan with --ship-cap-mb 0 for a run that will not ship")


def model_info(cfg: Any, n_documents: int) -> dict[str, Any]:
    """Parameters (built on the meta device: no memory), shape, and the bytes that come back."""
    import torch

    from training.modeling import build_model, context_length, load_tokenizer

    tokenizer = load_tokenizer(cfg.tokenizer.name_or_path)
    with torch.device("meta"):
        model = build_model(cfg, tokenizer)
    c = model.config
    n_layer = int(getattr(c, "n_layer", 0) or getattr(c, "num_hidden_layers", 0))
    n_embd = int(getattr(c, "n_embd", 0) or getattr(c, "hidden_size", 0))
    context = int(context_length(c) or cfg.data.block_size)
    parameters = sum(p.numel() for p in model.parameters())
    wpe = getattr(getattr(model, "transformer", None), "wpe", None)
    positions = int(wpe.weight.numel()) if wpe is not None else 0
    weights = 2 * parameters  # fp16
    manifest_xz = manifest_xz_bytes(n_documents)
    tok_bytes = tokenizer_bytes(Path(cfg.tokenizer.name_or_path))
    fpt = flops_per_token(parameters, positions, n_layer, n_embd, min(context, cfg.data.block_size))
    return {
        "parameters": parameters, "shape": f"{c.model_type} {n_layer} x {n_embd}, context {context}",
        "config": {k: getattr(c, k) for k in SHAPE_KEYS if hasattr(c, k)},
        "weights_bytes": weights, "return_bytes": weights + manifest_xz + tok_bytes + RECORDS_BYTES,
        "ship_bytes": ship_bytes(parameters, n_documents, tok_bytes),
        "flops_per_token": fpt, "flops_per_s": stage6_flops_per_s(),
    }


SHAPE_KEYS = ("model_type", "n_layer", "n_embd", "n_head", "n_positions", "vocab_size", "num_hidden_layers",
              "hidden_size", "num_attention_heads", "num_key_value_heads", "intermediate_size",
              "max_position_embeddings", "tie_word_embeddings")


def same_shape(model_dir: Path, config: dict[str, Any]) -> bool:
    """Whether the weights in `model_dir` have the shape `config` describes (so a run can continue them)."""
    import json

    path = model_dir / "config.json"
    if not path.is_file():
        return False
    theirs = json.loads(path.read_text(encoding="utf-8"))
    keys = [k for k in SHAPE_KEYS if k in config and k in theirs]  # GPT-2's configs alias some names
    return "model_type" in keys and all(theirs[k] == config[k] for k in keys)


def estimate_payload(bin_path: Path, json_path: Path, *, preset: int, tokens: int | None = None) -> dict[str, Any]:
    """What a token file will weigh in a bundle: measured on a sample when the file is here, else from
    stage 6's ratio and `tokens` (the corpus's known size)."""
    if bin_path.is_file() and json_path.is_file():
        raw_bin, raw_json = bin_path.stat().st_size, json_path.stat().st_size
        n_tokens = raw_bin // 2 if tokens is None else tokens
        packed = 0.0
        for path, raw in ((bin_path, raw_bin), (json_path, raw_json)):
            with open(path, "rb") as f:
                sample = f.read(SAMPLE_BYTES)
            ratio = len(lzma.compress(sample, preset=preset)) / max(len(sample), 1)
            packed += raw * ratio
        return {"tokens": n_tokens, "raw_bytes": raw_bin + raw_json, "archive_bytes": int(packed) + 4096,
                "documents": None, "measured_on": "a sample of the file"}
    if tokens is None:
        raise FileNotFoundError(f"{bin_path} is not here: build it, or give its size (--expect-tokens N) to plan from")
    docs = tokens // TOKENS_PER_DOC
    raw = 2 * tokens + SIDECAR_BYTES_PER_DOC * docs
    return {"tokens": tokens, "raw_bytes": raw, "archive_bytes": int(raw / STAGE6_XZ_RATIO), "documents": docs,
            "measured_on": "stage 6's xz ratio (4.8x)"}
