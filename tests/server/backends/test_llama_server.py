"""A real engine: llama.cpp's OpenAI-compatible server (llama-cpp-python) serving the shipped model,
converted to GGUF in a fixture (`benchmarks/llama_server.py`, which the remote-workspace benchmark
starts it with too), on 127.0.0.1, stopped by pid.

`bash tests/engines/setup.sh` installs the engine (the README's test command runs it); where it is
not installed these tests are skipped, never replaced by a mock (the fake engine in
test_lsp_backend.py covers the failures a real engine will not produce on demand).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lsp_wire import REPO, server_command, server_env
from lsprotocol import types
from pytest_lsp import client_capabilities, make_test_lsp_client

from benchmarks.llama_server import llama_server
from server.backends import BackendRequest
from server.backends.openai import OpenAIBackend
from server.build import build_completer, early_tokenizer
from server.engines.pytorch import TorchEngine
from server.models import DEFAULT_MODEL_DIR
from server.settings import Settings
from training.line_eval import repo_index

pytest.importorskip("llama_cpp.server", reason="the real engine: run `bash tests/engines/setup.sh`")
pytestmark = pytest.mark.shipped_model

PROMPT = "function add(a, b) {\n  return"
START_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def llama_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with llama_server(
        DEFAULT_MODEL_DIR,
        tmp_path_factory.mktemp("llama"),
        threads=2,
        env=server_env(),
        start_timeout_s=START_TIMEOUT_S,
    ) as url:
        yield url


@pytest.fixture(scope="module")
def local() -> TorchEngine:
    engine = TorchEngine(Settings(device="cpu"))
    engine.load()
    return engine


def test_the_engine_streams_the_same_greedy_text_as_the_model_in_process(
    llama_url: str, local: TorchEngine
) -> None:
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


def test_the_engine_scores_each_token_it_streams_when_asked(llama_url: str) -> None:
    backend = OpenAIBackend(llama_url, timeout_s=30)
    plain = backend.complete(BackendRequest(PROMPT, 8))
    scored = backend.complete(BackendRequest(PROMPT, 8, logprobs=5))
    assert plain.tokens is None and scored.text == plain.text  # asking changes nothing but the scores
    assert scored.tokens is not None and "".join(t.text for t in scored.tokens) == scored.text
    for token in scored.tokens:  # greedy: each token is its own likeliest alternative
        assert token.logprob <= 0.0 and 1 <= len(token.top) <= 6
        assert token.top[token.text] == pytest.approx(token.logprob) == pytest.approx(max(token.top.values()))


# Two occurrences of each tail, going on two ways: neither a sure copy nor a majority, so the
# engine is asked and its log-probabilities decide.
LOOPS = (
    "function a(arr) {\n  for (let i = 0; i < arr.size; i++) {\n  }\n}\n"
    "function b(arr) {\n  for (let i = 0; i < arr.count; i++) {\n  }\n}\n"
)
THROWS = "function a(err) {\n  if (err) throw zorblax;\n}\nfunction b(err) {\n  if (err) throw quuxed;\n}\n"


def test_a_split_workspace_copy_replaces_the_engine_only_where_the_engine_is_unsure(
    llama_url: str, tmp_path: Path
) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "loops.js").write_text(LOOPS)
    (tmp_path / "lib" / "throws.js").write_text(THROWS)
    settings = dataclasses.replace(
        Settings(),
        backend="openai",
        backend_url=llama_url,
        backend_timeout_ms=30000,
        multiline="never",
        fim="off",
    )
    tokenizer = early_tokenizer(settings)
    completer = build_completer(settings, cache_entries=0)
    completer.use_index(repo_index(tokenizer, tmp_path), tokenizer, True)

    # `arr.` in a loop bound: the shipped model all but certain of `length` (`size` ≈ e^-9 as
    # likely): it keeps its answer over the copy `size; i++) {`.
    sure = "function f(arr) {\n  for (let i = 0; i < arr."
    kept = completer.complete(sure, len(sure), settings=settings, key="main.js")
    assert kept.source == "remote" and kept.text.startswith("length"), kept
    assert kept.backend is not None and kept.backend.tokens, "the engine was asked for log-probabilities"

    # What `throw` throws: the model is torn (its first choice `Err` at ≈ e^-1.9, `zorblax` not
    # among its five likeliest): the copy from the workspace, with its origin.
    torn = "function f(err) {\n  if (err) throw "
    copied = completer.complete(torn, len(torn), settings=settings, key="main.js")
    assert (copied.text, copied.source) == ("zorblax;", "copy"), copied
    assert "the engine unsure" in copied.reason and copied.copied_from == ("lib/throws.js", 2)
    assert (
        copied.backend is not None and copied.backend.tokens and not copied.backend.text.startswith("zorblax")
    )


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
