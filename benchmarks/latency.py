"""Typing-replay latency: the real server over stdio vs. naive `model.generate` per request.

    python benchmarks/latency.py --make-codeparrot-shaped /tmp/cp-shaped --max-new-tokens 16
    python benchmarks/latency.py --model DIR [--quantize int8] [--in-process] [--engine torch|llama]
    python benchmarks/latency.py --model DIR --backend openai --url http://127.0.0.1:8080

A JavaScript file is opened with its first part as context; then the next characters are
typed one at a time (an incremental `didChange` each), with an inline-completion request after
every keystroke, awaited before the next one. The same keystrokes (a spread-out subset: the
baseline is slow) are then timed with the naive approach: the same prompt ids, no KV reuse, no
stop checks, `model.generate(max_new_tokens=N)`. Prints p50/p95 of both and their ratio, the
server's RSS, and the cold start (process spawn → first completion, model load included).
`--in-process` drives `server.completion.Completer` directly instead of the stdio server.
`--engine auto|torch|llama` is the server's `codeparrot.engine` (default auto: llama.cpp when
llama-cpp-python is installed); given twice (`--engine torch --engine llama`) the replay runs with
each, one after the other, and their ratio is printed; for llama.cpp the model's GGUF conversion is made (or found in the
cache) before the server starts, so the cold start is that of a second start. The naive baseline
is transformers' `generate` in float32 whatever the engine.
`--workspace DIR` opens DIR as the workspace folder (the replayed file is a new, unsaved file in
it): the cold start is still to the first completion (the index builds in the background
meanwhile), then the replay waits for the index to be built (its `$/progress` end, timed from
the spawn) and types with workspace retrieval on.
`--backend openai --url URL` replays the same keystrokes twice in one run, through the stdio
server with the model in process and through the server with `codeparrot.backend: openai` asking
the engine at URL (e.g. llama.cpp's server with the same model as GGUF), and prints both and their
ratio instead of the naive baseline.

The replays are in latency_runs.py, what is printed in latency_report.py; the stdio client is
lsp_client.py (shared with soak.py and the server's end-to-end tests).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.latency_report import report, report_backend  # noqa: E402
from benchmarks.latency_runs import cache_gguf, run_in_process, run_naive, run_stdio  # noqa: E402

# Default replay text (our own), long enough that the prompt is several hundred tokens.
SAMPLE_JS = """\
'use strict';

const fs = require('fs');
const path = require('path');

/**
 * A small in-memory store with expiry, used by the request handlers below.
 */
class TtlCache {
  constructor(ttlMs = 60000) {
    this.ttlMs = ttlMs;
    this.entries = new Map();
  }

  get(key) {
    const entry = this.entries.get(key);
    if (!entry) {
      return undefined;
    }
    if (Date.now() > entry.expires) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key, value) {
    this.entries.set(key, { value, expires: Date.now() + this.ttlMs });
    return this;
  }
}

function readJson(file) {
  const text = fs.readFileSync(path.resolve(file), 'utf8');
  return JSON.parse(text);
}

async function fetchAll(urls, { retries = 2 } = {}) {
  const results = [];
  for (const url of urls) {
    let attempt = 0;
    while (true) {
      try {
        const res = await fetch(url);
        if (!res.ok) {
          throw new Error(`HTTP ${res.status} for ${url}`);
        }
        results.push(await res.json());
        break;
      } catch (err) {
        attempt += 1;
        if (attempt > retries) {
          throw err;
        }
      }
    }
  }
  return results;
}

function groupBy(items, keyFn) {
  const groups = {};
  for (const item of items) {
    const key = keyFn(item);
    if (!groups[key]) {
      groups[key] = [];
    }
    groups[key].push(item);
  }
  return groups;
}

function summarize(records) {
  const byUser = groupBy(records, (r) => r.user);
  const totals = Object.entries(byUser).map(([user, rows]) => ({
    user,
    count: rows.length,
    total: rows.reduce((acc, row) => acc + row.amount, 0),
  }));
  totals.sort((a, b) => b.total - a.total);
  for (let i = 0; i < totals.length; i++) {
    console.log(`${i + 1}. ${totals[i].user}: ${totals[i].total}`);
  }
  return totals;
}

module.exports = { TtlCache, readJson, fetchAll, groupBy, summarize };
"""
TYPE_FROM = "  totals.sort("  # typing starts here: the text before it is already in the file


# ----------------------------------------------------------------------------------------------
# model for timing


def make_codeparrot_shaped(out: Path) -> Path:
    """A random GPT-2 shaped like CodeParrot-small (12 x 768, vocab 32768, 1024 positions)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    sys.path.insert(0, str(REPO / "tests"))
    from tiny_model import build_tokenizer  # the fixture's real BPE tokenizer with FIM tokens

    if (out / "config.json").is_file():
        return out
    tokenizer = build_tokenizer(out)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=32768,  # CodeParrot's vocab; ids beyond the tokenizer's decode to nothing
        n_positions=1024,
        n_embd=768,
        n_layer=12,
        n_head=12,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(out, safe_serialization=True)
    return out


# ----------------------------------------------------------------------------------------------
# keystrokes


def keystrokes(text: str, start: int, chars: int) -> list[tuple[str, int]]:
    """(document text, cursor offset) after each typed character.

    At least `chars` characters are typed, rounded up to the end of a line: the typed lines are
    missing from the file at first, so the text after the cursor is the next line, as when
    someone writes new code (not the rest of an existing line, which would block completion).
    """
    end = text.find("\n", start + chars)
    end = len(text) if end == -1 else end
    return [(text[: start + n] + text[end:], start + n) for n in range(1, end - start + 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="model directory to serve")
    parser.add_argument("--make-codeparrot-shaped", type=Path, metavar="DIR", help="create (once) and use")
    parser.add_argument("--file", type=Path, help="JavaScript file to replay (default: built-in sample)")
    parser.add_argument("--type-from", default=None, help="text where typing starts (default: 2/3 in)")
    parser.add_argument("--chars", type=int, default=60, help="characters typed")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--max-prompt-tokens", type=int, default=None, help="default: the server's")
    parser.add_argument("--quantize", choices=("auto", "none", "int8", "bf16"), default="auto")
    parser.add_argument("--naive-requests", type=int, default=12, help="keystrokes timed for the baseline")
    parser.add_argument("--interval-ms", type=float, default=0.0, help="pause between keystrokes")
    parser.add_argument("--in-process", action="store_true", help="drive the Completer, not the server")
    parser.add_argument(
        "--engine",
        choices=("auto", "torch", "llama"),
        action="append",
        help="the server's codeparrot.engine (default auto; llama.cpp's GGUF conversion is cached "
        "first); repeat it to replay with each engine in one run",
    )
    parser.add_argument("--no-naive", action="store_true", help="skip the baseline")
    parser.add_argument("--workspace", type=Path, help="folder opened as the workspace (retrieval on)")
    parser.add_argument(
        "--backend",
        choices=("local", "openai"),
        default="local",
        help="openai: also replay through an OpenAI-compatible engine at --url",
    )
    parser.add_argument("--url", help="the engine's base URL (with --backend openai)")
    parser.add_argument("--backend-model", default="", help="`model` sent to the engine")
    parser.add_argument("--log", default="/tmp/codeparrot-latency-server.log", help="server stderr")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.make_codeparrot_shaped:
        args.model = make_codeparrot_shaped(args.make_codeparrot_shaped)
    if args.model is None:
        parser.error("--model or --make-codeparrot-shaped is required")
    if args.max_prompt_tokens is None:
        from server.settings import Settings

        args.max_prompt_tokens = Settings().max_prompt_tokens
    engines = args.engine or ["auto"]
    if any(engine != "torch" for engine in engines):
        cache_gguf(args)
    args.engine = engines[0]
    text = args.file.read_text(encoding="utf-8") if args.file else SAMPLE_JS
    marker = args.type_from if args.type_from is not None else (TYPE_FROM if not args.file else None)
    start = text.index(marker) if marker and marker in text else (len(text) * 2) // 3
    steps = keystrokes(text, start, min(args.chars, len(text) - start))[: args.chars]
    if args.backend == "openai":
        if not args.url or args.in_process:
            parser.error("--backend openai needs --url and the stdio server (not --in-process)")
        report_backend(args, run_stdio(args, text, steps), run_stdio(args, text, steps, backend_url=args.url))
        return 0
    runs = []
    for engine in engines:  # one after the other in this run: their ratio is measured under the same load
        args.engine = engine
        runs.append(
            (engine, run_in_process(args, text, steps) if args.in_process else run_stdio(args, text, steps))
        )
    naive = (
        {"latencies": [float("nan")], "new_tokens": [0], "prompt_tokens": [0]}
        if args.no_naive
        else run_naive(args, steps)
    )
    report(args, runs, naive)
    return 0


if __name__ == "__main__":
    sys.exit(main())
