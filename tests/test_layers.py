"""The import layers of docs/internals.md hold: `lint-imports` (import-linter) checks the contracts
in pyproject.toml — training builds on the server and never the reverse, the server's layers from
LSP glue down to its leaves, and no import circle in either package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_import_contracts_are_kept() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert "Contracts: 3 kept, 0 broken." in done.stdout, done.stdout + done.stderr
    assert done.returncode == 0
