"""The real server over stdio with `codeparrot.backend: "openai"` against a fake engine (a real
HTTP server streaming server-sent events, failing on demand): the same pipeline, its own stats
stage, one message per outage, URL rules, and the API key kept out of every log."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from fake_engine import Engine, serve
from lsp_wire import REPO, server_command, server_env
from lsprotocol import types
from pytest_lsp import client_capabilities, make_test_lsp_client

URI = "file:///team/sum.js"
TEXT = "function sum(xs) {\n  let total = \n  return total;\n}\n"
CURSOR = types.Position(line=1, character=14)  # after `let total = `
SECRET = "sk-team-secret-0123456789"


async def start(model: Path, options: dict[str, Any], log_file: Path | None = None) -> Any:
    client = make_test_lsp_client()
    flags = ["--log-file", str(log_file), "--log-level", "DEBUG"] if log_file else []
    await client.start_io(*server_command(model, *flags), cwd=REPO, env=server_env(TEAM_LLM_KEY=SECRET))
    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"), initialization_options=options
        )
    )
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=URI, language_id="javascript", version=1, text=TEXT)
        )
    )
    return client


async def complete(client: Any, position: types.Position = CURSOR) -> str | None:
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=URI),
            position=position,
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
    )
    return str(result.items[0].insert_text) if result.items else None


def warnings(client: Any) -> list[str]:
    return [m.message for m in client.messages if m.type == types.MessageType.Warning]


@pytest.mark.asyncio
async def test_completions_come_from_the_engine_through_the_same_pipeline(trained_dir: Path, tmp_path: Path) -> None:
    engine = Engine()
    engine.chunks = ["0", ";", "\n", "  total", " += 1;"]  # single-line: the stop check ends at the newline
    with serve(engine) as (_, url):
        options = {"backend": "openai", "backendUrl": url, "backendModel": "team-js", "maxNewTokens": 24,
                   "backendApiKeyEnv": "TEAM_LLM_KEY"}
        log_file = tmp_path / "server.log"
        client = await start(trained_dir, options, log_file)
        try:
            assert await complete(client) == "0;"
            body = engine.bodies[-1]
            assert body["prompt"] == TEXT[: TEXT.index("= ") + 2]  # the text before the cursor
            assert (body["model"], body["max_tokens"], body["temperature"], body["stream"]) == ("team-js", 24, 0, True)
            assert "suffix" not in body  # codeparrot.fim off (the default)
            assert engine.headers[-1]["Authorization"] == f"Bearer {SECRET}"

            # Same place again: the completion cache answers, the engine is not asked.
            assert await complete(client) == "0;"
            assert len(engine.bodies) == 1

            stats = await client.protocol.send_request_async("codeparrot/stats", None)
            assert stats.model.backend == "openai" and stats.model.loaded
            assert stats.stages_ms.backend.count == 1
            assert not hasattr(stats.stages_ms, "generate")  # the local model never ran

            client.workspace_did_change_configuration(
                types.DidChangeConfigurationParams(settings={"codeparrot": {"fim": "auto"}})
            )
            engine.chunks = ["1", ";"]
            assert await complete(client) == "1;"
            assert engine.bodies[-1]["suffix"] == TEXT[TEXT.index("= ") + 2 :]
        finally:
            await client.shutdown_session()
            await client.stop()
    log = log_file.read_text(encoding="utf-8")
    assert "openai" in log or url in log  # the log is real and at DEBUG ...
    assert SECRET not in log  # ... and the key never reaches it


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["500", "badjson", "cut", "down"])
async def test_an_outage_is_told_once_and_completions_resume(trained_dir: Path, mode: str) -> None:
    engine = Engine()
    engine.chunks = ["0", ";"]
    with serve(engine) as (_, url):
        engine.mode = mode
        if mode == "down":
            import socket

            with socket.socket() as s:  # bound, never listening: connection refused
                s.bind(("127.0.0.1", 0))
                backend_url = f"http://127.0.0.1:{s.getsockname()[1]}"
        else:
            backend_url = url
        client = await start(trained_dir, {"backend": "openai", "backendUrl": backend_url, "backendTimeoutMs": 1000})
        try:
            for line in range(3):  # three keystrokes in three places: no cache can answer
                assert await complete(client, types.Position(line=line, character=0)) is None
            assert len(warnings(client)) == 1, warnings(client)
            stats = await client.protocol.send_request_async("codeparrot/stats", None)
            assert stats.backend_errors >= 1 and stats.requests == 3  # still serving, counted

            engine.mode = "ok"  # the engine is back; the backoff (0.5 s, then 1 s) runs out
            if mode == "down":
                client.workspace_did_change_configuration(
                    types.DidChangeConfigurationParams(settings={"codeparrot": {"backendUrl": url}})
                )
            deadline = time.monotonic() + 10
            got = None
            while got is None and time.monotonic() < deadline:
                await asyncio.sleep(0.3)
                got = await complete(client)
            assert got == "0;"
            assert len(warnings(client)) == 1  # recovering is not another message
        finally:
            await client.shutdown_session()
            await client.stop()


@pytest.mark.asyncio
async def test_a_url_off_this_machine_is_refused_and_the_previous_one_kept(trained_dir: Path) -> None:
    engine = Engine()
    engine.chunks = ["0", ";"]
    with serve(engine) as (_, url):
        client = await start(trained_dir, {"backend": "openai", "backendUrl": url})
        try:
            client.workspace_did_change_configuration(
                types.DidChangeConfigurationParams(
                    settings={"codeparrot": {"backendUrl": "http://192.168.1.20:8080"}}
                )
            )
            assert await complete(client) == "0;"  # still the previous engine
            errors = [m.message for m in client.messages if m.type == types.MessageType.Error]
            assert len(errors) == 1 and "codeparrot.backendUrl" in errors[0] and "https://" in errors[0]
            assert url in errors[0]  # "keeping '<previous url>'"
        finally:
            await client.shutdown_session()
            await client.stop()


@pytest.mark.asyncio
async def test_openai_without_a_url_says_so_once_and_serves_nothing(trained_dir: Path) -> None:
    client = await start(trained_dir, {"backend": "openai"})
    try:
        assert await complete(client) is None
        assert await complete(client, types.Position(line=2, character=0)) is None
        errors = [m.message for m in client.messages if m.type == types.MessageType.Error]
        assert len(errors) == 1 and "backendUrl is empty" in errors[0]
        # Back to the local model: completions from the model in the process again.
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"codeparrot": {"backend": "local"}})
        )
        stats = await client.protocol.send_request_async("codeparrot/stats", None)
        assert stats.model.backend == "local"
        deadline = time.monotonic() + 60
        while not (stats.model.loaded and hasattr(stats.stages_ms, "generate")):  # copies while it loads
            assert time.monotonic() < deadline, stats
            await complete(client, types.Position(line=2, character=0))
            stats = await client.protocol.send_request_async("codeparrot/stats", None)
    finally:
        await client.shutdown_session()
        await client.stop()
