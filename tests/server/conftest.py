"""Fixtures shared by the server's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.engines.pytorch import TorchEngine
from server.settings import Settings


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> TorchEngine:
    """The tiny random GPT-2, loaded on the CPU once per test module (its KV caches are per module)."""
    eng = TorchEngine(Settings(model=str(tiny_model_dir), device="cpu"))
    eng.load()
    return eng
