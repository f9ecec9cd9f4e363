"""A real engine: llama.cpp's OpenAI-compatible server (llama-cpp-python) serving the shipped model,
converted to GGUF in a fixture (`training.export_gguf`), started on 127.0.0.1 and stopped by pid.

`bash tests/engines/setup.sh` installs the engine (the README's test command runs it); where it is
not installed these tests are skipped, never replaced by a mock (the fake engine in
test_lsp_backend.py covers the failures a real engine will not produce on demand).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from lsp_wire import REPO, server_command, server_env
from lsprotocol import types
from pytest_lsp import client_capabilities, make_test_lsp_client

from server.backends import BackendRequest
from server.backends.openai import OpenAIBackend
from server.engines.pytorch import TorchEngine
from server.models import DEFAULT_MODEL_DIR
from server.settings import Settings

pytest.importorskip("llama_cpp.server", reason="the real engine: run `bash tests/engines/setup.sh`")
pytestmark = pytest.mark.shipped_model

PROMPT = "function add(a, b) {\n  return"
START_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    gguf = tmp_path_factory.mktemp("gguf") / "codeparrot-js.gguf"
    subprocess.run(
        [sys.executable, "-m", "training.export_gguf", str(DEFAULT_MODEL_DIR), str(gguf)],
        cwd=REPO, env=server_env(), check=True, timeout=300,
    )
    port = _free_port()
    log = (tmp_path_factory.mktemp("llama") / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "1024", "--n_threads", "2"],
        stdout=log, stderr=subprocess.STDOUT, env=server_env(),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert proc.poll() is None, f"llama.cpp server exited with {proc.returncode}: see {log.name}"
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "llama.cpp server did not start"
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, 9)
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def local() -> TorchEngine:
    engine = TorchEngine(Settings(device="cpu"))
    engine.load()
    return engine


def test_the_engine_streams_the_same_greedy_text_as_the_model_in_process(llama_url: str, local: TorchEngine) -> None:
    # The backend sends repeat_penalty 1.0: llama-cpp-python's default 1.1 turned the 12th token
    # `b` into `a` (measured), which is no longer the model's greedy text.
    # A generous read timeout: the engine's first request warms it up, slowly on a busy machine.
    result = OpenAIBackend(llama_url, timeout_s=30).complete(BackendRequest(PROMPT, 16))
    assert result.error is None and result.finish_reason in ("length", "stop"), result
    ids = local.tokenizer(PROMPT)["input_ids"]
    expected = local.generate(ids, max_new_tokens=16)  # plain greedy on the same ids (no healing)
    assert result.text and result.text == expected.text


def test_a_stop_check_and_a_cancel_close_the_stream_and_the_engine_keeps_serving(llama_url: str) -> None:
    backend = OpenAIBackend(llama_url, timeout_s=30)
    stopped = backend.complete(BackendRequest(PROMPT, 64, stop_check=lambda text: len(text) >= 3))
    assert stopped.finish_reason == "stop_check" and len(stopped.text) >= 3
    cancel = threading.Event()
    seen: list[str] = []

    def cancel_after_first_token(text: str) -> bool:
        seen.append(text)
        cancel.set()
        return False

    gone = backend.complete(BackendRequest(PROMPT, 64, cancel=cancel, stop_check=cancel_after_first_token))
    assert gone.cancelled and gone.text == "" and len(seen) == 1
    again = backend.complete(BackendRequest(PROMPT, 12))
    assert again.error is None and again.text


@pytest.mark.asyncio
async def test_the_language_server_completes_through_llama_cpp(llama_url: str, local: TorchEngine) -> None:
    text = (REPO / "examples" / "hello.js").read_text(encoding="utf-8")
    client: Any = make_test_lsp_client()
    await client.start_io(*server_command(DEFAULT_MODEL_DIR), cwd=REPO, env=server_env())
    try:
        await client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities("visual-studio-code"),
                initialization_options={"backend": "openai", "backendUrl": llama_url},
            )
        )
        uri = "file:///llama/hello.js"
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(uri=uri, language_id="javascript", version=1, text=text)
            )
        )
        result = await client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=3, character=21),  # `complete examples/hello.js:4:22`
                context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
            )
        )
        assert result.items, "no completion from llama.cpp"
        completion = str(result.items[0].insert_text)
        assert "\n" not in completion and completion.strip()
        stats = await client.protocol.send_request_async("codeparrot/stats", None)
        assert stats.stages_ms.backend.count == 1 and stats.model.backend == "openai"
        assert not client.messages or all(m.type != types.MessageType.Error for m in client.messages)
    finally:
        await client.shutdown_session()
        await client.stop()
