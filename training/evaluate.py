"""Offline evaluation of a model dir.

    python -m training.evaluate perplexity --model DIR [--recipe NAME] [--set data.KEY=VALUE ...]
    python -m training.evaluate lines --model DIR --input X.jsonl --output preds.jsonl [--limit N]

`perplexity`: exp(mean token cross-entropy) on packed blocks built by `training.data` from the
same data flags as `training.finetune` (the data config defaults to the model's own
training_config.json, so its held-out eval split is what gets measured).

`lines`: line completion through `server.completion.Completer`, the exact prompt / generation /
post-processing code the editor gets (multiline "never"). Rows `{"id", "prefix", "suffix"}` →
`{"id", "prediction"}`; rows that carry `"target"` are scored (exact match and edit similarity
of the stripped strings) against the model and a trivial baseline (the previous non-empty line).
A row whose completion fails is predicted as "" with a warning and listed in `failed_rows`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from training.config import ConfigError
from training.line_eval import copy_baselines, mix_params, predict_lines, read_jsonl
from training.metrics import score
from training.perplexity import data_config, per_char, perplexity

log = logging.getLogger("training.evaluate")


def cmd_lines(args: argparse.Namespace) -> int:
    from server.settings import Settings

    settings = replace(
        Settings(),
        model=str(args.model),
        adapter=str(args.adapter or ""),
        max_new_tokens=args.max_new_tokens,
        **({"max_prompt_tokens": args.max_prompt_tokens} if args.max_prompt_tokens else {}),
        multiline="never",
        device=args.device,
        quantize=args.quantize,
        engine=args.engine,
        workspace_index="off" if args.workspace == "off" else "on",
        fim=args.fim,
    )
    rows = read_jsonl(Path(args.input), args.limit + args.skip if args.limit else 0)[args.skip :]
    mix = mix_params(args.mix)
    if args.workspace == "repo" and not args.repos:
        raise ConfigError("--workspace repo needs --repos DIR (the unpacked packages of the rows)")
    if args.workspace == "repo":  # group rows by package: one index build per package
        rows.sort(key=lambda r: (str(r.get("package", "")), str(r["id"])))
    predictions: dict[str, str] = {}
    failed: list[str] = []
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        predictions_iter = predict_lines(
            rows,
            settings,
            token_healing=not args.no_token_healing,
            repos=Path(args.repos) if args.workspace == "repo" else None,
            snippet_tokens=args.snippet_tokens,
            copy_verdicts=not args.no_copy_verdicts,
            mix=mix,
            failed=failed,
        )
        for i, (row_id, prediction) in enumerate(predictions_iter, 1):
            predictions[row_id] = prediction
            fh.write(json.dumps({"id": row_id, "prediction": prediction}) + "\n")
            if i % 50 == 0:
                log.info("%d/%d rows", i, len(rows))
    repos = Path(args.repos) if args.workspace == "repo" else None
    copies, available = copy_baselines(rows, repos)
    summary = {"model_dir": str(args.model), "adapter": str(args.adapter or ""), "rows": len(rows),
               "token_healing": not args.no_token_healing, "workspace": args.workspace, "fim": args.fim,
               "engine": args.engine,
               "snippet_tokens": args.snippet_tokens, "copy_verdicts": not args.no_copy_verdicts,
               "max_prompt_tokens": settings.max_prompt_tokens,
               "skip": args.skip, "mix": asdict(mix), "failed_rows": failed,
               **score(rows, predictions, copies, available)}
    _emit(summary, args.summary)
    return 0


def cmd_perplexity(args: argparse.Namespace) -> int:
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, DataCollatorForLanguageModeling

    from training.data.build import build_lm_datasets
    from training.modeling import load_tokenizer

    cfg = data_config(args)
    if not Path(args.model).is_dir():
        raise ConfigError(f"--model {args.model}: directory not found")
    tokenizer = load_tokenizer(str(args.model))
    mlm = cfg.train.objective == "mlm"
    auto = AutoModelForMaskedLM if mlm else AutoModelForCausalLM
    model: Any = auto.from_pretrained(args.model, use_safetensors=True, trust_remote_code=False, dtype=torch.float32)
    if args.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, args.adapter)
    model.to("cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu")
    data = build_lm_datasets(cfg.data, tokenizer, fim=args.fim, output_dir=None, with_labels=not mlm)
    if args.split == "all":
        from datasets import concatenate_datasets

        dataset = concatenate_datasets([data.train, data.eval])
    else:
        dataset = data.eval if args.split == "eval" else data.train
    if len(dataset) == 0:
        raise ConfigError(f"the {args.split} split has no full block of {cfg.data.block_size} tokens")
    torch.manual_seed(cfg.train.seed)  # MLM masking is random: fixed seed, comparable numbers
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=cfg.train.mlm_probability) if mlm else None
    loss, blocks = perplexity(model, dataset, batch_size=args.batch_size, collator=collator)
    summary = {
        "model_dir": str(args.model),
        "split": args.split,
        "blocks": blocks,
        "tokens": blocks * cfg.data.block_size,
        "loss": loss,
        "perplexity": math.exp(min(loss, 50.0)),
        **({} if mlm else per_char(loss, dataset, tokenizer)),
        "data": {"source": cfg.data.source, "files": cfg.data.files, "dir": cfg.data.dir, "fim": args.fim},
    }
    _emit(summary, args.summary)
    return 0


# ---------------------------------------------------------------- CLI

def _emit(summary: dict[str, Any], path: str | None) -> None:
    text = json.dumps(summary, indent=2)
    print(text)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n", encoding="utf-8")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    ppl = sub.add_parser("perplexity", help="perplexity on packed blocks of a data source")
    lines = sub.add_parser("lines", help="line completion on JSONL rows (+ EM / edit similarity)")
    for p in (ppl, lines):
        p.add_argument("--model", required=True, help="model dir (as written by training.finetune)")
        p.add_argument("--adapter", default="", help="optional peft LoRA adapter dir on top of --model")
        p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
        p.add_argument("--summary", help="also write the JSON summary to this file")
    ppl.add_argument("--recipe", help="take the data config from this recipe (default: the model's training_config.json)")
    ppl.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config field, e.g. data.dir=PKGS (repeatable)")
    ppl.add_argument("--split", choices=("eval", "train", "all"), default="eval",
                     help="which split of that data (eval = held-out packages; all = everything)")
    ppl.add_argument("--fim", action="store_true", help="apply the FIM transform (default: plain left-to-right text)")
    ppl.add_argument("--batch-size", type=int, default=8)
    lines.add_argument("--input", required=True, help="JSONL rows {id, prefix, suffix[, target]}")
    lines.add_argument("--output", required=True, help="JSONL predictions {id, prediction}")
    lines.add_argument("--limit", type=int, default=0, help="only the first N rows (0 = all)")
    lines.add_argument("--skip", type=int, default=0,
                       help="leave out the first N rows (e.g. tune on rows 200-500, report on the first 200)")
    lines.add_argument("--mix", action="append", default=[], metavar="KEY=VALUE",
                       help="a field of the ∞-gram mixing (server.retrieval.mixing.MixParams: min_length, tau, "
                            "max_weight, own_file_slack, draft_min_length), repeatable")
    lines.add_argument("--max-new-tokens", type=int, default=48, help="generation budget per line")
    lines.add_argument("--max-prompt-tokens", type=int, default=0,
                       help="prompt budget (the server's codeparrot.maxPromptTokens; 0 = its default)")
    lines.add_argument("--quantize", choices=("auto", "none", "int8", "bf16"), default="auto", help="as the server's setting")
    lines.add_argument("--engine", choices=("auto", "torch", "llama"), default="auto",
                       help="as the server's setting (auto: llama.cpp when llama-cpp-python is installed)")
    lines.add_argument("--no-token-healing", action="store_true",
                       help="prompt with the prefix's last token instead of healing it (to measure what healing buys)")
    lines.add_argument("--workspace", choices=("off", "file", "repo"), default="file",
                       help="off: the model alone; file: + copying from the row's own file (workspaceIndex on, "
                       "the server's default); repo: + the row's package as the workspace (needs --repos)")
    lines.add_argument("--no-copy-verdicts", action="store_true",
                       help="never take a sure character-level copy instead of generating (to measure what it buys)")
    lines.add_argument("--snippet-tokens", type=int, default=0,
                       help="tokens of the most similar code from another workspace file put before the prompt "
                            "(RepoCoder style; 0 = none)")
    lines.add_argument("--repos", help="folder of the rows' unpacked packages (name@version each)")
    lines.add_argument("--fim", choices=("auto", "off"), default="off",
                       help="fill-in-the-middle prompts when the model has FIM tokens (the server's codeparrot.fim)")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    from server.errors import CodeparrotError
    from training.data.records import DataError

    try:
        return cmd_perplexity(args) if args.command == "perplexity" else cmd_lines(args)
    except (ConfigError, DataError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CodeparrotError as exc:
        print(f"error: {exc.user_message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
