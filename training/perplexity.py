"""Perplexity of a model on packed, equal-length blocks: the exact token-mean loss, and the same in
nats per character (tokenizer-independent) (`training.evaluate perplexity`, `training.finetune`)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from training.config import RunConfig, apply_overrides, from_dict, load_recipe


def data_config(args: argparse.Namespace) -> RunConfig:
    """--recipe, else the model dir's training_config.json, else defaults; then --set."""
    if args.recipe:
        cfg = load_recipe(args.recipe)
    elif (Path(args.model) / "training_config.json").is_file():
        cfg = from_dict(json.loads((Path(args.model) / "training_config.json").read_text()))
    else:
        cfg = RunConfig()
    return apply_overrides(cfg, args.overrides)


def perplexity(model: Any, dataset: Any, *, batch_size: int, collator: Any = None) -> tuple[float, int]:
    """(mean cross-entropy per predicted token, blocks) over packed, equal-length blocks."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            rows = dataset[start : start + batch_size]
            ids = torch.tensor(rows["input_ids"])
            if collator is None:
                labels = ids
            else:
                batch = collator([{"input_ids": r} for r in rows["input_ids"]])
                ids, labels = batch["input_ids"], batch["labels"]
            loss = model(input_ids=ids.to(model.device), labels=labels.to(model.device)).loss
            n = int((labels[:, 1:] != -100).sum()) if collator is None else int((labels != -100).sum())
            total += float(loss) * n
            count += n
    return (total / count if count else float("nan")), len(dataset)


def per_char(loss: float, dataset: Any, tokenizer: Any) -> dict[str, Any]:
    """The causal loss in nats per character of the predicted text, which compares across tokenizers.

    Every block predicts its tokens 1..n-1 (`perplexity`'s count); their text is those tokens
    decoded without the special ones (EOS, FIM markers), so a tokenizer that packs more characters
    into a token is credited for it. Bits per character = nats / ln 2.
    """
    n_tokens = 0
    chars = 0
    for row in dataset["input_ids"]:
        n_tokens += len(row) - 1
        chars += len(tokenizer.decode(row[1:], skip_special_tokens=True))
    if not chars:
        return {}
    nats = loss * n_tokens / chars
    return {"chars": chars, "chars_per_token": chars / n_tokens, "nats_per_char": nats,
            "bits_per_char": nats / math.log(2)}
