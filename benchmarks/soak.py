"""Memory over a day: many files typed one after another into one real server, RSS per file.

    python benchmarks/soak.py                       # quick: 8 files, 120 characters each (a few minutes on 2 cores)
    python benchmarks/soak.py --files 20 --chars 775 # the full soak (~15,500 keystrokes)
    python benchmarks/soak.py --workspace DIR [--model DIR] [--engine torch|llama] [--every 1] [--interval-ms 60]

The server (`python -m server`, the shipped model unless --model) gets DIR as its workspace
folder (default: the repository's node_modules/eslint, a real npm package of 420 files). Each of the package's
JavaScript files in turn (a fixed order) is opened as the editor would open it with a stretch of
it missing, and that stretch is typed back one character at a time: a `didChange` per keystroke
and an inline completion every `--every` keystrokes, sent without waiting; the previous request
still open is cancelled (`$/cancelRequest`) first, as VS Code does. The file is then closed, every
request's answer is awaited, and the server's RSS is printed. At the end: the RSS after the fifth
file against the last (the target: the last within +10 % of the fifth), how many requests were
answered, cancelled or failed (a failure is any error answer but "cancelled"), and the stats.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WORKSPACE = REPO / "node_modules" / "eslint"
REQUEST_CANCELLED = -32800  # LSP's RequestCancelled


class Client:
    """JSON-RPC over the server's stdio: requests sent without waiting, every answer kept."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self._log = log.open("wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, cwd=REPO)
        self.answers: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = 0
            while (line := out.readline()) not in (b"\r\n", b"\n"):
                if not line:
                    return
                name, _, value = line.decode("ascii").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            msg = json.loads(out.read(length))
            if "method" in msg and "id" in msg:  # a server request (progress token): accept it
                self.send({"id": msg["id"], "result": None})
            elif "id" in msg:
                with self._cond:
                    self.answers[msg["id"]] = msg
                    self._cond.notify_all()

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def ask(self, method: str, params: Any) -> int:
        self._next_id += 1
        self.send({"id": self._next_id, "method": method, "params": params})
        return self._next_id

    def wait(self, ids: list[int], timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not all(i in self.answers for i in ids):
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = [i for i in ids if i not in self.answers]
                    raise TimeoutError(f"{len(missing)} requests unanswered after {timeout} s: {missing[:5]}")
                self._cond.wait(left)

    def request(self, method: str, params: Any, timeout: float = 300.0) -> Any:
        rid = self.ask(method, params)
        self.wait([rid], timeout)
        answer = self.answers.pop(rid)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def close(self) -> None:
        try:
            self.request("shutdown", None, timeout=30)
            self.notify("exit", None)
            self.proc.wait(timeout=30)
        except Exception:  # the figures are taken; a slow exit must not lose them
            self.proc.kill()
        self._log.close()


def position(text: str, offset: int) -> dict[str, int]:
    """The LSP position (UTF-16 column) of a str index."""
    line_start = text.rfind("\n", 0, offset) + 1
    return {"line": text.count("\n", 0, offset), "character": len(text[line_start:offset].encode("utf-16-le")) // 2}


def pick_files(workspace: Path, count: int, chars: int, seed: int) -> list[Path]:
    """`count` of the workspace's own .js files (what the server indexes) long enough to type
    `chars` of, in a fixed random order."""
    sys.path.insert(0, str(REPO))
    from server.retrieval.files import scan_workspace

    found = sorted(p for p, text in scan_workspace(workspace) if p.suffix == ".js" and len(text) >= chars * 3)
    random.Random(seed).shuffle(found)
    if len(found) < count:
        raise SystemExit(f"{workspace} has {len(found)} .js files of at least {chars * 3} characters; {count} asked")
    return found[:count]


def type_file(client: Client, path: Path, chars: int, every: int, interval_s: float, ids: list[int]) -> int:
    """Open `path` with `chars` characters missing from its middle, type them back, close it."""
    text = path.read_text(encoding="utf-8")
    start = len(text) // 2
    start = text.rfind("\n", 0, start) + 1  # type from a line start, as one writes code
    typed = text[start : start + chars]
    current = text[:start] + text[start + chars :]
    uri = path.as_uri()
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "javascript", "version": 1,
                                                            "text": current}})
    version, previous, keystrokes = 1, None, 0
    for i, char in enumerate(typed):
        offset = start + i
        version += 1
        change = {"range": {"start": position(current, offset), "end": position(current, offset)}, "text": char}
        current = current[:offset] + char + current[offset:]
        client.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                                 "contentChanges": [change]})
        keystrokes += 1
        if (i + 1) % every == 0:
            if previous is not None and previous not in client.answers:
                client.notify("$/cancelRequest", {"id": previous})
            previous = client.ask("textDocument/inlineCompletion", {
                "textDocument": {"uri": uri}, "position": position(current, offset + 1),
                "context": {"triggerKind": 2}})
            ids.append(previous)
        if interval_s:
            time.sleep(interval_s)
    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    return keystrokes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, default=DEFAULT_WORKSPACE, help="folder opened as the workspace")
    parser.add_argument("--model", help="model directory (default: the shipped model)")
    parser.add_argument("--engine", choices=("auto", "torch", "llama"), help="the server's --engine (default: its own)")
    parser.add_argument("--files", type=int, default=8, help="files typed, one after another (full soak: 20)")
    parser.add_argument("--chars", type=int, default=120, help="characters typed per file (full soak: 775)")
    parser.add_argument("--every", type=int, default=1, help="a completion every N keystrokes")
    parser.add_argument("--interval-ms", type=float, default=60.0, help="pause between keystrokes")
    parser.add_argument("--seed", type=int, default=0, help="the order of the files")
    parser.add_argument("--log", type=Path, default=Path("/tmp/codeparrot-soak-server.log"), help="server stderr")
    args = parser.parse_args(argv)
    if not args.workspace.is_dir():
        parser.error(f"--workspace {args.workspace}: not a folder (the default needs `npm install` at the root)")
    workspace = args.workspace.resolve()
    files = pick_files(workspace, args.files, args.chars, args.seed)
    argv_server = [sys.executable, "-m", "server", "--device", "cpu", *(["--model", args.model] if args.model else []),
                   *(["--engine", args.engine] if args.engine else [])]
    client = Client(argv_server, args.log)
    rows: list[tuple[str, float, int]] = []
    ids: list[int] = []
    try:
        client.request("initialize", {"processId": None, "rootUri": workspace.as_uri(),
                                      "workspaceFolders": [{"uri": workspace.as_uri(), "name": workspace.name}],
                                      "capabilities": {"window": {"workDoneProgress": True}}})
        client.notify("initialized", {})
        deadline = time.monotonic() + 600
        while not ((s := client.request("codeparrot/stats", None))["model"]["loaded"]
                   and s["index"]["state"] in ("ready", "failed", "off")):
            if time.monotonic() > deadline:
                raise TimeoutError(f"model or index not ready in 600 s: {s['model']}, {s['index']}")
            time.sleep(0.2)
        print(f"workspace {workspace}: {s['index']['files']} files indexed in {s['index']['build_s']} s; "
              f"engine {s.get('engine', '?')}; RSS {client.rss_mb():.0f} MB before typing", flush=True)
        total_keys = 0
        for n, path in enumerate(files, 1):
            total_keys += type_file(client, path, args.chars, args.every, args.interval_ms / 1000, ids)
            client.wait(ids)
            client.request("codeparrot/stats", None)  # the close and everything before it are handled
            rss = client.rss_mb()
            rows.append((str(path.relative_to(workspace)), rss, total_keys))
            print(f"file {n:2d} {rows[-1][0]:<40} RSS {rss:6.0f} MB  ({total_keys} keystrokes so far)", flush=True)
        stats = client.request("codeparrot/stats", None)
    finally:
        client.close()
    errors = [a["error"] for i in ids if "error" in (a := client.answers[i]) and a["error"]["code"] != REQUEST_CANCELLED]
    cancelled = sum(1 for i in ids if client.answers[i].get("error", {}).get("code") == REQUEST_CANCELLED)
    shown = sum(1 for i in ids if (client.answers[i].get("result") or {}).get("items"))
    print(f"{len(ids)} completion requests, all answered: {shown} with ghost text, {cancelled} cancelled, "
          f"{len(errors)} errors{': ' + str(errors[:3]) if errors else ''}")
    print(f"server stats: requests {stats['requests']}, cancelled {stats['cancelled']}, "
          f"cache hits {stats['cache_hits']}, generate p50 {stats['stages_ms'].get('generate', {}).get('p50', 0):.1f} ms")
    print("RSS per file (MB):", ", ".join(f"{rss:.0f}" for _, rss, _ in rows))
    if len(rows) >= 5:
        fifth, last = rows[4][1], rows[-1][1]
        verdict = "within" if last <= fifth * 1.10 else "OVER"
        print(f"last vs fifth: {last:.0f} / {fifth:.0f} MB = {last / fifth - 1:+.1%} ({verdict} the +10 % target)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
