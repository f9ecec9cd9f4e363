"""JSON-RPC over stdio to a language server subprocess: LSP framing, a frame reader, a client.

Shared by the benchmarks that drive the real server (latency.py, soak.py) and the server's
end-to-end tests (tests/server/lsp_wire.py). Hand-written rather than pygls' client: the
benchmarks time the raw round trip, and the tests send bytes no well-behaved client would.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
HEADER_END = b"\r\n\r\n"


def frame(message: dict[str, Any] | bytes) -> bytes:
    """One LSP frame: the Content-Length header, then the body (a message or raw bytes as they are)."""
    body = message if isinstance(message, bytes) else json.dumps(message).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def position(text: str, offset: int) -> dict[str, int]:
    """The LSP position (UTF-16 column) of a str index."""
    line_start = text.rfind("\n", 0, offset) + 1
    return {
        "line": text.count("\n", 0, offset),
        "character": len(text[line_start:offset].encode("utf-16-le")) // 2,
    }


def inline_params(uri: str, text: str, offset: int) -> dict[str, Any]:
    """An automatic inline-completion request at `offset` of `text`, as an editor sends while typing."""
    return {"textDocument": {"uri": uri}, "position": position(text, offset), "context": {"triggerKind": 2}}


class FrameReader:
    """Parses a byte stream into LSP frames on a thread; anything that is not a frame is kept in `junk`."""

    def __init__(self, stream: Any) -> None:
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.junk: list[bytes] = []
        self._stream = stream
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buf = b""
        while True:
            chunk = self._stream.read1(65536) if hasattr(self._stream, "read1") else self._stream.recv(65536)
            if not chunk:
                if buf:
                    self.junk.append(buf)
                return
            buf += chunk
            while HEADER_END in buf:
                head, rest = buf.split(HEADER_END, 1)
                length = None
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length" and value.strip().isdigit():
                        length = int(value)
                    elif name.strip().lower() != b"content-type":
                        self.junk.append(line)
                if length is None:
                    self.junk.append(head)
                    buf = rest
                    continue
                if len(rest) < length:
                    break
                body, buf = rest[:length], rest[length:]
                try:
                    self.messages.put(json.loads(body))
                except ValueError:
                    self.junk.append(body)

    def next(self, timeout: float) -> dict[str, Any]:
        """The next message; `queue.Empty` after `timeout` seconds without one."""
        return self.messages.get(timeout=timeout)


class StreamTail:
    """Drains a stream on a thread (so the child never blocks on a full pipe) and keeps it."""

    def __init__(self, stream: Any) -> None:
        self.data = bytearray()
        self._thread = threading.Thread(target=self._run, args=(stream,), daemon=True)
        self._thread.start()

    def _run(self, stream: Any) -> None:
        while chunk := stream.read1(65536):
            self.data.extend(chunk)

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


class LspServer:
    """A language server started as `argv` (in the repository), spoken to with JSON-RPC frames.

    Messages are read in the caller's thread, whenever it waits for an answer: server requests
    (progress tokens, configuration) are accepted with a null result, notifications are kept in
    `notifications`, answers in `answers` by id. `stderr_path` sends the server's stderr to a file;
    without it, stderr is kept in memory (`stderr.text()`).
    """

    def __init__(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        stderr_path: Path | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._stderr_file: IO[bytes] | None = stderr_path.open("wb") if stderr_path else None
        self.proc = subprocess.Popen(
            argv,
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr_file or subprocess.PIPE,
            env=env,
        )
        assert self.proc.stdout is not None
        self.reader = FrameReader(self.proc.stdout)
        self.stderr = StreamTail(self.proc.stderr) if self.proc.stderr is not None else None
        self.timeout = timeout  # the default wait for an answer, in seconds
        self.notifications: list[dict[str, Any]] = []  # what the server sent unasked, in order
        self.answers: dict[Any, dict[str, Any]] = {}
        self._next_id = 0

    # ----- sending

    def send(self, message: dict[str, Any] | bytes, *, raw: bool = False) -> None:
        """Frame and write `message` as it is (no "jsonrpc" added); `raw` bytes are written unframed."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(message if raw and isinstance(message, bytes) else frame(message))
        self.proc.stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def ask(self, method: str, params: Any) -> int:
        """Send a request without waiting; returns its id (see `wait`, `answered`, `response`)."""
        self._next_id += 1
        self.answers.pop(self._next_id, None)  # an answer to a hand-framed request of the same id
        self.send({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        return self._next_id

    # ----- receiving

    def _handle(self, message: dict[str, Any]) -> None:
        if "method" in message and "id" in message:  # e.g. window/workDoneProgress/create
            self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
        elif "method" in message:
            self.notifications.append(message)
        else:
            self.answers[message.get("id")] = message

    def answered(self, msg_id: int) -> bool:
        """Whether the answer to `msg_id` has come (what has arrived is read, nothing is awaited)."""
        while True:
            try:
                self._handle(self.reader.messages.get_nowait())
            except queue.Empty:
                return msg_id in self.answers

    def wait(self, ids: Iterable[int], timeout: float | None = None) -> None:
        """Until every request of `ids` is answered; `TimeoutError` after `timeout` seconds."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        pending: set[Any] = {i for i in ids if i not in self.answers}
        while pending:
            try:
                message = self.reader.next(max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(
                    f"{len(pending)} requests unanswered after {timeout} s: {sorted(pending)[:5]}"
                ) from None
            self._handle(message)
            pending.discard(message.get("id"))

    def response(self, msg_id: int, timeout: float | None = None) -> dict[str, Any]:
        """The answer to `msg_id` (taken out of `answers`)."""
        self.wait([msg_id], timeout)
        return self.answers.pop(msg_id)

    def request(self, method: str, params: Any, timeout: float | None = None) -> dict[str, Any]:
        """Send a request and return its answer, the whole message (`result` or `error`)."""
        return self.response(self.ask(method, params), timeout)

    def call(self, method: str, params: Any, timeout: float | None = None) -> Any:
        """Send a request and return its result; `RuntimeError` on an error answer."""
        answer = self.request(method, params, timeout)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result")

    # ----- the session

    def initialize(
        self,
        options: Any = None,
        *,
        workspace: Path | None = None,
        capabilities: dict[str, Any] | None = None,
        process_id: int | None = None,
    ) -> Any:
        """`initialize` (with `workspace` as the root and only folder) and `initialized`; returns the result.

        The client's capabilities default to work-done progress, so the server reports its loads."""
        params: dict[str, Any] = {
            "processId": process_id,
            "rootUri": workspace.as_uri() if workspace else None,
            "capabilities": {"window": {"workDoneProgress": True}} if capabilities is None else capabilities,
            "initializationOptions": options,
        }
        if workspace:
            params["workspaceFolders"] = [{"uri": workspace.as_uri(), "name": workspace.name}]
        result = self.call("initialize", params)
        self.notify("initialized", {})
        return result

    def open(self, uri: str, text: str, language_id: str = "javascript") -> None:
        self.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": language_id, "version": 1, "text": text}},
        )

    def insert(self, uri: str, version: int, text: str, offset: int, typed: str) -> None:
        """An incremental `didChange`: `typed` inserted at `offset` of `text` (the document before)."""
        at = position(text, offset)
        change = {"range": {"start": at, "end": at}, "text": typed}
        self.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": uri, "version": version}, "contentChanges": [change]},
        )

    def rss_kb(self) -> dict[str, int]:
        """The server's `VmRSS` and `VmHWM` (peak) in kB."""
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":")
                fields[name] = int(value.split()[0])
        return fields

    def close(self, timeout: float = 30.0) -> int:
        """`shutdown` + `exit`; returns the exit status. A server still running after is killed."""
        try:
            self.request("shutdown", None, timeout=timeout)
            self.notify("exit", None)
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if self._stderr_file is not None:
                self._stderr_file.close()
