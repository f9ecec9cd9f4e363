"""OpenAIBackend against a real local HTTP server (in a thread) that plays an engine's SSE stream."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fake_engine import Engine, serve

from server.backends import BackendError, BackendRequest, Health, validate_url
from server.backends.base import TokenLogprob
from server.backends.openai import OpenAIBackend


@pytest.fixture
def engine() -> Iterator[tuple[Engine, str]]:
    with serve() as running:
        yield running


def test_streams_completion_with_openai_body(
    engine: tuple[Engine, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, url = engine
    monkeypatch.setenv("TEAM_KEY", "sk-secret-123")
    backend = OpenAIBackend(url, "m", api_key_env="TEAM_KEY")
    result = backend.complete(BackendRequest("const x = ", 16, suffix="\n", stop=["\n\n"]))
    assert (result.text, result.cancelled, result.finish_reason) == ("foo(bar);", False, "stop")
    assert result.ms > 0
    assert state.bodies[0] == {
        "model": "m",
        "prompt": "const x = ",
        "max_tokens": 16,
        "temperature": 0,
        "repeat_penalty": 1.0,
        "stream": True,
        "stop": ["\n\n"],
        "suffix": "\n",
    }
    assert state.headers[0]["Authorization"] == "Bearer sk-secret-123"


def test_logprobs_are_asked_for_only_on_request_and_an_engine_without_them_gives_none(
    engine: tuple[Engine, str],
) -> None:
    state, url = engine
    backend = OpenAIBackend(url)
    scored = backend.complete(BackendRequest("x", 8, logprobs=5))
    assert state.bodies[-1]["logprobs"] == 5
    assert (scored.text, scored.tokens) == ("foo(bar);", None)  # this engine sends no scores
    backend.complete(BackendRequest("x", 8))
    assert "logprobs" not in state.bodies[-1]


@contextmanager
def replaying(events: list[dict[str, Any]], bodies: list[dict[str, Any]] | None = None) -> Iterator[str]:
    """A server that streams `events` as they are (then [DONE]) to any POST: its base URL. With
    `bodies`, it records the requests there and refuses those with `logprobs` (HTTP 422, as an
    engine that validates its fields strictly)."""

    class Replay(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if bodies is not None:
                bodies.append(body)
                if "logprobs" in body:
                    self.send_response(422)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for event in [*map(json.dumps, events), "[DONE]"]:
                self.wfile.write(f"data: {event}\n\n".encode())

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Replay)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_logprobs_are_read_in_the_completions_format_and_in_llama_cpps_content_format() -> None:
    completions = [  # OpenAI, vLLM, llama-cpp-python: parallel lists, a token or more an event
        {
            "choices": [
                {
                    "text": "foo(",
                    "logprobs": {
                        "tokens": ["foo", "("],
                        "token_logprobs": [-0.5, -0.1],
                        "top_logprobs": [{"foo": -0.5, "bar": -1.5}, {"(": -0.1}],
                    },
                }
            ]
        },
        {
            "choices": [
                {"text": ");", "logprobs": {"tokens": [");"], "token_logprobs": [-0.2], "top_logprobs": None}}
            ]
        },
    ]
    content = [  # llama.cpp's own server: the chat API's list
        {
            "choices": [
                {
                    "text": "foo",
                    "logprobs": {
                        "content": [
                            {
                                "token": "foo",
                                "logprob": -0.5,
                                "top_logprobs": [
                                    {"token": "foo", "logprob": -0.5},
                                    {"token": "bar", "logprob": -1.5},
                                ],
                            }
                        ]
                    },
                }
            ]
        },
    ]
    with replaying(completions) as url:
        result = OpenAIBackend(url).complete(BackendRequest("x", 8, logprobs=2))
    assert result.text == "foo();" and result.tokens == [
        TokenLogprob("foo", -0.5, {"foo": -0.5, "bar": -1.5}),
        TokenLogprob("(", -0.1, {"(": -0.1}),
        TokenLogprob(");", -0.2, {}),
    ]
    with replaying(content) as url:
        result = OpenAIBackend(url).complete(BackendRequest("x", 8, logprobs=2))
    assert result.tokens == [TokenLogprob("foo", -0.5, {"foo": -0.5, "bar": -1.5})]
    # Text without scores (an engine that scores some events only): none of it counts.
    with replaying([completions[0], {"choices": [{"text": ");"}]}]) as url:
        result = OpenAIBackend(url).complete(BackendRequest("x", 8, logprobs=2))
    assert result.text == "foo();" and result.tokens is None


def test_an_engine_that_refuses_logprobs_is_asked_again_without_and_not_asked_for_them_again() -> None:
    bodies: list[dict[str, Any]] = []
    with replaying([{"choices": [{"text": "foo();"}]}], bodies) as url:
        backend = OpenAIBackend(url)
        first = backend.complete(BackendRequest("x", 8, logprobs=5))
        second = backend.complete(BackendRequest("x", 8, logprobs=5))
    assert (first.text, first.tokens, first.error) == ("foo();", None, None)
    assert (second.text, second.tokens) == ("foo();", None)
    assert ["logprobs" in b for b in bodies] == [True, False, False]  # refused once, then never sent
    assert backend.health.failures == 0 and backend.health.take_report() is None  # no outage


def test_stop_check_ends_stream_early(engine: tuple[Engine, str]) -> None:
    _, url = engine
    result = OpenAIBackend(url).complete(BackendRequest("x", 16, stop_check=lambda t: "(" in t))
    assert (result.text, result.finish_reason) == ("foo(", "stop_check")


def test_cancel_closes_stream_within_a_chunk(engine: tuple[Engine, str]) -> None:
    state, url = engine
    state.chunks, state.delay = ["a"] * 50, 0.05
    cancel = threading.Event()
    seen: list[str] = []

    def cancel_after_three(text: str) -> bool:  # called once per streamed chunk
        seen.append(text)
        if len(seen) == 3:
            cancel.set()
        return False

    result = OpenAIBackend(url).complete(
        BackendRequest("x", 64, cancel=cancel, stop_check=cancel_after_three)
    )
    assert result.cancelled and result.text == "" and result.finish_reason == "cancelled"
    assert len(seen) == 3  # no chunk was read after the cancel
    time.sleep(0.3)
    assert state.sent < 15  # the server saw the connection go away, not the 50 chunks


@pytest.mark.parametrize("mode", ["500", "badjson", "cut", "hang"])
def test_failures_give_empty_result_and_one_report(
    engine: tuple[Engine, str], mode: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    state, url = engine
    state.mode = mode
    monkeypatch.setenv("TEAM_KEY", "sk-secret-123")
    backend = OpenAIBackend(url, api_key_env="TEAM_KEY", timeout_s=0.3, health=Health(start_s=0.0))
    with caplog.at_level(logging.DEBUG):
        first = backend.complete(BackendRequest("x", 8))
        second = backend.complete(BackendRequest("x", 8))
    assert first.text == second.text == "" and first.finish_reason == "error"
    assert first.error is not None
    report = backend.health.take_report()
    assert report is not None and backend.health.take_report() is None  # once per outage
    assert "sk-secret-123" not in caplog.text + str(report) + report.user_message


def test_engine_down_backs_off_then_recovers(engine: tuple[Engine, str]) -> None:
    _, url = engine
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: connection refused
    now = [0.0]
    health = Health(start_s=1.0, clock=lambda: now[0])
    down = OpenAIBackend(dead, health=health)
    assert down.complete(BackendRequest("x", 8)).finish_reason == "error"
    assert health.take_report() is not None
    assert down.complete(BackendRequest("x", 8)).finish_reason == "backoff"  # did not hit the engine
    now[0] = 1.5
    assert down.complete(BackendRequest("x", 8)).finish_reason == "error"
    assert health.take_report() is None  # still the same outage
    now[0] = 3.4
    assert health.backing_off()  # second failure at 1.5 s: waits 2 s, until 3.5 s
    now[0] = 10.0
    up = OpenAIBackend(url, health=health)
    assert up.complete(BackendRequest("x", 8)).text == "foo(bar);"
    assert health.failures == 0
    assert down.complete(BackendRequest("x", 8)).finish_reason == "error"
    assert health.take_report() is not None  # a new outage is reported again


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "http://localhost", "http://[::1]:9000/", "https://llm.example.com"]
)
def test_validate_url_accepts(url: str) -> None:
    assert validate_url(url) is None


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.5:8080", "http://example.com", "ftp://localhost", "localhost:8080", "http://[::1]:x"],
)
def test_validate_url_rejects(url: str) -> None:
    problem = validate_url(url)
    assert problem and ("not allowed" in problem or "not a valid URL" in problem)
    with pytest.raises(BackendError, match=r"codeparrot\.backendUrl"):
        OpenAIBackend(url)
