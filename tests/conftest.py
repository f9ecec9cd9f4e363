"""Shared fixtures: tiny real models built once per test session, and an offline hub."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

# No test may reach a model or data hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# GGUF conversions of the llama.cpp engine go to a fresh folder per run, never the user's cache.
os.environ.setdefault("CODEPARROT_CACHE_DIR", tempfile.mkdtemp(prefix="codeparrot-cache-"))

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent / "server"))  # lsp_wire: raw LSP client, trained tiny model
sys.path.insert(0, str(Path(__file__).parents[1]))  # benchmarks.lsp_client: the stdio client lsp_wire shares

from tiny_model import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer GPT-2 with a real byte-level BPE tokenizer that has FIM tokens."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-fim"))


@pytest.fixture(scope="session")
def tiny_model_dir_no_fim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same shape, but the tokenizer has no FIM tokens (prefix-only prompts)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-nofim"), fim=False)


@pytest.fixture(scope="session")
def trained_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny GPT-2 trained for a few seconds on the tiny corpus, so that it actually completes.

    Random weights produce noise that post-processing rightly drops; end-to-end tests (server,
    CLI, VS Code protocol, Neovim) need a model whose completions survive it. Trained once per
    session (tests/server/lsp_wire.py caches per base model).
    """
    from lsp_wire import trained_model_dir

    return trained_model_dir(tiny_model_dir, tmp_path_factory.mktemp("trained"))
