"""`python -m training.fill_mask --model DIR "text with <mask>" [--top-k K]`: a masked LM's guesses.

For the eli5-mlm recipe's output (or any masked-LM dir / hub id): transformers'
`pipeline("fill-mask")` scores the vocabulary at every mask and we print the top K candidates
with their probabilities, one per line. The text may use the tokenizer's own mask token or a
literal `<mask>`. Loading and errors are shared with `training.generate` (one stderr line, exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from training.generate import (
    DEVICES,
    InferenceError,
    context_length,
    load,
    pick,
    quiet_transformers,
    require_kind,
    resolve,
    run,
)

LITERAL_MASK = "<mask>"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.fill_mask", description=__doc__.split("\n\n")[0])
    p.add_argument("text", help=f"text with one or more masks ({LITERAL_MASK} or the tokenizer's mask token)")
    p.add_argument("--model", required=True, help="masked-LM model dir or hub id")
    p.add_argument("--top-k", type=int, default=5, help="candidates per mask (default 5)")
    p.add_argument("--device", choices=DEVICES, default="auto", help="auto = cuda when present, else cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of plain text")
    p.add_argument("-v", "--verbose", action="store_true", help="show transformers' warnings")
    return p


def with_mask_token(text: str, mask: str) -> str:
    """The text with each literal `<mask>` spelled as the tokenizer's mask token; at least one mask."""
    text = text.replace(LITERAL_MASK, mask)
    if mask not in text:
        spelled = LITERAL_MASK if mask == LITERAL_MASK else f"{LITERAL_MASK} or {mask}"
        raise InferenceError(f"the text has no mask: put {spelled} where a token should be predicted.")
    return text


def candidates(raw: Any) -> list[list[dict[str, Any]]]:
    """The pipeline returns a flat list for one mask and a list per mask for several: always the latter."""
    per_mask = raw if raw and isinstance(raw[0], list) else [raw]
    return [[{"token": c["token_str"], "token_id": int(c["token"]), "score": float(c["score"])} for c in mask]
            for mask in per_mask]


def _fill_mask(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.top_k < 1:
        raise InferenceError("--top-k must be at least 1.")
    source = resolve(args.model)  # before torch is imported: hub errors come fast
    if source.adapter is not None:
        raise InferenceError("LoRA adapters are causal-LM adapters here: use `python -m training.generate --adapter`.")
    require_kind(source, "masked")
    device = pick(args.device)
    quiet_transformers(args.verbose)
    from transformers import AutoModelForMaskedLM, pipeline

    tokenizer, model = load(source, AutoModelForMaskedLM, device)
    if tokenizer.mask_token is None:
        raise InferenceError(f"the tokenizer of {args.model!r} has no mask token, so it cannot fill masks.")
    text = with_mask_token(args.text, tokenizer.mask_token)
    n_tokens = len(tokenizer(text)["input_ids"])
    if n_tokens > context_length(model, tokenizer):
        raise InferenceError(f"the text is {n_tokens} tokens; the model reads at most {context_length(model, tokenizer)}.")
    filler = pipeline("fill-mask", model=model, tokenizer=tokenizer)
    top_k = min(args.top_k, len(tokenizer))
    masks = candidates(filler(text, top_k=top_k))
    if args.json:
        print(json.dumps({"model": args.model, "device": device, "text": text, "top_k": top_k, "masks": masks},
                         ensure_ascii=False))
        return 0
    for i, found in enumerate(masks, 1):
        if len(masks) > 1:
            print(f"--- mask {i} ---")
        for c in found:
            print(f"{c['score']:.4f}  {json.dumps(c['token'], ensure_ascii=False)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(_fill_mask, argv)


if __name__ == "__main__":
    sys.exit(main())
