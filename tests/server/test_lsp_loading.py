"""Model loading end to end: $/progress during the load (from `initialized`), load failures, retry,
copying from open documents while loading, and TCP mode."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from lsp_wire import REPO, server_command, server_env
from lsprotocol import types
from pytest_lsp import client_capabilities, make_test_lsp_client

from benchmarks.lsp_client import FrameReader, frame

ADD = "function add(a, b) {\n\n}\n"
URI = "file:///load/add.js"


async def start(model: Path | str) -> Any:
    client = make_test_lsp_client()
    await client.start_io(*server_command(model), cwd=REPO, env=server_env())
    await client.initialize_session(
        types.InitializeParams(capabilities=client_capabilities("visual-studio-code"))
    )
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=URI, language_id="javascript", version=1, text=ADD)
        )
    )
    return client


async def complete(client: Any) -> list[types.InlineCompletionItem]:
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=URI),
            position=types.Position(line=1, character=0),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
    )
    return list(result.items)


@pytest.mark.asyncio
async def test_the_model_loads_from_initialized_with_progress(trained_dir: Path) -> None:
    client = await start(trained_dir)
    try:
        # No completion asked yet: the load began at `initialized`, with a progress bar.
        deadline = time.monotonic() + 120
        while not any(r and r[-1].kind == "end" for r in client.progress_reports.values()):
            assert time.monotonic() < deadline, client.progress_reports
            await asyncio.sleep(0.1)
        stats = await client.protocol.send_request_async("codeparrot/stats", None)
        assert stats.model.loaded and stats.requests == 0
        items = await complete(client)
        assert items and "return" in str(items[0].insert_text)
        (reports,) = client.progress_reports.values()
        kinds = [r.kind for r in reports]
        assert kinds[0] == "begin" and kinds[-1] == "end" and "report" in kinds
        assert "loading model" in reports[0].title
        assert reports[-1].message == "Model ready"
        await complete(client)
        assert len(client.progress_reports) == 1  # loaded once
    finally:
        await client.shutdown_session()
        await client.stop()


@pytest.mark.asyncio
async def test_load_failure_is_shown_and_a_setting_change_retries(tmp_path: Path, trained_dir: Path) -> None:
    client = await start(tmp_path / "no-such-model")
    try:
        assert await complete(client) == []
        errors = [m for m in client.messages if m.type == types.MessageType.Error]
        assert len(errors) == 1 and "model" in errors[0].message.lower()
        stats = await client.protocol.send_request_async("codeparrot/stats", None)
        assert stats.model.loaded is False  # still serving
        assert await complete(client) == []
        assert len([m for m in client.messages if m.type == types.MessageType.Error]) == 1  # not re-shown

        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"codeparrot": {"model": str(trained_dir)}})
        )
        items = await complete(client)
        assert items and "return" in str(items[0].insert_text)
    finally:
        await client.shutdown_session()
        await client.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening_addresses(pid: int, port: int) -> set[str]:
    """The local addresses `pid` listens on at `port` (from the kernel's socket table)."""
    import psutil

    return {
        c.laddr.ip
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }


def test_tcp_mode(trained_dir: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*server_command(trained_dir), "--tcp", f"127.0.0.1:{port}"],
        cwd=REPO,
        env=server_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        sock.settimeout(None)  # the reader thread blocks while the model loads
        reader = FrameReader(sock)
        assert _listening_addresses(proc.pid, port) == {"127.0.0.1"}  # bound to the host given, not 0.0.0.0

        def request(msg_id: int, method: str, params: Any) -> dict[str, Any]:
            sock.sendall(frame({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}))
            while (reply := reader.next(60)).get("id") != msg_id or "method" in reply:
                pass
            return reply

        init = request(1, "initialize", {"processId": None, "rootUri": None, "capabilities": {}})
        assert "inlineCompletionProvider" in init["result"]["capabilities"]
        sock.sendall(frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
        doc = {"uri": URI, "languageId": "javascript", "version": 1, "text": ADD}
        sock.sendall(
            frame({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": doc}})
        )
        params = {
            "textDocument": {"uri": URI},
            "position": {"line": 1, "character": 0},
            "context": {"triggerKind": 1},
        }
        reply = request(2, "textDocument/inlineCompletion", params)
        assert "return" in reply["result"]["items"][0]["insertText"]
        request(3, "shutdown", None)
        sock.sendall(frame({"jsonrpc": "2.0", "method": "exit", "params": None}))
        sock.close()
        proc.wait(timeout=30)
        assert proc.stdout is not None and proc.stdout.read() == b""  # TCP mode: stdout stays empty
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


HELPER_URI = "file:///load/cart.js"
HELPER = "function cartTotal(items) {\n  const total = items.reduce((sum, item) => sum + item.price, 0);\n  return total;\n}\n"
MAIN_URI = "file:///load/order.js"
MAIN = "function orderTotal(order) {\n  const total = order.items.reduce((sum, \n}\n"


@pytest.mark.asyncio
async def test_while_the_model_loads_completions_copy_from_the_open_documents(trained_dir: Path) -> None:
    client = make_test_lsp_client()
    env = server_env(CODEPARROT_TEST_FAULTS="load-slow:3000")  # the model takes 3 s more to load
    await client.start_io(*server_command(trained_dir), cwd=REPO, env=env)
    try:
        await client.initialize_session(
            types.InitializeParams(capabilities=client_capabilities("visual-studio-code"))
        )
        for uri, text in ((HELPER_URI, HELPER), (MAIN_URI, MAIN)):
            client.text_document_did_open(
                types.DidOpenTextDocumentParams(
                    text_document=types.TextDocumentItem(
                        uri=uri, language_id="javascript", version=1, text=text
                    )
                )
            )
        cursor = types.Position(line=1, character=MAIN.split("\n")[1].index("(sum, ") + 6)
        params = types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=MAIN_URI),
            position=cursor,
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
        start = time.monotonic()
        result = await client.text_document_inline_completion_async(params)
        waited = time.monotonic() - start
        assert [item.insert_text for item in result.items] == ["item) => sum + item.price, 0);"]
        assert waited < 3  # answered from the other open file, not after the load
        stats = await client.protocol.send_request_async("codeparrot/stats", None)
        assert stats.model.loading and not stats.model.loaded
        assert stats.copy_while_loading.answered == 1 and stats.requests == 0  # the model's own count

        # Once the model is there, it answers (and the copy fallback is no longer asked).
        deadline = time.monotonic() + 120
        while not stats.model.loaded:
            assert time.monotonic() < deadline, stats
            await asyncio.sleep(0.2)
            stats = await client.protocol.send_request_async("codeparrot/stats", None)
        again = await client.text_document_inline_completion_async(params)
        assert [item.insert_text for item in again.items] == ["item) => sum + item.price, 0);"]
        stats = await client.protocol.send_request_async("codeparrot/stats", None)
        assert stats.requests == 1  # the model's completer (which copies the same sure line)
        assert stats.copy_while_loading.requests == 1 and stats.copy_while_loading.answered == 1
    finally:
        await client.shutdown_session()
        await client.stop()
