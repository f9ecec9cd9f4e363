"""Test helpers for the server's end-to-end tests (imported by tests/server/test_lsp_*.py).

- `RawServer`: the real server as a subprocess spoken to byte by byte (benchmarks/lsp_client.py,
  the client the benchmarks use), for what pytest-lsp's well-behaved client cannot send (malformed
  JSON, junk bytes, wrong param types) and to check that stdout carries nothing but LSP frames.
- `trained_model_dir`: the tiny test GPT-2 trained for a few seconds on the tiny corpus (plain and
  SPM fill-in-the-middle), so that it completes those snippets deterministically. Random weights
  produce noise that post-processing rightly drops, which would leave nothing to assert on.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path
from typing import Any

from benchmarks.lsp_client import LspServer

REPO = Path(__file__).resolve().parents[2]


def server_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


async def wait_until_loaded(client: Any, timeout: float = 180.0) -> None:
    """Wait for the model the server started loading at `initialized` (pytest-lsp client).

    Until it is loaded the server answers by copying from the open documents; tests that assert
    on the model's completions must not race the load (slow when the machine is busy)."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while True:
        snap = await client.protocol.send_request_async("codeparrot/stats", None)
        model = snap["model"] if isinstance(snap, dict) else snap.model
        loaded = model["loaded"] if isinstance(model, dict) else model.loaded
        if loaded:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the model did not load within {timeout:.0f} s")
        await asyncio.sleep(0.1)


async def open_folder(client: Any, root: Path, **options: Any) -> None:
    """`initialize` as VS Code sends it with `root` as the one workspace folder (and `options` as
    initializationOptions), then `initialized`."""
    from lsprotocol import types
    from pytest_lsp import client_capabilities

    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
            initialization_options=options or None,
        )
    )


def server_command(model_dir: Path | str, *flags: str) -> list[str]:
    return [sys.executable, "-m", "server", "--model", str(model_dir), *flags]


class RawServer(LspServer):
    """`python -m server ...` over pipes, driven with raw JSON-RPC frames, in the tests' environment."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        super().__init__(args, env=env or server_env())


# ----- a tiny model that knows the tiny corpus -------------------------------------------------

_TRAINED: dict[str, Path] = {}


def _examples(tokenizer: Any, samples: list[str], rng: random.Random) -> list[list[int]]:
    """Plain samples plus SPM FIM splits at token starts: at each line's first token and a few more.

    The server heals the prefix's last token (its prompt stops at a token start and the middle
    re-spells that token), so the tiny model learns FIM at token boundaries.
    """
    eos = tokenizer.eos_token_id
    has_fim = "<fim_middle>" in tokenizer.get_vocab()
    out = [[*tokenizer.encode(s), eos] for s in samples]
    if not has_fim:
        return out
    for s in samples:
        starts = [start for start, _ in tokenizer(s, return_offsets_mapping=True)["offset_mapping"]][1:]
        line_starts = {t for t in starts if s[t] == "\n" or s[t - 1] == "\n"}
        cuts = line_starts | set(rng.sample(starts, min(6, len(starts))))
        for p in sorted(cuts):
            # the middle: the rest of the line (with or without its line break) or of the sample
            line_end = s.find("\n", p + 1)
            q = len(s) if line_end < 0 else rng.choice([line_end, line_end + 1, len(s)])
            middle, suffix = s[p:q], s[q:]
            text = f"<fim_suffix>{suffix}<fim_prefix>{s[:p]}<fim_middle>{middle}"
            out.append([*tokenizer.encode(text), eos])
    return out
    for s in samples:
        cuts = {i + 1 for i, c in enumerate(s) if c == "\n"} | {rng.randrange(len(s)) for _ in range(6)}
        for p in sorted(cuts):
            line_end = s.find("\n", p)
            q = len(s) if line_end < 0 else line_end + 1
            if rng.random() < 0.5:
                q = len(s)
            middle, suffix = s[p:q], s[q:]
            text = f"<fim_suffix>{suffix}<fim_prefix>{s[:p]}<fim_middle>{middle}"
            out.append([*tokenizer.encode(text), eos])
    return out


def trained_model_dir(base_dir: Path, out_dir: Path, *, steps: int = 150, seed: int = 0) -> Path:
    """Copy `base_dir`'s tiny model to `out_dir` after `steps` of AdamW on the tiny corpus."""
    key = f"{base_dir}:{steps}:{seed}"
    if key in _TRAINED:
        return _TRAINED[key]
    import torch
    from tiny_model import JS_SAMPLES
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    torch.set_num_threads(1)  # the test machine's cores are shared: more threads only contend
    rng = random.Random(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), use_safetensors=True)
    data = _examples(tokenizer, JS_SAMPLES, rng)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        batch = rng.sample(data, min(16, len(data)))
        width = max(len(x) for x in batch)
        ids = torch.tensor([x + [tokenizer.eos_token_id] * (width - len(x)) for x in batch])
        labels = torch.tensor([x + [-100] * (width - len(x)) for x in batch])
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    _TRAINED[key] = out_dir
    return out_dir
