"""Prints the VS Code end-to-end figures (wall time, keystroke → ghost text latency) after the run."""

from __future__ import annotations

import json
from typing import Any

import pytest

_REPORT = pytest.StashKey[dict[str, Any]]()


@pytest.fixture
def e2e_report(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A dict the test fills with its figures; shown in the terminal summary."""
    return request.config.stash.setdefault(_REPORT, {})


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    report = config.stash.get(_REPORT, {})
    if report:
        terminalreporter.section("VS Code end to end (tests/e2e)")
        terminalreporter.write_line(json.dumps(report, indent=2, ensure_ascii=False))
