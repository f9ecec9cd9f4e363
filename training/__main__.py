"""`python -m training`: list the training subcommands."""

from __future__ import annotations

import sys

COMMANDS = [
    ("python -m training.finetune", "train or fine-tune a model from a recipe (--help, --list-recipes)"),
    ("python -m training.pretrain", "pretrain a causal LM on a packed token file for a wall-clock budget (GPU or CPU)"),
    ("python -m training.accelerator", "train on a remote accelerator: plan, device side, collect, finish, rehearse"),
    ("python -m training.data.tokens", "pack a corpus once into a memory-mapped token file; subset it; info"),
    ("python -m training.ship", "ship a model dir as the server's default: fp16, checked manifest, atomic"),
    ("python -m training.tokenizer", "train a byte-level BPE tokenizer with FIM tokens on a data source"),
    ("python -m training.evaluate perplexity", "perplexity of a model dir on a data source (recipe + --set)"),
    ("python -m training.evaluate lines", "line completions on JSONL {id,prefix,suffix[,target]} + EM / edit similarity"),
    ("python -m training.generate", "continue a prompt with a causal LM / LoRA adapter (greedy or --do-sample)"),
    ("python -m training.fill_mask", "top-K candidates with scores for each <mask> of a text (masked LM)"),
    ("python -m training.export_gguf", "a GPT-2 model dir as GGUF for llama.cpp (team server: codeparrot.backend openai)"),
    ("python -m training.data.npm fetch", "fetch npm packages (name@version list) for the npm source"),
]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = sys.stdout if not args or args[0] in ("-h", "--help", "help") else sys.stderr
    print("usage: python -m training.<command> ...\n\ncommands:", file=out)
    for cmd, what in COMMANDS:
        print(f"  {cmd:42s} {what}", file=out)
    print("\nrun any of them with --help for its options.", file=out)
    return 0 if out is sys.stdout else 2


if __name__ == "__main__":
    sys.exit(main())
