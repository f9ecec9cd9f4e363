"""The VS Code extension's npm scripts, run the way CI runs everything: through pytest.

`npm ci` must have run first (the README's install command does it); these tests fail, not skip,
when node_modules is missing. The e2e part of `npm test` starts the real server with this
Python and the session's trained tiny model.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NPM_TIMEOUT_S = 540  # build/lint take seconds; `npm test` loads a model; vsce scans the tree


def _npm(script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is not on PATH: install Node.js 20+ to build the VS Code extension")
    if not (REPO / "node_modules" / ".package-lock.json").exists():
        pytest.fail(
            f"{REPO / 'node_modules'} is missing: run `npm ci` in {REPO} (the README install command does)"
        )
    proc = subprocess.run(
        [npm, "run", script],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT_S,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"`npm run {script}` exited {proc.returncode}\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def test_build_bundles_the_extension() -> None:
    _npm("build")
    bundle = (REPO / "out" / "extension.js").read_text(encoding="utf-8")
    assert "codeparrot.restartServer" in bundle  # our commands are in it
    assert 'require("vscode")' in bundle  # the editor's API stays external
    assert "textDocument/inlineCompletion" in bundle  # vscode-languageclient 11 (LSP 3.18) is bundled in


def test_lint_is_clean() -> None:
    _npm("lint")


@pytest.mark.slow
def test_unit_and_e2e_tests_pass(trained_dir: Path) -> None:
    proc = _npm("test", {"CODEPARROT_TEST_MODEL": str(trained_dir), "CODEPARROT_PYTHON": sys.executable})
    out = proc.stdout
    assert "# fail 0" in out or "ℹ fail 0" in out, out[-3000:]
    assert "python -m server over stdio" in out  # the e2e suite ran, not only the unit tests


@pytest.mark.slow
def test_package_bundles_the_server_wheel_in_a_small_vsix() -> None:
    _npm("package", {"CODEPARROT_PYTHON": sys.executable})  # builds the wheel with this Python
    vsix = REPO / "out" / "codeparrot-lsp.vsix"
    with zipfile.ZipFile(vsix) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("extension/package.json"))
        bundle = json.loads(zf.read("extension/out/server/manifest.json"))
        wheel = zf.read(f"extension/out/server/{bundle['wheel']}")
    assert {"extension/package.json", "extension/out/extension.js", "extension.vsixmanifest"} <= names
    assert not any(n.startswith("extension/node_modules/") or n.endswith(".py") for n in names), sorted(names)
    assert manifest["activationEvents"] == ["onLanguage:javascript", "onLanguage:javascriptreact"]
    # The wheel the extension installs: this checkout's version, the sha256 its manifest records,
    # the server and the shipped model inside.
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert bundle["name"] == "codeparrot-lsp" and bundle["version"] == project["version"]
    assert bundle["sha256"] == hashlib.sha256(wheel).hexdigest() and bundle["size"] == len(wheel)
    with zipfile.ZipFile(io.BytesIO(wheel)) as wz:
        inside = set(wz.namelist())
    assert {
        "server/__main__.py",
        "server/models/default/model.safetensors",
        "server/models/default/tokenizer.json",
    } <= inside
    assert vsix.stat().st_size < 40_000_000, vsix.stat().st_size


def test_setup_pins_the_torch_the_readme_pins() -> None:
    """The extension's setup installs the CPU torch release that the README's install command pins."""
    readme_pin = re.search(r"torch==(\S+)", (REPO / "README.md").read_text(encoding="utf-8").splitlines()[1])
    venv_ts = (REPO / "extension" / "src" / "venv.ts").read_text(encoding="utf-8")
    extension_pin = re.search(r'export const TORCH_VERSION = "([^"]+)"', venv_ts)
    assert readme_pin and extension_pin and readme_pin.group(1) == extension_pin.group(1)
