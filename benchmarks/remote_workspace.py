"""A remote engine with and without the workspace: dev-set EM / ES through llama.cpp's real
OpenAI-compatible server (llama-cpp-python) serving the shipped model as GGUF.

    python benchmarks/remote_workspace.py --limit 200 --snippets 0 --snippets 128 --snippets 256

Per cut (corpus-data/devset-line.jsonl whole line, corpus-data/devset.jsonl mid-line), the rows go
through the server's `Completer` with `backend: openai` (multiline never, no completion cache, the
settings `training.evaluate lines` uses):
- `remote`: the file's prefix alone, as before the workspace reached remote engines;
- `remote+ws N`: the row's package (corpus-data/devnpm, the row's own file excluded) indexed with
  the shipped model's tokenizer: sure copies and next-line analogies answered before the engine,
  and N tokens of similar code put before its prompt (`backendSnippetTokens`);
- `copy floor`: the in-process copy-only baseline (`training.evaluate lines`' `baseline_copy`).
Figures are printed, never asserted; `--json FILE` also writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CUTS = {"whole line": REPO / "corpus-data" / "devset-line.jsonl", "mid-line": REPO / "corpus-data" / "devset.jsonl"}
REPOS = REPO / "corpus-data" / "devnpm"


@contextmanager
def llama_server(threads: int) -> Iterator[str]:
    """The shipped model converted to GGUF and served by `llama_cpp.server` on 127.0.0.1; stopped
    by its pid on exit."""
    import httpx

    from server.models import DEFAULT_MODEL_DIR

    with tempfile.TemporaryDirectory() as tmp:
        gguf = Path(tmp) / "codeparrot-js.gguf"
        subprocess.run([sys.executable, "-m", "training.export_gguf", str(DEFAULT_MODEL_DIR), str(gguf)],
                       cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        log = (Path(tmp) / "server.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "1024", "--n_threads", str(threads)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"llama.cpp server exited with {proc.returncode}")
                try:
                    if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("llama.cpp server did not start")
                time.sleep(0.25)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def settings_for(url: str, snippets: int, workspace: bool) -> Any:
    from server.settings import Settings

    return replace(Settings(), backend="openai", backend_url=url, backend_timeout_ms=20000, max_new_tokens=48,
                   multiline="never", fim="off", workspace_index="on" if workspace else "off",
                   backend_snippet_tokens=snippets)


def evaluate(rows: list[dict[str, Any]], url: str, tokenizer: Any, snippets: int | None) -> dict[str, Any]:
    """EM / ES of `rows` through a remote Completer; `snippets` None: without the workspace."""
    from server.build import build_completer
    from training.data.npm import folder_name
    from training.line_eval import complete_rows, repo_index
    from training.metrics import score

    settings = settings_for(url, snippets or 0, snippets is not None)
    completer = build_completer(settings, cache_entries=0)
    sources: dict[str, int] = {}
    predictions: dict[str, str] = {}

    def attach(spec: str) -> None:
        index = repo_index(tokenizer, REPOS / folder_name(spec), snippets=True)
        completer.use_index(index, tokenizer, True)

    t0 = time.perf_counter()
    grouped = sorted(rows, key=lambda r: (str(r.get("package", "")), str(r["id"])))
    for row, done in complete_rows(completer, grouped, settings, attach if snippets is not None else None):
        if isinstance(done, Exception):
            raise done
        predictions[str(row["id"])] = done.text
        sources[done.source] = sources.get(done.source, 0) + 1
    scores = score(rows, predictions)
    return {
        "rows": len(rows),
        "exact_match": scores["model"]["exact_match"] * 100.0,
        "edit_similarity": scores["model"]["edit_similarity"] * 100.0,
        "sources": sources,
        "s_per_row": (time.perf_counter() - t0) / max(1, len(rows)),
    }


def copy_floor(rows: list[dict[str, Any]]) -> dict[str, Any]:
    from training.line_eval import copy_baselines
    from training.metrics import score

    copies, _ = copy_baselines(rows, REPOS)
    scores = score(rows, copies)
    return {"rows": len(rows), "exact_match": scores["model"]["exact_match"] * 100.0,
            "edit_similarity": scores["model"]["edit_similarity"] * 100.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=200, help="first N rows of each cut (0 = all 500)")
    parser.add_argument("--snippets", type=int, action="append", help="backendSnippetTokens to try; repeatable")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp server threads")
    parser.add_argument("--cut", choices=tuple(CUTS), action="append", help="only these cuts (default: both)")
    parser.add_argument("--no-plain", action="store_true", help="skip the remote path without the workspace")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from server.loader import early_tokenizer
    from server.settings import Settings
    from training.line_eval import read_jsonl

    tokenizer = early_tokenizer(Settings())
    print(f"{time.strftime('%Y-%m-%d %H:%M')}  load avg at start: {os.getloadavg()}", flush=True)
    figures: list[dict[str, Any]] = []
    with llama_server(args.threads) as url:
        for cut, path in CUTS.items():
            if args.cut and cut not in args.cut:
                continue
            rows = read_jsonl(path, args.limit)
            floor = copy_floor(rows) | {"cut": cut, "config": "copy floor"}
            runs = [floor]
            for snippets in [*([] if args.no_plain else [None]), *(args.snippets or [0, 128])]:
                name = "remote" if snippets is None else f"remote+ws {snippets}"
                runs.append(evaluate(rows, url, tokenizer, snippets) | {"cut": cut, "config": name})
            for fig in runs:
                print(f"{fig['cut']:<11} {fig['config']:<16} rows {fig['rows']:>4}  EM {fig['exact_match']:5.1f}  "
                      f"ES {fig['edit_similarity']:5.1f}  {fig.get('sources', '')}  "
                      f"{fig.get('s_per_row', 0):.2f} s/row  load {os.getloadavg()[0]:.1f}", flush=True)
            figures += runs
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
