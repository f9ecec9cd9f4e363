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
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from training.config import ConfigError, RunConfig, apply_overrides, from_dict, load_recipe

log = logging.getLogger("training.evaluate")


# ---------------------------------------------------------------- scoring

def levenshtein(a: str, b: str) -> int:
    """Edit distance (insert/delete/substitute, cost 1). Hand-written: the stdlib has none, and
    difflib's ratio is a different measure (matching blocks), not the edit similarity code
    completion papers report. Lines are short, so the O(len(a)·len(b)) DP is cheap."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def edit_similarity(prediction: str, target: str) -> float:
    """1 - levenshtein / max length, on stripped strings (1.0 for two empty strings)."""
    p, t = prediction.strip(), target.strip()
    longest = max(len(p), len(t))
    return 1.0 if longest == 0 else 1.0 - levenshtein(p, t) / longest


def exact_match(prediction: str, target: str) -> bool:
    return prediction.strip() == target.strip()


def baseline_prediction(prefix: str) -> str:
    """Trivial baseline: repeat the previous non-empty line (stripped)."""
    lines = prefix.split("\n")[:-1]  # the last piece is the partly typed current line
    for line in reversed(lines):
        if line.strip():
            return line.strip()
    return ""


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test: the chance of a split at least this uneven between `wins` and
    `losses` (the rows where exactly one of two predictors is right) if both were equally good."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_interval(diffs: list[float], *, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval of the mean of per-row differences (seeded: the same rows give the
    same interval)."""
    import numpy as np

    values = np.asarray(diffs, dtype=np.float64)
    if len(values) == 0:
        return (0.0, 0.0)
    picks = np.random.default_rng(seed).integers(0, len(values), size=(resamples, len(values)))
    means = values[picks].mean(axis=1)
    return (float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975)))


Scores = list[tuple[bool, float]]  # per row: exact match, edit similarity


def row_scores(rows: list[dict[str, Any]], predictions: dict[str, str]) -> Scores:
    """Each row's exact match and edit similarity (a missing prediction counts as "")."""
    out: Scores = []
    for r in rows:
        prediction, target = predictions.get(str(r["id"]), ""), str(r["target"])
        out.append((exact_match(prediction, target), edit_similarity(prediction, target)))
    return out


def versus(ours: Scores, other: Scores) -> dict[str, Any]:
    """Ours against another predictor on the same rows: exact matches only one of them has (and
    the sign test's p for that split), and the 95 % interval of the edit-similarity gain. Two
    figures 1 point apart on 200 rows may be 2 rows of luck; this says whether they are."""
    wins = sum(a and not b for (a, _), (b, _) in zip(ours, other, strict=True))
    losses = sum(b and not a for (a, _), (b, _) in zip(ours, other, strict=True))
    lo, hi = paired_interval([a - b for (_, a), (_, b) in zip(ours, other, strict=True)])
    return {"exact_only_ours": wins, "exact_only_other": losses, "sign_test_p": sign_test(wins, losses),
            "edit_similarity_gain_ci95": [lo, hi]}


def score(
    rows: list[dict[str, Any]],
    predictions: dict[str, str],
    copies: dict[str, str] | None = None,
    available: dict[str, bool] | None = None,
) -> dict[str, Any]:
    """Exact match and edit similarity of the predictions and the baselines. With `available`
    (row id -> its line could be copied from somewhere, `line_available`): the share of such rows
    (the ceiling of any copying predictor) and the model's exact matches within and outside them."""
    scored = [r for r in rows if "target" in r and str(r["id"]) in predictions]
    if not scored:
        return {"scored": 0}
    n = len(scored)

    def summary(per_row: Scores) -> dict[str, float]:
        return {"exact_match": sum(em for em, _ in per_row) / n, "edit_similarity": sum(es for _, es in per_row) / n}

    ours = row_scores(scored, predictions)
    previous = row_scores(scored, {str(r["id"]): baseline_prediction(str(r["prefix"])) for r in scored})
    result: dict[str, Any] = {}
    if available is not None:
        inside = [em for r, (em, _) in zip(scored, ours, strict=True) if available.get(str(r["id"]))]
        outside = [em for r, (em, _) in zip(scored, ours, strict=True) if not available.get(str(r["id"]))]
        result["copy_ceiling"] = {"rows_available": len(inside) / n, "model_exact_inside": sum(inside) / max(1, len(inside)),
                                  "model_exact_outside": sum(outside) / max(1, len(outside))}
    result |= {"model": summary(ours), "baseline_previous_line": summary(previous)}
    if copies is not None:
        copied = row_scores(scored, copies)
        result |= {"baseline_copy": summary(copied), "model_vs_copy": versus(ours, copied)}
    return {"scored": n, **result}


# ---------------------------------------------------------------- lines

def read_jsonl(path: Path, limit: int = 0) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if not isinstance(row, dict) or "id" not in row or "prefix" not in row:
                raise ConfigError(f"{path}:{n}: each row needs at least \"id\" and \"prefix\"")
            rows.append(row)
            if limit and len(rows) >= limit:
                break
    return rows


def repo_index(engine: Any, pkg_dir: Path, snippets: bool = False) -> Any:
    """The server's own workspace index over one package folder (keys: paths inside it)."""
    from server.retrieval.files import scan_workspace
    from server.retrieval.vocab import new_index

    index = new_index(engine.tokenizer, snippets=snippets)
    index.build((path.relative_to(pkg_dir).as_posix(), text) for path, text in scan_workspace(pkg_dir))
    return index


def predict_lines(
    rows: list[dict[str, Any]],
    settings: Any,
    *,
    token_healing: bool = True,
    repos: Path | None = None,
    snippet_tokens: int = 0,
    copy_verdicts: bool = True,
    mix: Any = None,
    failed: list[str] | None = None,
) -> Iterator[tuple[str, str]]:
    """(id, prediction) per row, through the server's Completer. A row whose completion raises
    gets "" (scored as a miss), a warning, and its id appended to `failed`.

    With `repos` (a folder of unpacked packages, `name@version` each), a row's package is indexed
    as its workspace, and the row's own file is left out of it (the editor would have it open,
    without the line being predicted: the Completer searches that text itself).
    """
    from server.completion import Completer
    from server.engines import load_engine
    from training.data.npm import folder_name

    engine = load_engine(settings)
    # No completion cache: each row is scored on its own.
    completer = Completer(
        engine, token_healing=token_healing, snippet_tokens=snippet_tokens, copy_verdicts=copy_verdicts, mix=mix
    )
    indexes: dict[str, Any] = {}
    for row in rows:
        prefix, suffix = str(row["prefix"]), str(row.get("suffix", ""))
        key = "evaluate"
        if repos is not None and row.get("package"):
            spec = f"{row['package']}@{row.get('version', '')}"
            if spec not in indexes:
                indexes.clear()  # rows come grouped by package often enough; keep one in memory
                indexes[spec] = repo_index(engine, repos / folder_name(spec), snippets=snippet_tokens > 0)
            completer.workspace = indexes[spec]
            key = str(row.get("path", "evaluate"))
        try:
            text = completer.complete(prefix + suffix, len(prefix), settings=settings, key=key).text
        except Exception as exc:  # one bad row (a lone surrogate, a generation error) must not end the run
            log.warning("row %s failed, recorded as an empty prediction: %s: %s", row["id"], type(exc).__name__, exc)
            if failed is not None:
                failed.append(str(row["id"]))
            text = ""
        yield str(row["id"]), text


def _row_sources(rows: list[dict[str, Any]], repos: Path | None) -> Iterator[tuple[dict[str, Any], list[str]]]:
    """Each row with the texts of its package's other files (`repos`), or [] without repos."""
    from server.retrieval.files import scan_workspace
    from training.data.npm import folder_name

    texts: dict[str, dict[str, str]] = {}
    for row in rows:
        others: list[str] = []
        if repos is not None and row.get("package"):
            spec = f"{row['package']}@{row.get('version', '')}"
            if spec not in texts:
                texts.clear()
                pkg = repos / folder_name(spec)
                texts[spec] = {p.relative_to(pkg).as_posix(): t for p, t in scan_workspace(pkg)}
            others = [t for k, t in texts[spec].items() if k != str(row.get("path", ""))]
        yield row, others


def copy_baselines(rows: list[dict[str, Any]], repos: Path | None) -> tuple[dict[str, str], dict[str, bool]]:
    """Per row, in one pass over the packages: the copy-only baseline (from the row's package
    (`repos`) and its own file, or its own file alone without repos) and, for rows with a target,
    whether its line could be copied at all (`line_available`)."""
    from server.retrieval.copy import copy_prediction

    copies: dict[str, str] = {}
    available: dict[str, bool] = {}
    for row, others in _row_sources(rows, repos):
        prefix, suffix = str(row["prefix"]), str(row.get("suffix", ""))
        copies[str(row["id"])] = copy_prediction(prefix, suffix, others)
        if "target" in row:
            available[str(row["id"])] = line_available(prefix, suffix, str(row["target"]), others)
    return copies, available


def line_available(prefix: str, suffix: str, target: str, others: list[str]) -> bool:
    """Whether the completed cursor line (what is typed of it + `target`, stripped) is a line
    somewhere a copy could take it from: the package's other files or the rest of its own file.
    The share of such rows bounds what any copying predictor can get exactly right."""
    from server.retrieval.copy import own_sources

    line = (prefix[prefix.rfind("\n") + 1 :] + target).strip()
    if not line:
        return False
    before, after = own_sources(prefix, suffix)
    own = [before[: before.rfind("\n") + 1], after]  # the file but the cursor line
    return any(line == other.strip() for text in [*own, *others] for other in text.splitlines())


def mix_params(pairs: list[str]) -> Any:
    """`MixParams` with `KEY=VALUE` fields replaced (values coerced to each field's type)."""
    from dataclasses import fields

    from server.retrieval.mixing import MixParams

    params = MixParams()
    types = {f.name: type(getattr(params, f.name)) for f in fields(MixParams)}
    changes: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in types:
            raise ConfigError(f"--mix {pair!r}: expected KEY=VALUE with KEY one of {', '.join(types)}")
        try:
            changes[key] = types[key](value)
        except ValueError as exc:
            raise ConfigError(f"--mix {pair!r}: {exc}") from exc
    return replace(params, **changes)


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
               "snippet_tokens": args.snippet_tokens, "copy_verdicts": not args.no_copy_verdicts,
               "max_prompt_tokens": settings.max_prompt_tokens,
               "skip": args.skip, "mix": asdict(mix), "failed_rows": failed,
               **score(rows, predictions, copies, available)}
    _emit(summary, args.summary)
    return 0


# ---------------------------------------------------------------- perplexity

def _data_config(args: argparse.Namespace) -> RunConfig:
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


def cmd_perplexity(args: argparse.Namespace) -> int:
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, DataCollatorForLanguageModeling

    from training.data.build import build_lm_datasets
    from training.modeling import load_tokenizer

    cfg = _data_config(args)
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
