"""A remote engine with and without the workspace: dev-set EM / ES through llama.cpp's real
OpenAI-compatible server (llama-cpp-python) serving the shipped model as GGUF.

    python benchmarks/remote_workspace.py --limit 200 --snippets 0 --snippets 128 --snippets 256
    python benchmarks/remote_workspace.py --limit 0 --split 250 --snippets 128   # tuning rows apart

Per cut (corpus-data/devset-line.jsonl whole line, corpus-data/devset.jsonl mid-line), the rows go
through the server's `Completer` with `backend: openai` (multiline never, no completion cache, the
settings `training.evaluate lines` uses):
- `remote`: the file's prefix alone, as before the workspace reached remote engines;
- `remote+ws N`: the row's package (corpus-data/devnpm, the row's own file excluded) indexed with
  the shipped model's tokenizer: sure copies, next-line analogies and majority copies answered
  before the engine, weaker copies weighed against its log-probabilities, and N tokens of similar
  code put before its prompt (`backendSnippetTokens`);
- `copy floor`: the in-process copy-only baseline (`training.evaluate lines`' `baseline_copy`).
`--split K` reports rows [0, K) (where thresholds were tuned) and the rest (untouched) apart, and
all of them. Figures are printed, never asserted; `--json FILE` also writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.llama_server import llama_server  # noqa: E402

CUTS = {
    "whole line": REPO / "corpus-data" / "devset-line.jsonl",
    "mid-line": REPO / "corpus-data" / "devset.jsonl",
}
REPOS = REPO / "corpus-data" / "devnpm"


def settings_for(url: str, snippets: int, workspace: bool) -> Any:
    from server.settings import Settings

    return replace(
        Settings(),
        backend="openai",
        backend_url=url,
        backend_timeout_ms=20000,
        max_new_tokens=48,
        multiline="never",
        fim="off",
        workspace_index="on" if workspace else "off",
        backend_snippet_tokens=snippets,
    )


def evaluate(
    rows: list[dict[str, Any]], url: str, tokenizer: Any, snippets: int | None
) -> dict[str, tuple[str, str]]:
    """Each row's (completion, source) through a remote Completer; `snippets` None: without the
    workspace."""
    from server.build import build_completer
    from training.data.npm import folder_name
    from training.line_eval import complete_rows, repo_index

    settings = settings_for(url, snippets or 0, snippets is not None)
    completer = build_completer(settings, cache_entries=0)
    done_rows: dict[str, tuple[str, str]] = {}

    def attach(spec: str) -> None:
        index = repo_index(tokenizer, REPOS / folder_name(spec), snippets=True)
        completer.use_index(index, tokenizer, True)

    grouped = sorted(rows, key=lambda r: (str(r.get("package", "")), str(r["id"])))
    for row, done in complete_rows(completer, grouped, settings, attach if snippets is not None else None):
        if isinstance(done, Exception):
            raise done
        # A copy taken after the engine was asked: its answer was weighed and it deferred.
        done_rows[str(row["id"])] = (
            done.text,
            "engine deferred" if done.backend is not None and done.source == "copy" else done.source,
        )
    return done_rows


def figures(rows: list[dict[str, Any]], done: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """EM / ES (%) of `rows`' completions in `done`, and how many each source answered."""
    from training.metrics import score

    ids = [str(r["id"]) for r in rows]
    scores = score(rows, {i: done[i][0] for i in ids})
    sources: dict[str, int] = {}
    for i in ids:
        sources[done[i][1]] = sources.get(done[i][1], 0) + 1
    return {
        "rows": len(rows),
        "exact_match": scores["model"]["exact_match"] * 100.0,
        "edit_similarity": scores["model"]["edit_similarity"] * 100.0,
        "sources": sources,
    }


def copy_floor(rows: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Each row's in-process copy-only baseline (`training.evaluate lines`' `baseline_copy`)."""
    from training.line_eval import copy_baselines

    copies, _ = copy_baselines(rows, REPOS)
    return {i: (text, "copy") for i, text in copies.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=200, help="first N rows of each cut (0 = all 500)")
    parser.add_argument(
        "--split",
        type=int,
        default=0,
        help="also report rows [0, K) (tuning) and [K, limit) (untouched) apart",
    )
    parser.add_argument(
        "--snippets", type=int, action="append", help="backendSnippetTokens to try; repeatable"
    )
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp server threads")
    parser.add_argument("--cut", choices=tuple(CUTS), action="append", help="only these cuts (default: both)")
    parser.add_argument("--no-plain", action="store_true", help="skip the remote path without the workspace")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from server.build import early_tokenizer
    from server.models import DEFAULT_MODEL_DIR
    from server.settings import Settings
    from training.line_eval import read_jsonl

    tokenizer = early_tokenizer(Settings())
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  load avg at start: {os.getloadavg()}", flush=True)
    out: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        llama_server(DEFAULT_MODEL_DIR, Path(tmp), threads=args.threads) as url,
    ):
        for cut, path in CUTS.items():
            if args.cut and cut not in args.cut:
                continue
            rows = read_jsonl(path, args.limit)
            parts = {"all": rows}
            if 0 < args.split < len(rows):
                parts = {
                    f"rows 0-{args.split}": rows[: args.split],
                    f"rows {args.split}-{len(rows)}": rows[args.split :],
                    "all": rows,
                }
            runs = [("copy floor", copy_floor(rows), 0.0)]
            for snippets in [*([] if args.no_plain else [None]), *(args.snippets or [0, 128])]:
                t0 = time.perf_counter()
                done = evaluate(rows, url, tokenizer, snippets)
                runs.append(
                    (
                        "remote" if snippets is None else f"remote+ws {snippets}",
                        done,
                        (time.perf_counter() - t0) / max(1, len(rows)),
                    )
                )
            for part, part_rows in parts.items():
                for config, done, s_per_row in runs:
                    fig = figures(part_rows, done) | {
                        "cut": cut,
                        "part": part,
                        "config": config,
                        "s_per_row": s_per_row,
                    }
                    sources = "" if config == "copy floor" else fig["sources"]
                    print(
                        f"{cut:<11} {part:<12} {config:<16} rows {fig['rows']:>4}  EM {fig['exact_match']:5.1f}  "
                        f"ES {fig['edit_similarity']:5.1f}  {sources}  {s_per_row:.2f} s/row  "
                        f"load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
                    out.append(fig)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
