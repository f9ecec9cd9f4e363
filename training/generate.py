"""`python -m training.generate --model DIR [--adapter DIR] "prompt"`: continue a prompt with a causal LM.

Works on any causal-LM output dir of ours (eli5-clm, scratch-js, codeparrot-js, a LoRA adapter dir)
and on hub ids. Generation is transformers' `pipeline("text-generation")`: greedy by default,
`--do-sample` with `--temperature/--top-k/--top-p`, `--seed` for reproducible samples.

The loading half is shared with `training.fill_mask`: the model is resolved by `server.models`
(local dir, hub id that fails within ~2 s offline, LoRA adapter, pickle-only dirs refused) before
torch or transformers is imported, its kind is read from `config.json` before any weights load,
and every bad input is one `error: ...` line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from server.errors import CodeparrotError
from server.models import ModelSource, resolve_model
from training import modeling

EXIT_USAGE = 2
DEVICES = ("auto", "cpu", "cuda")
KINDS = {  # kind -> (what it is, the command for it)
    "causal": ("a causal LM", "python -m training.generate"),
    "masked": ("a masked LM", "python -m training.fill_mask"),
}


class InferenceError(Exception):
    """A bad input: printed as one line on stderr, exit status 2."""


def one_line(text: str) -> str:
    """Library messages often span lines; the CLI contract is one line per error."""
    return " ".join(str(text).split())


def resolve(model: str, adapter: str = "") -> ModelSource:
    if not model.strip():
        raise InferenceError("--model is empty: pass a model directory or a hub id (org/name).")
    try:
        return resolve_model(model, adapter)
    except CodeparrotError as exc:
        raise InferenceError(one_line(exc.user_message)) from exc


def model_kind(path: Path) -> tuple[str, str]:
    """("causal" | "masked" | "other", the name shown to the user), from config.json alone."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES as CAUSAL,
    )
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_MASKED_LM_MAPPING_NAMES as MASKED,
    )

    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InferenceError(one_line(f"cannot read {path / 'config.json'}: {exc}")) from exc
    archs = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    for arch in archs:  # the head the weights were saved with decides
        if arch in set(CAUSAL.values()):
            return "causal", arch
        if arch in set(MASKED.values()):
            return "masked", arch
    model_type = str(config.get("model_type", ""))
    name = archs[0] if archs else model_type or "unknown model type"
    in_causal, in_masked = model_type in CAUSAL, model_type in MASKED
    if in_causal and (not in_masked or config.get("is_decoder")):
        return "causal", name
    if in_masked:
        return "masked", name
    return "other", name


def require_kind(source: ModelSource, want: str) -> None:
    """A model of the other kind would load with a fresh random head and print noise: refuse it."""
    kind, name = model_kind(source.path)
    if kind == want:
        return
    needed, command = KINDS[want]
    if kind in KINDS:
        what, other = KINDS[kind]
        raise InferenceError(f"{source.spec!r} is {what} ({name}), but `{command}` needs {needed}; use `{other}`.")
    raise InferenceError(f"{source.spec!r} ({name}) is neither a causal nor a masked LM; `{command}` needs {needed}.")


def pick(device: str) -> str:
    from server.engines.pytorch import pick_device

    try:
        return pick_device(device, "none")
    except CodeparrotError as exc:
        raise InferenceError(one_line(exc.user_message)) from exc


def load(source: ModelSource, auto_class: Any, device: str) -> tuple[Any, Any]:
    """Tokenizer and model (safetensors only, no remote code; a LoRA adapter merged in) on `device`."""
    import torch
    from transformers import AutoTokenizer

    tok_dir = source.adapter if source.adapter and (source.adapter / "tokenizer.json").is_file() else source.path
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(tok_dir), trust_remote_code=False)
        model = auto_class.from_pretrained(  # float32: a checkpoint stored as fp16 computes in fp32 on the CPU
            str(source.path), use_safetensors=True, trust_remote_code=False, dtype=torch.float32
        )
        if source.adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(source.adapter), is_trainable=False).merge_and_unload()
    except (OSError, ValueError, KeyError, RuntimeError, ImportError) as exc:
        raise InferenceError(one_line(f"could not load {source.spec!r}: {exc}")) from exc
    return tokenizer, model.eval().to(device)


def context_length(model: Any, tokenizer: Any) -> int:
    """Tokens the model reads at most: its positions (`training.modeling.context_length`), capped
    by the tokenizer's `model_max_length`."""
    positions = modeling.context_length(model.config) or 10**9
    limit = int(getattr(tokenizer, "model_max_length", 10**9) or 10**9)
    return min(positions, limit)


def quiet_transformers(verbose: bool) -> None:
    """Library warnings and progress bars would break the one-line error contract; `-v` brings them back."""
    from transformers.utils import logging as hf_logging

    if verbose:
        hf_logging.set_verbosity_info()
        hf_logging.enable_progress_bar()
    else:
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def run(main: Any, argv: list[str] | None) -> int:
    """Run a command's body, turning an InferenceError into one stderr line and exit status 2."""
    try:
        return int(main(argv))
    except InferenceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


# ---------------------------------------------------------------- generate


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.generate", description=__doc__.split("\n\n")[0])
    p.add_argument("prompt", help="the text to continue")
    p.add_argument("--model", required=True, help="causal-LM model dir, LoRA adapter dir, or hub id")
    p.add_argument("--adapter", default="", help="a peft LoRA adapter dir applied on top of --model")
    p.add_argument("--max-new-tokens", type=int, default=32, help="tokens to generate (default 32)")
    p.add_argument("--do-sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=None, help="sampling temperature (> 0; default 1.0)")
    p.add_argument("--top-k", type=int, default=None, help="sample among the K likeliest tokens (0 = all; default 50)")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass in (0, 1] (default 1.0)")
    p.add_argument("--num-return-sequences", type=int, default=1, help="continuations to return (> 1 needs --do-sample)")
    p.add_argument("--seed", type=int, default=None, help="seed for reproducible sampling")
    p.add_argument("--device", choices=DEVICES, default="auto", help="auto = cuda when present, else cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of plain text")
    p.add_argument("-v", "--verbose", action="store_true", help="show transformers' warnings")
    return p


def sampling_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Generation arguments from the flags; contradictory flags are a usage error, not a silent default."""
    if args.max_new_tokens < 1:
        raise InferenceError("--max-new-tokens must be at least 1.")
    if args.num_return_sequences < 1:
        raise InferenceError("--num-return-sequences must be at least 1.")
    sampling = {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p}
    if not args.do_sample:
        given = [f"--{k.replace('_', '-')}" for k, v in sampling.items() if v is not None]
        if given or args.num_return_sequences > 1:
            flags = ", ".join(given + (["--num-return-sequences > 1"] if args.num_return_sequences > 1 else []))
            raise InferenceError(f"{flags} only apply with --do-sample (greedy decoding has one answer).")
        return {"do_sample": False}
    t, k, p = (1.0 if args.temperature is None else args.temperature, 50 if args.top_k is None else args.top_k,
               1.0 if args.top_p is None else args.top_p)
    if t <= 0 or k < 0 or not 0 < p <= 1:
        raise InferenceError("need --temperature > 0, --top-k >= 0 and --top-p in (0, 1].")
    return {"do_sample": True, "temperature": t, "top_k": k, "top_p": p}


def _generate(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if not args.prompt:
        raise InferenceError("the prompt is empty: give the text to continue.")
    options = sampling_kwargs(args)
    source = resolve(args.model, args.adapter)  # before torch is imported: hub errors come fast
    require_kind(source, "causal")
    device = pick(args.device)
    quiet_transformers(args.verbose)
    from transformers import AutoModelForCausalLM, pipeline, set_seed

    tokenizer, model = load(source, AutoModelForCausalLM, device)
    n_prompt = len(tokenizer(args.prompt)["input_ids"])
    if n_prompt + args.max_new_tokens > context_length(model, tokenizer):
        raise InferenceError(f"prompt ({n_prompt} tokens) + --max-new-tokens ({args.max_new_tokens}) exceed the "
                             f"model's context of {context_length(model, tokenizer)} tokens.")
    # Stop at any special token, as the server does: after an EOS or a FIM marker the model no
    # longer continues this text (and eos comes from the tokenizer, not a config that may be off).
    stop = sorted({i for i in tokenizer.all_special_ids if i is not None})
    generator = pipeline("text-generation", model=model, tokenizer=tokenizer)
    if args.seed is not None:
        set_seed(args.seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    outputs = generator(
        args.prompt, max_new_tokens=args.max_new_tokens, num_return_sequences=args.num_return_sequences,
        return_full_text=False, eos_token_id=stop or None, pad_token_id=pad, **options,
    )
    texts = [o["generated_text"] for o in outputs]
    if args.json:
        print(json.dumps({"model": args.model, "adapter": args.adapter or None, "device": device,
                          "prompt": args.prompt, "max_new_tokens": args.max_new_tokens, "seed": args.seed,
                          **options, "continuations": texts}, ensure_ascii=False))
    elif len(texts) == 1:
        print(texts[0])
    else:
        for i, text in enumerate(texts, 1):
            print(f"--- {i} ---\n{text}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(_generate, argv)


if __name__ == "__main__":
    sys.exit(main())
