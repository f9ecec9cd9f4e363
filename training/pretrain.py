"""Pretrain a causal LM on a packed token file for a fixed wall-clock budget, on one device.

    python -m training.pretrain RECIPE --tokens corpus-data/tokens-v3 --minutes 6 \
        --out runs/gpu6 [--set model.n_layer=6 ...] [--compile] [--dry-run]

`training.finetune` (the HF Trainer, accelerate, LoRA, exact resume) stays the general entry
point. This loop is for the case the Trainer serves badly: a few minutes on a remote accelerator (or a
few hours of CPU) that must end with a finished model, whatever the throughput turns out to be.
So the learning-rate schedule runs on *time*, not steps: linear warmup over `train.warmup_ratio`
of the budget, then cosine decay to `--min-lr-ratio` of the peak, and training stops when the
budget is spent. With `train.max_steps > 0` the same schedule runs on steps instead (exactly
reproducible; the tests use it). A time-budget run is not bit-reproducible (the step at which
each learning rate applies depends on the machine). `--until UNIX_TIME` gives the budget as a
clock time instead: the loop trains for whatever remains once the data and the model are ready
(the remote machine's command limit minus its set-up, `training.kit`).

A run continues an earlier one when the recipe loads its weights (`model.from_scratch=false`,
`model.name_or_path=DIR`): a new stage, with its own warmup and cosine, whose step and token
counts and loss curve carry on from DIR's `metrics.json` and `log_history.json`, and whose block
order is drawn afresh (the seed moves with the steps already taken).

The data are `training.data.build.build_lm_blocks` of the token file: the same filters, package
split, FIM and manifest as `training.finetune` with `data.tokens`. Every training block lives on
the device for the whole run (a few hundred MB of int32 for 10^8 tokens), so no data loader runs
between steps. Each epoch reads the blocks in a new seeded permutation. bf16 autocast per `train.bf16`
(`training.modeling.use_bf16`, the rule finetune's Trainer gets too): on a CUDA device that
supports it by default, float32 on a CPU unless asked. AdamW (fused on CUDA) with weight decay
on matrices only, gradient clipping at `train.max_grad_norm`.

OUT gets what `training.finetune` writes and `training.ship` reads: the model (safetensors,
`--save-dtype`, sharded by `train.max_shard_size`), the tokenizer, `training_config.json`,
`metrics.json`, `log_history.json`, `loss.png`, the data manifest. Checkpoints are published into
OUT every `--save-minutes` through `training.publish` (never half-written). `--dry-run` builds the
data and writes the manifest only: check a run (and its manifest) before spending accelerator time on it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.config import ConfigError, RunConfig, apply_overrides, load_recipe, validate
from training.publish import publish, stage_dir
from training.run_records import prior_run, write_records

log = logging.getLogger("training.pretrain")

SAVE_DTYPES = ("float32", "float16", "bfloat16")


def lr_factor(progress: float, warmup: float, min_ratio: float) -> float:
    """Multiplier of the peak LR at `progress` in [0, 1] of the budget: linear warmup to 1 over
    `warmup`, then cosine decay to `min_ratio` at 1 (and `min_ratio` past it)."""
    progress = min(max(progress, 0.0), 1.0)
    if warmup > 0 and progress < warmup:
        return progress / warmup
    span = max(1.0 - warmup, 1e-12)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min((progress - warmup) / span, 1.0)))
    return min_ratio + (1.0 - min_ratio) * cosine


@dataclass
class Budget:
    """Where a run is in its budget: steps (`max_steps` > 0) or seconds of training."""

    max_steps: int
    seconds: float
    start: float = field(default_factory=lambda: time.perf_counter())  # the module clock at creation

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def progress(self, step: int) -> float:
        if self.max_steps > 0:
            return step / self.max_steps
        return self.elapsed() / self.seconds if self.seconds > 0 else 1.0

    def done(self, step: int) -> bool:
        return self.progress(step) >= 1.0


def param_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices (linear and embedding weights) only, not on biases and norms."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def evaluate(model: Any, blocks: Any, batch_size: int, bf16: bool, max_blocks: int = 0) -> float | None:
    """Token-mean cross-entropy (nats/token) over the first `max_blocks` blocks (0 = all)."""
    import torch

    n = len(blocks) if max_blocks <= 0 else min(len(blocks), max_blocks)
    if n == 0:
        return None
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad(), torch.autocast(device_type=blocks.device.type, dtype=torch.bfloat16, enabled=bf16):
        for i in range(0, n, batch_size):
            x = blocks[i : i + batch_size].long()
            logits = model(input_ids=x).logits.float()
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum"
            )
            total += float(loss)
            count += x[:, 1:].numel()
    model.train(was_training)
    return total / count


def _write_run(
    cfg: RunConfig, model: Any, tokenizer: Any, out: Path, history: list[dict[str, Any]],
    metrics: dict[str, Any], save_dtype: str, manifest_dir: Path | None,
) -> None:
    """Publish the model and its records into OUT in one step (see training.publish)."""
    import copy
    import shutil

    import torch

    stage = stage_dir(out)
    kwargs: dict[str, Any] = {"max_shard_size": cfg.train.max_shard_size} if cfg.train.max_shard_size else {}
    # A CPU copy in the saved dtype (deepcopy keeps the tied embeddings tied, so they are stored once,
    # and the config records the dtype); the training weights stay float32 where they are.
    copy.deepcopy(model).to(device="cpu", dtype=getattr(torch, save_dtype)).save_pretrained(
        stage, safe_serialization=True, **kwargs)
    tokenizer.save_pretrained(stage)
    write_records(cfg, stage, metrics, history)
    if manifest_dir is not None:  # the same manifest at every checkpoint: linked, not copied (~15 MB)
        for f in manifest_dir.iterdir():
            if f.name.startswith("data_manifest"):
                try:
                    os.link(f, stage / f.name)
                except OSError:  # a filesystem without hard links
                    shutil.copyfile(f, stage / f.name)
    publish(stage, out)


def run(cfg: RunConfig, *, minutes: float, save_minutes: float = 0.0, eval_minutes: float = 0.0,
        eval_blocks: int = 256, final_eval_blocks: int = 0, min_lr_ratio: float = 0.1, save_dtype: str = "float32",
        compile_model: bool = False, dry_run: bool = False, device_name: str = "auto",
        until: float | None = None) -> dict[str, Any]:
    """Train per `cfg` for `minutes` (or `train.max_steps`, or until the clock reads `until`);
    returns the metrics written to OUT."""
    import torch

    from training.data.build import build_lm_blocks
    from training.modeling import has_fim_tokens, load_tokenizer

    _check(cfg, minutes, until, dry_run)
    out = Path(cfg.train.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device_name == "auto" else device_name)
    tokenizer = load_tokenizer(cfg.tokenizer.name_or_path)
    fim = cfg.data.fim_rate > 0 and has_fim_tokens(tokenizer)
    if cfg.data.fim_rate > 0 and not fim:
        raise ConfigError("data.fim_rate > 0 but the tokenizer has no FIM tokens (the token file cannot grow them)")
    manifest_dir = out / ".manifest"
    manifest_dir.mkdir(exist_ok=True)
    data = build_lm_blocks(cfg.data, tokenizer, fim=fim, output_dir=manifest_dir)
    log.info("data: %d train blocks, %d eval blocks of %d tokens", len(data.train), len(data.eval),
             cfg.data.block_size)
    if dry_run:
        for f in manifest_dir.iterdir():
            f.replace(out / f.name)
        return {"train_blocks": len(data.train), "eval_blocks": len(data.eval), "dry_run": True}
    if len(data.train) == 0:
        raise ConfigError(f"no training blocks of data.block_size={cfg.data.block_size}")

    loop = _Loop(cfg, tokenizer, data, device, prior_run(cfg), compile_model=compile_model)
    if until is not None:  # what remains of the clock once the data and the model are ready
        minutes = max(until - time.time(), 0.0) / 60.0
        log.info("training for the %.2f minutes left before the deadline", minutes)
    loop.budget = Budget(max_steps=cfg.train.max_steps, seconds=minutes * 60.0)
    loop.summary = {"budget_minutes": minutes if cfg.train.max_steps <= 0 else None, "min_lr_ratio": min_lr_ratio}
    last_save = last_eval = time.perf_counter()
    while not loop.budget.done(loop.step):
        loop.train_step(min_lr_ratio)
        now = time.perf_counter()
        if eval_minutes > 0 and now - last_eval >= eval_minutes * 60 and len(loop.held_out):
            loop.history.append({"step": loop.step0 + loop.step, "eval_loss": loop.evaluate(eval_blocks)})
            log.info("step %d eval loss %.4f", loop.step, loop.history[-1]["eval_loss"])
            last_eval = time.perf_counter()
        if save_minutes > 0 and now - last_save >= save_minutes * 60:
            snapshot = loop.snapshot(eval_blocks, final=False)
            _write_run(cfg, loop.model, tokenizer, out, loop.history, snapshot, save_dtype, manifest_dir)
            last_save = time.perf_counter()
            log.info("checkpoint published to %s at step %d", out, loop.step)

    metrics = loop.snapshot(final_eval_blocks, final=True)
    if metrics["eval_loss"] is not None:
        loop.history.append({"step": loop.step0 + loop.step, "eval_loss": metrics["eval_loss"]})
    _write_run(cfg, loop.model, tokenizer, out, loop.history, metrics, save_dtype, manifest_dir)
    log.info("model written to %s: %s", out, json.dumps(metrics))
    return metrics


def _check(cfg: RunConfig, minutes: float, until: float | None, dry_run: bool) -> None:
    """What training.pretrain needs of a config, said before anything is loaded."""
    if not cfg.data.tokens:
        raise ConfigError("training.pretrain reads a packed token file: pass --tokens STEM (data.tokens)")
    if not cfg.tokenizer.name_or_path:
        raise ConfigError("training.pretrain needs the token file's tokenizer: --set tokenizer.name_or_path=DIR")
    if cfg.train.objective != "clm":
        raise ConfigError("training.pretrain trains causal LMs only (train.objective=clm)")
    if cfg.train.lr_scheduler != "cosine":
        raise ConfigError("training.pretrain's schedule is warmup + cosine (train.lr_scheduler=cosine)")
    if cfg.train.max_steps <= 0 and minutes <= 0 and until is None and not dry_run:
        raise ConfigError("give a budget: --minutes M, --until UNIX_TIME or --set train.max_steps=N")


class _Loop:
    """The model, optimizer and data of one run, and its counters: one optimizer step at a time
    (`train_step`), and what the run has done so far (`snapshot`)."""

    def __init__(self, cfg: RunConfig, tokenizer: Any, data: Any, device: Any, prior: dict[str, Any], *,
                 compile_model: bool) -> None:
        import torch
        from transformers import set_seed

        from training.modeling import build_model, context_length, use_bf16

        t = cfg.train
        set_seed(t.seed)
        model = build_model(cfg, tokenizer)
        limit = context_length(model.config)
        if limit and cfg.data.block_size > limit:
            raise ConfigError(f"data.block_size={cfg.data.block_size} exceeds the model's context ({limit})")
        model.config.use_cache = False
        model.to(device).train()
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.cfg, self.model, self.device = cfg, model, device
        self.budget = Budget(max_steps=t.max_steps, seconds=0.0)  # the run sets it once the model is ready
        self.bf16 = use_bf16(t.bf16, device.type)
        self.train = torch.from_numpy(data.train).to(device)
        self.held_out = torch.from_numpy(data.eval).to(device)
        self.opt = torch.optim.AdamW(param_groups(model, t.weight_decay), lr=t.learning_rate, betas=(0.9, 0.95),
                                     eps=1e-8, **({"fused": True} if device.type == "cuda" else {}))
        self.forward = torch.compile(model) if compile_model else model
        self.batch, self.accum = t.per_device_train_batch_size, max(1, t.gradient_accumulation_steps)
        self.steps_per_epoch = max(1, len(self.train) // (self.batch * self.accum))
        self.n_params = sum(p.numel() for p in model.parameters())
        log.info("model: %.1f M parameters on %s (%s), %d blocks (%d tokens) per step", self.n_params / 1e6, device,
                 "bf16 autocast" if self.bf16 else "float32", self.batch * self.accum,
                 self.batch * self.accum * cfg.data.block_size)
        self.history: list[dict[str, Any]] = list(prior["history"])
        self.step0, self.tokens0 = int(prior["steps"]), int(prior["tokens_seen"])
        self.gen = torch.Generator().manual_seed(t.seed + self.step0)  # a continued run draws a new order
        self.order = torch.randperm(len(self.train), generator=self.gen)
        self.step = self.epoch_pos = self.tokens = self.running_n = 0
        self.running = torch.zeros((), device=device)
        self.summary: dict[str, Any] = {}  # fixed facts of the run added to every snapshot
        self.continued_from = prior["source"]

    def train_step(self, min_lr_ratio: float) -> None:
        """One optimizer step over `accum` micro-batches, on the schedule's learning rate."""
        import torch

        t = self.cfg.train
        factor = lr_factor(self.budget.progress(self.step), t.warmup_ratio, min_lr_ratio)
        for group in self.opt.param_groups:
            group["lr"] = t.learning_rate * factor
        for _ in range(self.accum):
            if self.epoch_pos + self.batch > len(self.order):
                self.order, self.epoch_pos = torch.randperm(len(self.train), generator=self.gen), 0
            idx = self.order[self.epoch_pos : self.epoch_pos + self.batch].to(self.device)
            self.epoch_pos += self.batch
            x = self.train[idx].long()
            with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                loss = self.forward(input_ids=x, labels=x).loss
            (loss / self.accum).backward()
            self.running = self.running + loss.detach()  # stays on the device: no sync until it is logged
            self.running_n += 1
            self.tokens += x.numel()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.max_grad_norm)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.step += 1
        if self.step % t.logging_steps == 0 or self.step == 1:
            self._log(t.learning_rate * factor)

    def _log(self, lr: float) -> None:
        import torch

        loss_now = float(self.running) / self.running_n  # mean over the micro-batches since the last log
        self.running, self.running_n = torch.zeros((), device=self.device), 0
        elapsed = self.budget.elapsed()
        tokens = self.tokens
        self.history.append({"step": self.step0 + self.step, "loss": round(loss_now, 4), "learning_rate": lr,
                             "tokens": self.tokens0 + tokens, "elapsed_s": round(elapsed, 1),
                             "tokens_per_second": round(tokens / elapsed, 1) if elapsed > 0 else None})
        log.info("step %d loss %.4f lr %.2e %.0f tokens/s", self.step, loss_now, lr, tokens / max(elapsed, 1e-9))
        if not math.isfinite(loss_now):
            raise RuntimeError(f"the loss is {loss_now} at step {self.step}: lower train.learning_rate")

    def evaluate(self, max_blocks: int) -> float | None:
        return evaluate(self.model, self.held_out, self.batch, self.bf16, max_blocks)

    def snapshot(self, eval_blocks: int, *, final: bool) -> dict[str, Any]:
        """The run's metrics now (a held-out loss over `eval_blocks`, 0 for all)."""
        import torch

        eval_loss = self.evaluate(eval_blocks)
        elapsed = self.budget.elapsed()
        train_losses = [h["loss"] for h in self.history if "loss" in h]
        held = len(self.held_out)
        return {
            "final_train_loss": train_losses[-1] if train_losses else None,
            "eval_loss": eval_loss,
            "eval_blocks": held if eval_blocks <= 0 else min(held, eval_blocks),
            "perplexity": None if eval_loss is None else math.exp(min(eval_loss, 50.0)),
            "tokens_seen": self.tokens0 + self.tokens,
            "steps": self.step0 + self.step,
            "run_tokens": self.tokens,
            "run_steps": self.step,
            "epochs": round(self.step / self.steps_per_epoch, 3),
            "runtime_s": round(elapsed, 1),
            "tokens_per_second": round(self.tokens / elapsed, 1) if elapsed > 0 else None,
            "train_blocks": len(self.train),
            "block_size": self.cfg.data.block_size,
            "parameters": self.n_params,
            "device": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
            "precision": "bf16 autocast" if self.bf16 else "float32",
            **self.summary,
            "final": final,
            **({"continued_from": self.continued_from} if self.continued_from else {}),
        }


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m training.pretrain", description=__doc__.splitlines()[0])
    ap.add_argument("recipe", help="recipe name (training/recipes) or path to a TOML")
    ap.add_argument("--tokens", required=True, help="packed token file stem (data.tokens)")
    ap.add_argument("--out", default=None, help="output dir (train.output_dir)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key")
    ap.add_argument("--minutes", type=float, default=0.0, help="wall-clock budget of the training loop")
    ap.add_argument("--until", type=float, default=None, metavar="UNIX_TIME",
                    help="the budget as a clock time: train until then, whatever the set-up took")
    ap.add_argument("--save-minutes", type=float, default=0.0, help="publish a checkpoint into OUT this often")
    ap.add_argument("--eval-minutes", type=float, default=0.0, help="log a held-out loss this often")
    ap.add_argument("--eval-blocks", type=int, default=256, help="held-out blocks for the periodic eval")
    ap.add_argument("--final-eval-blocks", type=int, default=0, help="held-out blocks for the final eval (0 = all)")
    ap.add_argument("--min-lr-ratio", type=float, default=0.1, help="the cosine ends at this share of the peak LR")
    ap.add_argument("--save-dtype", choices=SAVE_DTYPES, default="float32", help="dtype of the saved weights")
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, …")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (pays on long GPU runs)")
    ap.add_argument("--dry-run", action="store_true", help="build the data and write the manifest; no training")
    return ap


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    from training.data.records import DataError

    try:
        cfg = load_recipe(args.recipe)
        cfg = apply_overrides(cfg, [f"data.tokens={args.tokens}", *args.set]
                              + ([f"train.output_dir={args.out}"] if args.out else []))
        validate(cfg)
        run(cfg, minutes=args.minutes, save_minutes=args.save_minutes, eval_minutes=args.eval_minutes,
            eval_blocks=args.eval_blocks, final_eval_blocks=args.final_eval_blocks, min_lr_ratio=args.min_lr_ratio, save_dtype=args.save_dtype,
            compile_model=args.compile, dry_run=args.dry_run, device_name=args.device, until=args.until)
    except (ConfigError, DataError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
