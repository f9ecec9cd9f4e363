"""Training throughput: the seed notebook's recipe vs ours, same model, same documents, one run.

    python benchmarks/train_throughput.py [--data-dir DIR] [--max-files N] [--block-size 512]

seed: HF Trainer, batch 1, each document tokenized on its own with truncation and
      `padding="max_length"` (no packing), labels with pads masked: most of each row is padding.
ours: the same documents through `training.data` (EOS-joined, packed into full blocks, no
      padding), batch 8, `default_data_collator`, as `training.finetune` runs them.

Both count *useful* tokens with the Trainer's `include_num_input_tokens_seen="non_padding"` over
the steps after `--warmup-steps` untimed ones (first steps pay for allocator and kernel set-up,
oneDNN's bf16 kernels most of all). Prints tokens/s for both and the ratio (target >= 5x).
`--ours-bf16` adds a third run: ours with bf16 autocast (`train.bf16=true`), which pays off on a
CPU with native bf16 (AVX512-BF16/AMX) or a GPU; the seed notebook trains in fp32.
Model: a GPT-2 of `--n-layer`/`--n-embd`/`--n-head` with dropout `--dropout` (default 0.0, as the
`scratch-js` recipe trains; GPT-2's own 0.1 takes attention off the fused SDPA kernel, which
costs batch 8 four times what it costs batch 1 on a CPU, so it is worth measuring both).
Data: a directory of npm package folders (default: the repo's node_modules, only the
permissively licensed, hand-written files that `training.data` keeps).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _documents(data_dir: Path, max_files: int, block_size: int) -> tuple[Any, list[str]]:
    from training.data.build import iter_texts
    from training.data.config import DataConfig

    cfg = DataConfig(source="npm", dir=str(data_dir), max_files=max_files, block_size=block_size, fim_rate=0.0)
    texts = [r.text for r in iter_texts(cfg)]
    if not texts:
        raise SystemExit(f"no usable JavaScript under {data_dir}")
    return cfg, texts


def _model(tokenizer: Any, args: argparse.Namespace) -> Any:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=args.block_size, n_layer=args.n_layer, n_embd=args.n_embd,
        n_head=args.n_head, bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        resid_pdrop=args.dropout, embd_pdrop=args.dropout, attn_pdrop=args.dropout,
    )
    return GPT2LMHeadModel(config)


def _train(
    model: Any, tokenizer: Any, dataset: Any, collator: Any, batch: int, steps: int, out: Path,
    *, warmup: int, bf16: bool,
) -> dict[str, float]:
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    class Clock(TrainerCallback):
        """Time and tokens from the end of the last untimed step to the end of the last step."""

        start = end = 0.0
        tokens0 = tokens1 = 0

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            now, seen = time.perf_counter(), int(state.num_input_tokens_seen)
            if state.global_step == warmup:
                self.start, self.tokens0 = now, seen
            self.end, self.tokens1 = now, seen

    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=batch, max_steps=warmup + steps, learning_rate=5e-4,
        lr_scheduler_type="cosine", warmup_steps=0.05, logging_steps=max(steps // 4, 1), save_strategy="no",
        report_to="none", disable_tqdm=True, include_num_input_tokens_seen="non_padding",
        use_cpu=not torch.cuda.is_available(), bf16=bf16, seed=0,
    )
    clock = Clock()
    # processing_class gives the Trainer the pad id, so "non_padding" counts only real tokens.
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator, processing_class=tokenizer,
                      callbacks=[clock])
    start = time.perf_counter()
    result = trainer.train()
    if warmup == 0:
        clock.start, clock.tokens0 = start, 0
    runtime = clock.end - clock.start
    tokens = clock.tokens1 - clock.tokens0
    return {"steps": steps, "warmup_steps": warmup, "batch": batch, "bf16": bf16, "useful_tokens": tokens,
            "runtime_s": round(runtime, 2), "useful_tokens_per_s": round(tokens / runtime, 1),
            "final_loss": round(float(result.training_loss), 4)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "node_modules", help="dir of npm package folders")
    parser.add_argument("--max-files", type=int, default=3000, help="cap on files read")
    parser.add_argument("--block-size", type=int, default=512, help="max_length (seed) = block size (ours)")
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=256)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--dropout", type=float, default=0.0, help="resid/embd/attn dropout (scratch-js: 0.0)")
    parser.add_argument("--seed-steps", type=int, default=64, help="optimizer steps for the seed recipe (batch 1)")
    parser.add_argument("--ours-steps", type=int, default=8, help="optimizer steps for ours (batch --batch)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--warmup-steps", type=int, default=2, help="untimed steps before each measurement")
    parser.add_argument("--ours-bf16", action="store_true", help="also time ours with bf16 autocast")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from datasets import Dataset
    from transformers import DataCollatorForLanguageModeling, default_data_collator

    from training.data.build import build_lm_datasets
    from training.tokenizer import train_tokenizer

    cfg, texts = _documents(args.data_dir, args.max_files, args.block_size)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = train_tokenizer(texts, args.vocab_size, Path(tmp) / "tok")
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

        # Seed notebook: one padded, truncated row per document, batch 1.
        seed_ds = Dataset.from_dict({"content": texts}).map(
            lambda b: tokenizer(b["content"], truncation=True, padding="max_length", max_length=args.block_size),
            batched=True, remove_columns=["content"],
        )
        seed_collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)  # labels: pads → -100
        pad_share = 1 - sum(map(sum, seed_ds["attention_mask"])) / (len(seed_ds) * args.block_size)

        # Ours: packed full blocks, no padding.
        cfg.eval_fraction = 0.0
        packed = build_lm_datasets(cfg, tokenizer, fim=False, output_dir=None).train

        import torch

        gpu_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()  # as train.bf16=auto
        warm = args.warmup_steps
        seed = _train(_model(tokenizer, args), tokenizer, seed_ds, seed_collator, 1, args.seed_steps,
                      Path(tmp) / "seed", warmup=warm, bf16=False)  # the notebook: fp32
        ours = _train(_model(tokenizer, args), tokenizer, packed, default_data_collator, args.batch, args.ours_steps,
                      Path(tmp) / "ours", warmup=warm, bf16=gpu_bf16)
        ours_bf16 = None
        if args.ours_bf16 and not gpu_bf16:
            ours_bf16 = _train(_model(tokenizer, args), tokenizer, packed, default_data_collator, args.batch,
                               args.ours_steps, Path(tmp) / "ours-bf16", warmup=warm, bf16=True)

    ratio = ours["useful_tokens_per_s"] / seed["useful_tokens_per_s"]
    result = {
        "documents": len(texts), "block_size": args.block_size, "seed_rows": len(seed_ds), "packed_blocks": len(packed),
        "seed_padding_share": round(pad_share, 3),
        "model": {"n_layer": args.n_layer, "n_embd": args.n_embd, "n_head": args.n_head, "vocab": len(tokenizer),
                  "dropout": args.dropout},
        "seed": seed, "ours": ours, "ratio": round(ratio, 2),
    }
    print(f"documents: {len(texts)}  block: {args.block_size}  seed rows that are padding: {pad_share:.0%}")
    print(f"seed (batch 1, padding=max_length): {seed['useful_tokens_per_s']:>10,.0f} useful tokens/s")
    print(f"ours (packed, batch {args.batch}{', bf16' if gpu_bf16 else ''}):          "
          f"{ours['useful_tokens_per_s']:>10,.0f} useful tokens/s")
    print(f"ratio: {ratio:.1f}x (target >= 5x)")
    if ours_bf16 is not None:
        ratio_bf16 = ours_bf16["useful_tokens_per_s"] / seed["useful_tokens_per_s"]
        result["ours_bf16"], result["ratio_bf16"] = ours_bf16, round(ratio_bf16, 2)
        print(f"ours (packed, batch {args.batch}, bf16 autocast): {ours_bf16['useful_tokens_per_s']:>10,.0f} useful tokens/s"
              f"  ratio: {ratio_bf16:.1f}x")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
