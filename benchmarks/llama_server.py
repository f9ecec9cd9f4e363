"""llama.cpp's OpenAI-compatible server (llama-cpp-python's `llama_cpp.server`) serving a model
directory converted to GGUF (`training.export_gguf`), on 127.0.0.1 at a free port; stopped by its
pid. The real engine of the remote-backend tests (tests/server/backends/test_llama_server.py) and of
benchmarks/remote_workspace.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def llama_server(
    model_dir: Path,
    workdir: Path,
    *,
    threads: int = 1,
    env: dict[str, str] | None = None,
    start_timeout_s: float = 120,
) -> Iterator[str]:
    """The base URL of the server, once it answers `/v1/models`. `workdir` receives the GGUF file
    and the server's log; RuntimeError if the server exits or does not answer in time."""
    import httpx

    gguf = workdir / "codeparrot-js.gguf"
    subprocess.run(
        [sys.executable, "-m", "training.export_gguf", str(model_dir), str(gguf)],
        cwd=REPO,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=300,
    )
    port = free_port()
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(gguf),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "1024",
                "--n_threads",
                str(threads),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + start_timeout_s
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"llama.cpp server exited with {proc.returncode}: see {log_path}")
                try:
                    if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"llama.cpp server did not start within {start_timeout_s:.0f} s: see {log_path}"
                    )
                time.sleep(0.25)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, 9)
                proc.wait()
