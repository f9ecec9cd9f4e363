"""A tiny model that actually completes: the session's tiny GPT-2 trained for a few seconds.

Random weights produce noise that the server's post-processing rightly drops, so an editor would
show nothing. The training helper is the server tests' own (tests/server/lsp_wire.py); it caches
per base model, so the whole session trains once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from lsp_wire import trained_model_dir


@pytest.fixture(scope="session")
def trained_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_model_dir(tiny_model_dir, tmp_path_factory.mktemp("trained"))
