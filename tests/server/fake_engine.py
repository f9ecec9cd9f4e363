"""A fake OpenAI-compatible engine: a real HTTP server in a thread that streams server-sent
events, and fails on demand ("500", "badjson", "cut" mid-stream, "hang"). Used by the backend's
unit tests and the LSP tests; a real engine (llama.cpp) is tested in backends/test_llama_server.py."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Engine:
    """What the fake engine does on the next request: mode + chunks; records request bodies."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.chunks = ["foo", "(", "bar", ");"]
        self.delay = 0.0
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.sent = 0  # chunks written in the latest request


def _handler(engine: Engine) -> type[BaseHTTPRequestHandler]:
    class H(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            engine.bodies.append(body)
            engine.headers.append(dict(self.headers))
            if engine.mode == "500":
                self.send_response(500)
                self.send_header("Content-Length", "4")
                self.end_headers()
                self.wfile.write(b"oops")
                return
            if engine.mode == "hang":
                time.sleep(1.0)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            engine.sent = 0
            try:
                for chunk in engine.chunks:
                    event = {"choices": [{"text": chunk, "finish_reason": None}]}
                    payload = "{not json" if engine.mode == "badjson" else json.dumps(event)
                    self.wfile.write(f"data: {payload}\n\n".encode())
                    self.wfile.flush()
                    engine.sent += 1
                    time.sleep(engine.delay)
                if engine.mode != "cut":
                    self.wfile.write(b"data: [DONE]\n\n")
            except (BrokenPipeError, ConnectionResetError):
                pass

    return H


@contextmanager
def serve(state: Engine | None = None) -> Iterator[tuple[Engine, str]]:
    """The fake engine on 127.0.0.1 (a free port): (its state, its base URL)."""
    state = state or Engine()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
