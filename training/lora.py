"""peft LoRA wiring: wrap a causal LM, save only the adapter, optionally merge into full weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.config import LoraConfig


def wrap(model: Any, cfg: LoraConfig, *, gradient_checkpointing: bool) -> Any:
    """Freeze the base model and add LoRA matrices on `cfg.target_modules`."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import TaskType, get_peft_model

    peft_cfg = PeftLoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
        fan_in_fan_out=cfg.fan_in_fan_out,
    )
    if gradient_checkpointing:
        # With a frozen embedding, checkpointed blocks would see inputs without grad and skip backward.
        model.enable_input_require_grads()
    return get_peft_model(model, peft_cfg)


def save_adapter(model: Any, out_dir: Path) -> None:
    """adapter_config.json + adapter_model.safetensors, nothing of the base weights."""
    model.save_pretrained(out_dir, safe_serialization=True)


def save_merged(model: Any, tokenizer: Any, out_dir: Path, max_shard_size: str = "") -> None:
    """Fold the adapter into the base weights and save a plain model dir (servable without peft)."""
    import copy

    merged = copy.deepcopy(model).merge_and_unload()
    kwargs: dict[str, Any] = {"max_shard_size": max_shard_size} if max_shard_size else {}
    merged.save_pretrained(out_dir, safe_serialization=True, **kwargs)
    tokenizer.save_pretrained(out_dir)
