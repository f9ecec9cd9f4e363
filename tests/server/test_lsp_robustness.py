"""Bad input over real stdio: every request is answered, and the server keeps serving.

Uses raw frames (lsp_wire.RawServer) because a well-behaved client cannot send malformed JSON,
junk bytes or wrongly typed params. Every test also checks that stdout held only LSP frames.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lsp_wire import RawServer, server_command, server_env, trained_model_dir

from benchmarks.lsp_client import frame

INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR, METHOD_NOT_FOUND = -32602, -32600, -32700, -32601
ADD = "function add(a, b) {\n\n}\n"


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RawServer]:
    model = trained_model_dir(tiny_model_dir, tmp_path_factory.mktemp("trained"))
    srv = RawServer(server_command(model, "--max-new-tokens", "8"))
    srv.initialize()
    yield srv
    assert srv.close() == 0
    assert srv.reader.junk == []  # nothing but LSP frames on stdout, ever


def inline_params(uri: str, line: int = 0, character: int = 0) -> dict:
    return {
        "textDocument": {"uri": uri},
        "position": {"line": line, "character": character},
        "context": {"triggerKind": 2},
    }


def wait_loaded(server: RawServer, timeout: float = 120.0) -> None:
    """Until the model (loading since `initialized`) is ready."""
    deadline = time.monotonic() + timeout
    while not server.request("codeparrot/stats", None)["result"]["model"]["loaded"]:
        assert time.monotonic() < deadline, "the model did not load"
        time.sleep(0.1)


def assert_alive(server: RawServer) -> None:
    uri = "file:///alive.js"
    server.open(uri, ADD)
    reply = server.request("textDocument/inlineCompletion", inline_params(uri, 1, 0))
    assert "result" in reply and reply["result"]["items"], reply


def test_unknown_document(server: RawServer) -> None:
    reply = server.request("textDocument/inlineCompletion", inline_params("file:///nope.js"))
    assert reply["error"]["code"] == INVALID_PARAMS and "not open" in reply["error"]["message"]


def test_position_out_of_range(server: RawServer) -> None:
    server.open("file:///short.js", "let a;\n")
    reply = server.request("textDocument/completion", inline_params("file:///short.js", 5, 0))
    assert reply["error"]["code"] == INVALID_PARAMS  # a line past the end: out of sync
    # A character past the end of its line is the line's end (LSP Position), answered.
    reply = server.request("textDocument/completion", inline_params("file:///short.js", 0, 99))
    assert "result" in reply and reply["result"]["isIncomplete"], reply


@pytest.mark.parametrize(
    "position",
    [{"line": -1, "character": 0}, {"line": "zero", "character": 0}, None, {"line": 0}],
)
def test_wrong_param_types_get_invalid_params(server: RawServer, position: object) -> None:
    params = {
        "textDocument": {"uri": "file:///short.js"},
        "position": position,
        "context": {"triggerKind": 1},
    }
    reply = server.request("textDocument/inlineCompletion", params)
    assert (
        reply["error"]["code"] == INVALID_PARAMS
        and "textDocument/inlineCompletion" in reply["error"]["message"]
    )


def test_malformed_json_and_binary_junk(server: RawServer) -> None:
    server.send(frame(b'{"jsonrpc": "2.0", "id": 7, "method": '), raw=True)
    assert server.reader.next(30)["error"]["code"] == PARSE_ERROR
    server.send(frame(bytes(range(256)) * 4), raw=True)
    assert server.reader.next(30)["error"]["code"] == PARSE_ERROR
    server.send(b"\x00\xff garbage without a header\r\n", raw=True)
    server.send({"id": 8, "method": "shutdown"})  # no "jsonrpc": not JSON-RPC 2.0
    reply = server.reader.next(30)
    assert reply["id"] == 8 and reply["error"]["code"] == INVALID_REQUEST
    server.send(frame(b"[1, 2, 3]"), raw=True)
    assert server.reader.next(30)["error"]["code"] == INVALID_REQUEST
    reply = server.request("no/suchMethod", {})
    assert reply["error"]["code"] == METHOD_NOT_FOUND
    assert_alive(server)


def test_bad_notifications_are_survived(server: RawServer) -> None:
    server.notify("textDocument/didOpen", {"textDocument": {"uri": 5}})
    server.notify(
        "textDocument/didChange",
        {"textDocument": {"uri": "file:///ghost.js", "version": 2}, "contentChanges": [{"text": "x"}]},
    )
    server.notify("workspace/didChangeConfiguration", {"settings": ["not", "an", "object"]})
    server.notify("$/cancelRequest", {"id": {"bad": "id"}})
    assert_alive(server)


def test_huge_document(server: RawServer) -> None:
    line = "const value = compute(alpha, beta, gamma); // padding padding padding\n"
    text = line * (5_000_000 // len(line) + 1) + "function add(a, b) {\n"
    assert len(text) >= 5_000_000
    server.open("file:///huge.js", text)
    last = text.count("\n")
    reply = server.request(
        "textDocument/inlineCompletion", inline_params("file:///huge.js", last, 0), timeout=120
    )
    assert "result" in reply
    server.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": "file:///huge.js", "version": 2},
            "contentChanges": [
                {
                    "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 5}},
                    "text": "let",
                }
            ],
        },
    )
    reply = server.request("textDocument/completion", inline_params("file:///huge.js", last, 0), timeout=120)
    assert "result" in reply
    server.notify("textDocument/didClose", {"textDocument": {"uri": "file:///huge.js"}})


@pytest.fixture(scope="module")
def slow_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RawServer]:
    """The server with each forward pass 20 ms slower: a request lives long enough to be cancelled."""
    model = trained_model_dir(tiny_model_dir, tmp_path_factory.mktemp("trained"))
    srv = RawServer(
        server_command(model, "--max-new-tokens", "8"),
        env=server_env(CODEPARROT_TEST_FAULTS="generate-slow:20"),
    )
    # The model alone: with the file's own ∞-gram mixing on, the burst answers and cancels just the
    # same (rechecked; an earlier run with none cancelled did not reproduce), but the trained tiny
    # model's completion in ADD's empty body is then empty, and `assert_alive` needs a completion.
    srv.initialize({"codeparrot": {"workspaceIndex": "off"}})
    wait_loaded(srv)  # the burst is about cancelling generations, not waiting for a load
    yield srv
    assert srv.close() == 0
    assert srv.reader.junk == []


def test_a_thousand_request_cancel_pairs(slow_server: RawServer) -> None:
    server = slow_server
    uri = "file:///burst.js"
    server.open(uri, ADD)
    first = 50_000
    burst = bytearray()
    for i in range(first, first + 1000):
        method = "textDocument/inlineCompletion" if i % 2 else "textDocument/completion"
        burst += frame({"jsonrpc": "2.0", "id": i, "method": method, "params": inline_params(uri, 1, 0)})
        burst += frame({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": i}})
    server.send(bytes(burst), raw=True)
    answered: dict[int, dict] = {}
    while len(answered) < 1000:
        message = server.reader.next(120)
        if isinstance(message.get("id"), int) and message["id"] >= first:
            assert message["id"] not in answered  # exactly one answer each
            answered[message["id"]] = message
    cancelled = [m for m in answered.values() if m.get("error", {}).get("code") == -32800]
    assert all("result" in m or m["error"]["code"] == -32800 for m in answered.values())
    assert len(cancelled) > 0
    stats = server.request("codeparrot/stats", None)["result"]
    assert stats["cancelled"] > 0
    assert_alive(server)


def test_stdout_carries_only_frames_so_far(server: RawServer) -> None:
    assert server.reader.junk == []
    assert json.loads(json.dumps(server.request("codeparrot/stats", None)))["result"]["requests"] >= 1


def test_out_of_memory_during_generation(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    model = trained_model_dir(tiny_model_dir, tmp_path_factory.mktemp("trained"))
    srv = RawServer(server_command(model), env=server_env(CODEPARROT_TEST_FAULTS="generate-oom:1"))
    try:
        srv.initialize()
        wait_loaded(srv)
        srv.open("file:///oom.js", ADD)
        first = srv.request("textDocument/inlineCompletion", inline_params("file:///oom.js", 1, 0))
        assert first["result"]["items"] == []
        warnings = [n for n in srv.notifications if n["method"] == "window/logMessage"]
        assert any("failed" in n["params"]["message"].lower() for n in warnings)
        second = srv.request("textDocument/inlineCompletion", inline_params("file:///oom.js", 1, 0))
        assert second["result"]["items"], "the server recovers after the OOM"
    finally:
        assert srv.close() == 0
    assert srv.reader.junk == []
