"""The real server (`python -m server ARGS`) under a Python audit hook that records every file
opened for writing and every network call, for the privacy test (tests/server/test_lsp_acceptance.py).

Records go, one JSON line each, to the file named by CODEPARROT_AUDIT_LOG through a descriptor
opened before the hook is installed (`os.write` raises no audit event, so recording records nothing).
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from typing import Any

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
NETWORK = ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo")


def main() -> None:
    fd = os.open(os.environ["CODEPARROT_AUDIT_LOG"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open" and len(args) >= 3:
            path, mode, flags = args[:3]
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & WRITE_FLAGS)
            if writing and isinstance(path, str | bytes):
                os.write(fd, (json.dumps({"event": "write", "path": os.fsdecode(path)}) + "\n").encode())
        elif event in NETWORK:
            os.write(fd, (json.dumps({"event": event, "args": repr(args)[:200]}) + "\n").encode())

    sys.addaudithook(hook)
    sys.argv = ["server", *sys.argv[1:]]
    runpy.run_module("server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
