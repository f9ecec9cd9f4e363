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
import contextlib
import random
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.lsp_client import LspServer, inline_params  # noqa: E402

DEFAULT_WORKSPACE = REPO / "node_modules" / "eslint"
REQUEST_CANCELLED = -32800  # LSP's RequestCancelled


def pick_files(workspace: Path, count: int, chars: int, seed: int) -> list[Path]:
    """`count` of the workspace's own .js files (what the server indexes) long enough to type
    `chars` of, in a fixed random order."""
    from server.retrieval.files import scan_workspace

    found = sorted(p for p, text in scan_workspace(workspace) if p.suffix == ".js" and len(text) >= chars * 3)
    random.Random(seed).shuffle(found)
    if len(found) < count:
        raise SystemExit(
            f"{workspace} has {len(found)} .js files of at least {chars * 3} characters; {count} asked"
        )
    return found[:count]


def type_file(
    client: LspServer, path: Path, chars: int, every: int, interval_s: float, ids: list[int]
) -> int:
    """Open `path` with `chars` characters missing from its middle, type them back, close it."""
    text = path.read_text(encoding="utf-8")
    start = len(text) // 2
    start = text.rfind("\n", 0, start) + 1  # type from a line start, as one writes code
    typed = text[start : start + chars]
    current = text[:start] + text[start + chars :]
    uri = path.as_uri()
    client.open(uri, current)
    version, previous, keystrokes = 1, None, 0
    for i, char in enumerate(typed):
        offset = start + i
        version += 1
        client.insert(uri, version, current, offset, char)
        current = current[:offset] + char + current[offset:]
        keystrokes += 1
        if (i + 1) % every == 0:
            if previous is not None and not client.answered(previous):
                client.notify("$/cancelRequest", {"id": previous})
            previous = client.ask("textDocument/inlineCompletion", inline_params(uri, current, offset + 1))
            ids.append(previous)
        if interval_s:
            time.sleep(interval_s)
    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    return keystrokes


def rss_mb(client: LspServer) -> float:
    return client.rss_kb().get("VmRSS", 0) / 1024


def wait_ready(client: LspServer, timeout: float = 600.0) -> dict[str, Any]:
    """The server's stats once its model is loaded and its workspace index built (or given up)."""
    deadline = time.monotonic() + timeout
    while not (
        (s := client.call("codeparrot/stats", None))["model"]["loaded"]
        and s["index"]["state"] in ("ready", "failed", "off")
    ):
        if time.monotonic() > deadline:
            raise TimeoutError(f"model or index not ready in {timeout:.0f} s: {s['model']}, {s['index']}")
        time.sleep(0.2)
    return s


def report(
    client: LspServer, ids: list[int], stats: dict[str, Any], rows: list[tuple[str, float, int]]
) -> int:
    """Print the requests' outcomes, the server's stats and the RSS per file; the number of errors."""
    answers = [client.answers[i] for i in ids]
    errors = [a["error"] for a in answers if "error" in a and a["error"]["code"] != REQUEST_CANCELLED]
    cancelled = sum(1 for a in answers if a.get("error", {}).get("code") == REQUEST_CANCELLED)
    shown = sum(1 for a in answers if (a.get("result") or {}).get("items"))
    print(
        f"{len(ids)} completion requests, all answered: {shown} with ghost text, {cancelled} cancelled, "
        f"{len(errors)} errors{': ' + str(errors[:3]) if errors else ''}"
    )
    generate_p50 = stats["stages_ms"].get("generate", {}).get("p50", 0)
    print(
        f"server stats: requests {stats['requests']}, cancelled {stats['cancelled']}, "
        f"cache hits {stats['cache_hits']}, generate p50 {generate_p50:.1f} ms"
    )
    print("RSS per file (MB):", ", ".join(f"{rss:.0f}" for _, rss, _ in rows))
    if len(rows) >= 5:
        fifth, last = rows[4][1], rows[-1][1]
        verdict = "within" if last <= fifth * 1.10 else "OVER"
        print(
            f"last vs fifth: {last:.0f} / {fifth:.0f} MB = {last / fifth - 1:+.1%} ({verdict} the +10 % target)"
        )
    return len(errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workspace", type=Path, default=DEFAULT_WORKSPACE, help="folder opened as the workspace"
    )
    parser.add_argument("--model", help="model directory (default: the shipped model)")
    parser.add_argument(
        "--engine", choices=("auto", "torch", "llama"), help="the server's --engine (default: its own)"
    )
    parser.add_argument("--files", type=int, default=8, help="files typed, one after another (full soak: 20)")
    parser.add_argument("--chars", type=int, default=120, help="characters typed per file (full soak: 775)")
    parser.add_argument("--every", type=int, default=1, help="a completion every N keystrokes")
    parser.add_argument("--interval-ms", type=float, default=60.0, help="pause between keystrokes")
    parser.add_argument("--seed", type=int, default=0, help="the order of the files")
    parser.add_argument(
        "--log", type=Path, default=Path("/tmp/codeparrot-soak-server.log"), help="server stderr"
    )
    args = parser.parse_args(argv)
    if not args.workspace.is_dir():
        parser.error(
            f"--workspace {args.workspace}: not a folder (the default needs `npm install` at the root)"
        )
    workspace = args.workspace.resolve()
    files = pick_files(workspace, args.files, args.chars, args.seed)
    argv_server = [
        *(sys.executable, "-m", "server", "--device", "cpu"),
        *(["--model", args.model] if args.model else []),
        *(["--engine", args.engine] if args.engine else []),
    ]
    client = LspServer(argv_server, stderr_path=args.log, timeout=300.0)
    rows: list[tuple[str, float, int]] = []
    ids: list[int] = []
    try:
        client.initialize(workspace=workspace)
        s = wait_ready(client)
        print(
            f"workspace {workspace}: {s['index']['files']} files indexed in {s['index']['build_s']} s; "
            f"engine {s.get('engine', '?')}; RSS {rss_mb(client):.0f} MB before typing",
            flush=True,
        )
        total_keys = 0
        for n, path in enumerate(files, 1):
            total_keys += type_file(client, path, args.chars, args.every, args.interval_ms / 1000, ids)
            client.wait(ids)
            client.call("codeparrot/stats", None)  # the close and everything before it are handled
            rss = rss_mb(client)
            rows.append((str(path.relative_to(workspace)), rss, total_keys))
            print(
                f"file {n:2d} {rows[-1][0]:<40} RSS {rss:6.0f} MB  ({total_keys} keystrokes so far)",
                flush=True,
            )
        stats = client.call("codeparrot/stats", None)
    finally:
        with contextlib.suppress(Exception):  # the figures are taken; a slow exit must not lose them
            client.close()
    return 1 if report(client, ids, stats, rows) else 0


if __name__ == "__main__":
    sys.exit(main())
