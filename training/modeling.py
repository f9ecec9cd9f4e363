"""Tokenizer and model construction for a run: local dir or hub id (fail fast offline), or from scratch.

Weights load as safetensors only and never with remote code. Hub ids are checked before any
download is attempted, because without network `from_pretrained` retries for tens of seconds.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from server import fim, hub
from training.config import ConfigError, RunConfig

log = logging.getLogger(__name__)

EOS_TOKEN = fim.EOS


def check_source(key: str, name_or_path: str) -> None:
    """Raise ConfigError now if `name_or_path` is neither a local dir nor a reachable hub id."""
    if not name_or_path or Path(name_or_path).expanduser().is_dir():
        return
    if Path(name_or_path).is_absolute() or name_or_path.startswith((".", "~")):
        raise ConfigError(f"{key}={name_or_path!r}: directory not found")
    var = hub.offline_var()
    if var is not None:
        raise ConfigError(
            f"{key}={name_or_path!r} is a hub id but {var}=1: point it at a local model dir "
            f"(--set {key}=/path/to/model)"
        )
    if not hub.reachable():
        raise ConfigError(
            f"{key}={name_or_path!r} is a hub id but {hub.endpoint()} is unreachable: point it at a local "
            f"model dir (--set {key}=/path/to/model) or check the network"
        )


def check_sources(cfg: RunConfig) -> None:
    if not cfg.model.from_scratch:
        check_source("model.name_or_path", cfg.model.name_or_path)
    check_source("tokenizer.name_or_path", cfg.tokenizer.name_or_path)


def has_fim_tokens(tokenizer: Any) -> bool:
    return fim.fim_ids(tokenizer) is not None


def load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    if tokenizer.pad_token is None:
        # Packed blocks need no padding; the MLM collator and eval batching still want a pad id.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def add_fim_tokens(tokenizer: Any) -> bool:
    """Add the FIM special tokens a pretrained tokenizer lacks; True if the vocab grew."""
    missing = [t for t in fim.TOKENS if t not in tokenizer.get_vocab()]
    if not missing:
        return False
    tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    return True


def build_model(cfg: RunConfig, tokenizer: Any) -> Any:
    """A pretrained model (safetensors only) or a random one from `arch` + the free config fields."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM

    auto = AutoModelForMaskedLM if cfg.train.objective == "mlm" else AutoModelForCausalLM
    if cfg.model.from_scratch:
        special = {
            "bos_token_id": tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        }
        config = AutoConfig.for_model(cfg.model.arch, **{**special, **cfg.model.extra, "vocab_size": len(tokenizer)})
        return auto.from_config(config)
    import torch

    try:
        # float32 master weights whatever the checkpoint stores (the shipped model is fp16 on disk;
        # transformers otherwise loads a checkpoint in its own dtype); bf16 autocast is train.bf16's.
        model = auto.from_pretrained(
            cfg.model.name_or_path, use_safetensors=True, trust_remote_code=False,
            **{"dtype": torch.float32, **cfg.model.extra},
        )
    except OSError as exc:
        raise ConfigError(f"model.name_or_path={cfg.model.name_or_path!r}: cannot load safetensors model: {exc}") from exc
    except (RuntimeError, ValueError) as exc:
        # transformers refuses weights whose shapes disagree with config overrides such as a
        # recipe's model.n_layer: say which keys, not a load report a screen long.
        overrides = ", ".join(f"model.{k}={v!r}" for k, v in sorted(cfg.model.extra.items()))
        raise ConfigError(
            f"model.name_or_path={cfg.model.name_or_path!r}: its weights do not fit the model config"
            + (f" overridden by {overrides} (drop or match them to fine-tune this checkpoint)" if overrides else "")
            + f": {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from exc
    embeddings: Any = model.get_input_embeddings()
    if len(tokenizer) > embeddings.weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    _align_special_ids(model, tokenizer)
    return model


def context_length(config: Any) -> int | None:
    """How many positions a model's inputs may span (None: the config does not say). RoBERTa-style
    position ids start after the padding index, which costs them two of `max_position_embeddings`."""
    limit = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
    if limit and getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        limit -= 2
    return int(limit) if limit else None


def use_bf16(setting: str, device_type: str) -> bool:
    """`train.bf16` for a run on `device_type`: "auto" is bf16 autocast on a CUDA device that
    supports it and float32 elsewhere; "true" is bf16 (CPU autocast included; a GPU without bf16
    is a config error, not a silent fallback); "false" is float32."""
    import torch

    if setting == "false":
        return False
    on_cuda = device_type == "cuda"
    supported = on_cuda and bool(torch.cuda.is_bf16_supported())
    if setting == "true":
        if on_cuda and not supported:
            raise ConfigError("train.bf16=true but this GPU has no bf16: set train.bf16=auto or false")
        return True
    return supported


def _align_special_ids(model: Any, tokenizer: Any) -> None:
    """Special ids outside the vocab (CodeParrot-small: bos/eos 50256 with 32768 tokens) → the tokenizer's."""
    vocab = model.get_input_embeddings().weight.shape[0]
    for cfg in (model.config, getattr(model, "generation_config", None)):
        if cfg is None:
            continue
        for name in ("bos_token_id", "eos_token_id"):
            value = getattr(cfg, name, None)
            if isinstance(value, int) and value >= vocab and tokenizer.eos_token_id is not None:
                log.info("%s=%d is outside the %d-token vocab: using the tokenizer's eos id", name, value, vocab)
                setattr(cfg, name, tokenizer.eos_token_id)
