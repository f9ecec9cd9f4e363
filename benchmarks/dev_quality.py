"""Dev-set quality of one engine configuration: EM / ES on both cuts, plus its decode speed.

    python benchmarks/dev_quality.py --engine torch --engine llama --limit 200
    python benchmarks/dev_quality.py --model some.gguf --engine llama --workspace off --workspace repo

The rows are `training.evaluate lines`' (`corpus/build_devset.py`: corpus-data/devset.jsonl is
the mid-line cut, corpus-data/devset-line.jsonl the whole-line cut) and the completions go
through the server's `Completer` as there (multiline never, no completion cache, `--workspace
repo` indexes each row's package from `--repos` without the row's file); the difference is the
`engine` setting, which `training.evaluate` leaves at its default. Each configuration also
reports the median `decode_ms_per_token` and `prefill_ms` of its generations, and the seconds
per row. Figures are printed, never asserted; `--json FILE` also writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CUTS = {"whole line": REPO / "corpus-data" / "devset-line.jsonl", "mid-line": REPO / "corpus-data" / "devset.jsonl"}
REPOS = REPO / "corpus-data" / "devnpm"


def dev_eval(engine: Any, settings: Any, rows: list[dict[str, Any]], repos: Path | None) -> dict[str, Any]:
    """Score `rows` with the server's Completer on a loaded `engine` under `settings` (as
    `training.evaluate lines`)."""
    from server.build import build_completer
    from training.data.npm import folder_name
    from training.line_eval import complete_rows, repo_index
    from training.metrics import score

    engine.reset_cache()
    completer = build_completer(settings, engine, cache_entries=0)

    def attach(spec: str) -> None:
        completer.use_index(repo_index(engine.tokenizer, packages / folder_name(spec)), engine.tokenizer, True)

    if repos is not None:  # one index build per package
        packages = repos
        rows = sorted(rows, key=lambda r: (str(r.get("package", "")), str(r["id"])))
    predictions: dict[str, str] = {}
    decode_ms: list[float] = []
    prefill_ms: list[float] = []
    failed = 0
    t0 = time.perf_counter()
    for row, done in complete_rows(completer, rows, settings, attach if repos is not None else None):
        if isinstance(done, Exception):  # scored as a miss, as training.evaluate does
            print(f"  row {row['id']} failed: {type(done).__name__}: {done}", file=sys.stderr)
            failed += 1
            predictions[str(row["id"])] = ""
            continue
        predictions[str(row["id"])] = done.text
        result = done.result
        if result is not None:
            if result.decode_ms_per_token is not None:
                decode_ms.append(result.decode_ms_per_token)
            if result.prompt_tokens_computed:
                prefill_ms.append(result.prefill_ms)
    seconds = time.perf_counter() - t0
    scores = score(rows, predictions)
    return {
        "engine": engine.describe(),
        "rows": len(rows),
        "failed": failed,
        "exact_match": scores["model"]["exact_match"] * 100.0,
        "edit_similarity": scores["model"]["edit_similarity"] * 100.0,
        "decode_ms_per_token": statistics.median(decode_ms) if decode_ms else None,
        "prefill_ms": statistics.median(prefill_ms) if prefill_ms else None,
        "s_per_row": seconds / max(1, len(rows)),
    }


def base_settings(model: str, engine: str, quantize: str, workspace: str) -> Any:
    """The settings `training.evaluate lines` uses, with the engine chosen."""
    from server.settings import Settings

    return replace(
        Settings(),
        model=model,
        max_new_tokens=48,
        multiline="never",
        device="cpu",
        quantize=quantize,
        engine=engine,
        workspace_index="off" if workspace == "off" else "on",
        fim="off",
    )


def with_bos(engine: Any) -> None:
    """Make `engine` put its tokenizer's BOS before every prompt that lacks it (what models trained
    with a BOS at the start of each text, Gemma among them, saw in training; the server's prompts
    start with the text's own tokens): to measure what that would change."""
    bos = getattr(engine.tokenizer, "bos_token_id", None)
    if not isinstance(bos, int):
        return
    generate = engine.generate

    def generate_with_bos(input_ids: list[int], **kwargs: Any) -> Any:
        ids = list(input_ids)
        return generate(ids if ids[:1] == [bos] else [bos, *ids], **kwargs)

    engine.generate = generate_with_bos


def run(
    models: list[str], engines: list[str], workspaces: list[str], limit: int, quantize: str = "auto",
    bos: bool = False,
) -> list[dict[str, Any]]:
    """Every model x workspace x cut x engine, the engines of one cell one after the other."""
    from server.engines import load_engine
    from training.line_eval import read_jsonl

    out = []
    for model in models:
        loaded: dict[str, Any] = {}
        for engine in engines:  # once each: a .gguf's tokenizer takes long to read
            t = time.perf_counter()
            loaded[engine] = load_engine(base_settings(model, engine, quantize, "off"))
            if bos:
                with_bos(loaded[engine])
            print(f"{model or 'default'}: {engine} engine {loaded[engine].describe()} loaded in "
                  f"{time.perf_counter() - t:.1f} s", flush=True)
        for workspace in workspaces:
            for cut, path in CUTS.items():
                if not path.is_file():
                    raise SystemExit(f"{path} is missing: build it with corpus/build_devset.py (corpus/README.md)")
                rows = read_jsonl(path, limit)
                for engine in engines:
                    settings = base_settings(model, engine, quantize, workspace)
                    repos = REPOS if workspace == "repo" else None
                    fig = dev_eval(loaded[engine], settings, rows, repos)
                    fig |= {"model": model, "cut": cut, "workspace": workspace, "requested_engine": engine,
                            "bos": bos, "load_avg": os.getloadavg()[0]}
                    print_row(fig)
                    out.append(fig)
        for one in loaded.values():
            close = getattr(one, "close", None)
            if close is not None:
                close()
    return out


def print_row(fig: dict[str, Any]) -> None:
    eng = fig["engine"]
    ms = fig["decode_ms_per_token"]
    pre = fig["prefill_ms"]
    print(
        f"{Path(fig['model']).name or 'default':<28} {fig['workspace']:<5} {fig['cut']:<11} "
        f"{eng['name']:<6} {eng['format']:<8} rows {fig['rows']:>4}  EM {fig['exact_match']:5.1f}  "
        f"ES {fig['edit_similarity']:5.1f}  decode {ms if ms is None else round(ms, 2)} ms/token  "
        f"prefill {pre if pre is None else round(pre)} ms  {fig['s_per_row']:.2f} s/row  "
        f"failed {fig['failed']}  load {fig['load_avg']:.1f}{'  (BOS first)' if fig.get('bos') else ''}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="model dir or .gguf (default: the shipped model)")
    parser.add_argument("--engine", action="append", choices=("auto", "torch", "llama"), help="repeatable")
    parser.add_argument("--workspace", action="append", choices=("off", "repo"),
                        help="off: the model alone; repo: + the row's package (corpus-data/devnpm); repeatable")
    parser.add_argument("--quantize", choices=("auto", "none", "int8", "bf16"), default="auto")
    parser.add_argument("--limit", type=int, default=200, help="first N rows of each cut (0 = all 500)")
    parser.add_argument("--bos", action="store_true", help="put the tokenizer's BOS before each prompt lacking it")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  load avg at start: {os.getloadavg()}", flush=True)
    figures = run(args.model or [""], args.engine or ["torch", "llama"], args.workspace or ["off"], args.limit,
                  args.quantize, args.bos)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
