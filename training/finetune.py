"""`python -m training.finetune --recipe NAME [--output-dir DIR] [--set key=value ...]`.

One run: resolve config (recipe + overrides, all checked before any work) → tokenizer (loaded, or
trained on the run's data for scratch recipes) → packed datasets (training.data) → model (+ LoRA)
→ Hugging Face Trainer (bf16 on GPU, grad accumulation, cosine + warmup, checkpoints in
OUT/checkpoints/, exact resume) → final eval (perplexity = exp(eval loss)) → a self-describing model
dir published into OUT (see `training.publish`). Works under `accelerate launch` / torchrun: every
process builds the same data; only the main process writes files.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from training import lora as lora_mod
from training.config import ConfigError, RunConfig, apply_overrides, list_recipes, load_recipe, validate
from training.modeling import (
    add_fim_tokens,
    build_model,
    check_sources,
    context_length,
    has_fim_tokens,
    load_tokenizer,
    use_bf16,
)
from training.publish import publish, stage_dir
from training.run_records import write_records

log = logging.getLogger("training.finetune")

EPILOG = """\
recipes (training/recipes/*.toml): {recipes}

--set takes section.key=value; sections: model, tokenizer, data, train, lora. Values are coerced
to the field's type (lists: TOML syntax ["a","b"] or comma-separated). `model.X` keys that are not
ModelConfig fields are transformers config fields (n_layer, n_embd, n_head, n_positions, ...).

examples:
  python -m training.finetune --recipe scratch-js --output-dir OUT --set data.dir=PKGS \\
      --set tokenizer.vocab_size=2000 --set model.n_layer=2 --set model.n_embd=64 \\
      --set model.n_head=2 --set train.max_steps=30
  python -m training.finetune --recipe codeparrot-js --output-dir OUT \\
      --set data.files='DIR/*.parquet' --set model.name_or_path=LOCAL_MODEL_DIR --set train.max_steps=5
  python -m training.finetune --recipe codeparrot-js-lora --output-dir OUT --merge ...
  python -m training.finetune --recipe scratch-js --output-dir OUT --resume        # latest checkpoint
  accelerate launch --num_processes 2 -m training.finetune --recipe ...            # multi-process

output (OUT): config.json + model.safetensors (or adapter_config.json + adapter_model.safetensors for
LoRA; OUT/merged/ with --merge), tokenizer files, training_config.json, recipe.toml,
data_manifest.jsonl, metrics.json (train_loss, eval_loss, perplexity, tokens_seen, ...), loss.png,
log_history.json; checkpoints in OUT/checkpoints/.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.finetune",
        description="Train or fine-tune a language model from a recipe (TOML) with optional overrides.",
        epilog=EPILOG.format(recipes=", ".join(list_recipes())),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--recipe", help="recipe name (see --list-recipes) or path to a .toml file")
    parser.add_argument("--output-dir", help="where the model dir is written (overrides train.output_dir)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config field, e.g. train.max_steps=10 (repeatable)",
    )
    parser.add_argument(
        "--resume", nargs="?", const="auto", default=None, metavar="CHECKPOINT|auto",
        help="continue from a checkpoint dir, or 'auto' (default when given alone) = latest in OUT/checkpoints",
    )
    parser.add_argument("--merge", action="store_true", help="LoRA: also write merged full weights to OUT/merged/")
    parser.add_argument("--list-recipes", action="store_true", help="print the recipes with their descriptions")
    return parser


def resolve_config(args: argparse.Namespace) -> RunConfig:
    """Recipe + overrides + flags, validated (including hub reachability) before any work."""
    if not args.recipe:
        raise ConfigError("--recipe is required (see --list-recipes)")
    cfg = apply_overrides(load_recipe(args.recipe), args.overrides)
    if args.output_dir:
        cfg.train.output_dir = args.output_dir
    if args.merge:
        cfg.lora.merge = True
    if cfg.lora.merge and not cfg.lora.enabled:
        raise ConfigError("--merge / lora.merge needs a LoRA recipe (lora.enabled=true)")
    validate(cfg)
    check_sources(cfg)
    return cfg


def _training_args(cfg: RunConfig, out: Path) -> Any:
    import torch
    from transformers import TrainingArguments

    t = cfg.train
    bf16 = use_bf16(t.bf16, "cuda" if torch.cuda.is_available() else "cpu")
    return TrainingArguments(
        output_dir=str(out / "checkpoints"),
        max_steps=t.max_steps,
        num_train_epochs=t.num_train_epochs,
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        weight_decay=t.weight_decay,
        warmup_steps=t.warmup_steps if t.warmup_steps > 0 else t.warmup_ratio,
        lr_scheduler_type=t.lr_scheduler,
        max_grad_norm=t.max_grad_norm,
        bf16=bf16,
        activation_checkpointing=t.gradient_checkpointing,
        eval_strategy="steps" if t.eval_steps > 0 else "no",
        eval_steps=t.eval_steps if t.eval_steps > 0 else None,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        include_num_input_tokens_seen="all",
        seed=t.seed,
        data_seed=t.seed,
        dataloader_num_workers=t.dataloader_num_workers,
        train_sampling_strategy="sequential" if t.data_order == "walk" else "random",
        disable_tqdm=not t.progress_bar,
        report_to="none",
        # Without CUDA, accelerate only forms a process group (gloo) when told it is on CPU.
        use_cpu=not torch.cuda.is_available(),
    )


def _tokenizer(cfg: RunConfig, out: Path, targs: Any) -> Any:
    """The run's tokenizer: given, the pretrained model's own, or trained now on the run's data."""
    if cfg.tokenizer.name_or_path:
        return load_tokenizer(cfg.tokenizer.name_or_path)
    if not cfg.model.from_scratch:
        return load_tokenizer(cfg.model.name_or_path)
    tok_dir = out / "checkpoints" / "tokenizer"  # kept beside the checkpoints so --resume reuses it
    with targs.main_process_first(desc="train tokenizer"):
        if not (tok_dir / "tokenizer.json").is_file():
            from training.data.build import iter_texts
            from training.tokenizer import train_tokenizer

            log.info("training a %d-token BPE tokenizer on the run's data", cfg.tokenizer.vocab_size)
            texts = (r.text for r in iter_texts(cfg.data))
            train_tokenizer(texts, cfg.tokenizer.vocab_size, tok_dir, min_frequency=cfg.tokenizer.min_frequency)
    return load_tokenizer(str(tok_dir))


def _use_fim(cfg: RunConfig, tokenizer: Any) -> bool:
    if cfg.train.objective != "clm" or cfg.data.fim_rate <= 0:
        return False
    if has_fim_tokens(tokenizer):
        return True
    if cfg.lora.enabled:
        # The adapter is served with the base model's tokenizer: new tokens would not exist there.
        log.warning("base tokenizer has no FIM tokens and a LoRA adapter cannot add them: FIM off")
        return False
    add_fim_tokens(tokenizer)
    log.info("added FIM special tokens to the tokenizer (embeddings are resized)")
    return True


def _fit_block_size(cfg: RunConfig, model: Any) -> None:
    """Clamp data.block_size to the model's context, as HF run_clm does with model_max_length."""
    limit = context_length(model.config)
    if limit and cfg.data.block_size > limit:
        log.warning("data.block_size=%d exceeds the model's context: using %d", cfg.data.block_size, limit)
        cfg.data.block_size = int(limit)


def _resume_path(arg: str | None, out: Path) -> str | None:
    if arg is None:
        return None
    if arg != "auto":
        if not Path(arg).is_dir():
            raise ConfigError(f"--resume {arg}: checkpoint directory not found")
        return arg
    from transformers.trainer_utils import get_last_checkpoint

    ckpt_dir = out / "checkpoints"
    last = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
    if last is None:
        log.info("--resume auto: no checkpoint in %s, starting from scratch", ckpt_dir)
    return last


def run(cfg: RunConfig, *, resume: str | None = None) -> dict[str, Any]:
    """Train per `cfg`; returns the metrics written to OUT/metrics.json."""
    from transformers import DataCollatorForLanguageModeling, Trainer, default_data_collator, set_seed

    from training.data.build import build_lm_datasets

    out = Path(cfg.train.output_dir).resolve()
    targs = _training_args(cfg, out)
    is_main = targs.process_index == 0
    resume_from = _resume_path(resume, out)
    stage = stage_dir(out) if is_main else None

    tokenizer = _tokenizer(cfg, out, targs)
    fim = _use_fim(cfg, tokenizer)
    clm = cfg.train.objective == "clm"
    set_seed(cfg.train.seed)  # from-scratch init and LoRA matrices are drawn before the Trainer seeds
    model = build_model(cfg, tokenizer)
    _fit_block_size(cfg, model)
    with targs.main_process_first(desc="build datasets"):
        try:
            data = build_lm_datasets(
                cfg.data, tokenizer, fim=fim, output_dir=stage, accelerator_main_process=is_main, with_labels=clm
            )
        except ValueError as exc:  # e.g. nothing left after the filters: a config/data problem
            raise ConfigError(f"data ({cfg.data.source}): {exc}") from exc
    if len(data.train) == 0:
        raise ConfigError(f"no training blocks: the data gave fewer than data.block_size={cfg.data.block_size} tokens")

    if cfg.train.data_order == "walk":
        data.train = walk(data.train, cfg.train.seed, cfg.train.data_offset)

    if len(data.eval) == 0 and targs.eval_strategy != "no":
        log.warning("the eval split is empty (too little data for one block): no evaluation")
        targs.eval_strategy = "no"
    if cfg.lora.enabled:
        model = lora_mod.wrap(model, cfg.lora, gradient_checkpointing=cfg.train.gradient_checkpointing)
    collator = (
        default_data_collator  # packed full blocks: nothing to pad, labels are already input_ids
        if clm
        else DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=cfg.train.mlm_probability)
    )
    trainer = Trainer(
        model=model,
        args=targs,
        train_dataset=data.train,
        eval_dataset=data.eval if len(data.eval) else None,
        data_collator=collator,
        processing_class=tokenizer,
    )
    start_step = _StartStep()
    trainer.add_callback(start_step.callback())
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume_from)
    runtime = time.perf_counter() - start
    held_out = is_main and len(data.eval) > 0
    eval_loss = _held_out_loss(cfg, trainer.model, data.eval, collator) if held_out else None
    metrics = _metrics(trainer, result, eval_loss, runtime, cfg, len(data.train), len(data.eval))
    metrics["resumed_from_step"] = start_step.step
    if cfg.train.data_order == "walk":
        per_step = targs.per_device_train_batch_size * targs.gradient_accumulation_steps * targs.world_size
        metrics["data_offset"] = cfg.train.data_offset
        metrics["data_next_offset"] = (cfg.train.data_offset + metrics["steps"] * per_step) % len(data.train)
    this_run = metrics["tokens_seen"] - start_step.tokens
    metrics["tokens_per_second"] = round(this_run / runtime, 1) if runtime > 0 else None  # this run's tokens only
    if is_main and stage is not None:
        _write_outputs(cfg, trainer, tokenizer, metrics, stage)
        publish(stage, out)
        if cfg.lora.merge:
            _write_merged(cfg, trainer.model, tokenizer, out)
        log.info("model written to %s: %s", out, json.dumps(metrics))
    trainer.accelerator.wait_for_everyone()
    return metrics


def _held_out_loss(cfg: RunConfig, model: Any, blocks: Any, collator: Any) -> float | None:
    """Exact token-mean loss, the same function `training.evaluate perplexity` uses. The Trainer's
    own eval_loss (log_history) divides by the unshifted label count, i.e. reads (B-1)/B low."""
    import torch

    from training.perplexity import perplexity

    torch.manual_seed(cfg.train.seed)  # MLM masks are random: fixed seed, comparable numbers
    mlm_collator = None if cfg.train.objective == "clm" else collator
    loss, _ = perplexity(model, blocks, batch_size=cfg.train.per_device_eval_batch_size, collator=mlm_collator)
    return loss


def walk(train: Any, seed: int, offset: int) -> Any:
    """The training blocks in one seeded permutation, rotated to start at `offset` (mod its length).

    Read sequentially (train_sampling_strategy="sequential"), so a run that continues a shipped
    model from its `data_next_offset` trains on the blocks it has not seen yet; a resumed run skips
    the batches its checkpoint already took, in the same order.
    """
    import numpy as np

    n = len(train)
    order = np.random.default_rng(seed).permutation(n)
    return train.select(np.roll(order, -(offset % n)).tolist()) if n else train


class _StartStep:
    """Records the step training starts from (the checkpoint's step on --resume, else 0)."""

    def __init__(self) -> None:
        self.step = 0
        self.tokens = 0

    def callback(self) -> Any:
        from transformers import TrainerCallback

        outer = self

        class _Cb(TrainerCallback):
            def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                outer.step = int(state.global_step)
                outer.tokens = int(state.num_input_tokens_seen or 0)

        return _Cb()


def _metrics(
    trainer: Any, result: Any, eval_loss: float | None, runtime: float, cfg: RunConfig, n_train: int, n_eval: int
) -> dict[str, Any]:
    state = trainer.state
    tokens = int(state.num_input_tokens_seen or 0)
    train_logs = [h["loss"] for h in state.log_history if "loss" in h]
    return {
        "train_loss": float(result.training_loss),  # mean over the optimizer steps of this run
        "final_train_loss": float(train_logs[-1]) if train_logs else None,  # last logged value
        "eval_loss": eval_loss,  # None when the data left no eval split
        "perplexity": None if eval_loss is None else math.exp(min(eval_loss, 50.0)),  # capped: JSON has no inf
        "tokens_seen": tokens,
        "steps": int(state.global_step),
        "epochs": float(state.epoch or 0.0),
        "runtime_s": round(runtime, 3),
        "train_blocks": n_train,
        "eval_blocks": n_eval,
        "block_size": cfg.data.block_size,
        "world_size": trainer.args.world_size,
    }


def _write_outputs(cfg: RunConfig, trainer: Any, tokenizer: Any, metrics: dict[str, Any], stage: Path) -> None:
    model = trainer.model
    if cfg.lora.enabled:
        lora_mod.save_adapter(model, stage)
    else:
        kwargs: dict[str, Any] = {"max_shard_size": cfg.train.max_shard_size} if cfg.train.max_shard_size else {}
        model.save_pretrained(stage, safe_serialization=True, **kwargs)
        tokenizer.save_pretrained(stage)
    write_records(cfg, stage, metrics, trainer.state.log_history)


def _write_merged(cfg: RunConfig, model: Any, tokenizer: Any, out: Path) -> None:
    merged_stage = out / ".tmp-merged"
    shutil.rmtree(merged_stage, ignore_errors=True)
    lora_mod.save_merged(model, tokenizer, merged_stage, cfg.train.max_shard_size)
    target = out / "merged"
    shutil.rmtree(target, ignore_errors=True)
    merged_stage.rename(target)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    if args.list_recipes:
        for name in list_recipes():
            cfg = load_recipe(name)
            desc = _description(cfg.recipe_path)
            print(f"{name:22s} {desc}")
        return 0
    from server.errors import HubUnavailableError
    from training.data.records import DataError

    try:
        cfg = resolve_config(args)
        run(cfg, resume=args.resume)
    except (ConfigError, HubUnavailableError, DataError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _description(recipe_path: str) -> str:
    import tomllib

    return str(tomllib.loads(Path(recipe_path).read_text(encoding="utf-8")).get("description", ""))


if __name__ == "__main__":
    sys.exit(main())
