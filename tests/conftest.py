"""Shared fixtures: tiny real models built once per test session, and an offline hub."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# No test may reach a model or data hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).parent))

from tiny_model import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer GPT-2 with a real byte-level BPE tokenizer that has FIM tokens."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-fim"))


@pytest.fixture(scope="session")
def tiny_model_dir_no_fim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same shape, but the tokenizer has no FIM tokens (prefix-only prompts)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-nofim"), fim=False)
