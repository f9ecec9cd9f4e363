"""Fixtures of the VS Code end-to-end tests, and their figures (wall time, keystroke → ghost text
latency, setup time) printed after the run."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vscode_harness import FILE_TEXT  # beside this file (pytest puts this folder on sys.path)

_REPORT = pytest.StashKey[dict[str, Any]]()


@pytest.fixture
def e2e_report(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A dict the test fills with its figures; shown in the terminal summary."""
    return request.config.stash.setdefault(_REPORT, {})


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "project"
    ws.mkdir()
    (ws / "sum.js").write_text(FILE_TEXT, encoding="utf-8")
    return ws


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """TMPDIR for code-server and the browser: VS Code puts its Unix sockets there, and a socket
    path must stay under ~107 bytes (pytest's tmp_path can be longer). Removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="cp-e2e-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    report = config.stash.get(_REPORT, {})
    if report:
        terminalreporter.section("VS Code end to end (tests/e2e)")
        terminalreporter.write_line(json.dumps(report, indent=2, ensure_ascii=False))
