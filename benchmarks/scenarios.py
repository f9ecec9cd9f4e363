"""The scenario suite: small multi-file JavaScript projects, completed through the real server.

    python benchmarks/scenarios.py [--model DIR] [--only NAME ...] [--json OUT]

Each directory of tests/scenarios/ is a project written like real code (a helper module and the
file that calls it, a class and its subclass, a test next to its module, CommonJS and ESM) with a
`scenario.json`: cursors, each a file and the text right before the cursor (`after`, its first
occurrence), the completions a developer would accept (`accept`; by default the rest of that line
in the file) and the checks that must hold whatever the model writes (`checks`):

- `no_typescript`: no TypeScript-only syntax in the line (`server.retrieval.typescript`);
- `no_definition`: at a call site, no parameter list followed by `{` or `=>`;
- `offers:NAME`: the completed line holds NAME (a helper's name, offered in the other file).

One server per project, started as an editor starts it: `python -m server` over stdio with the
project as the workspace folder and the shipped default model (or `--model`). The file at the
cursor is opened with the rest of the cursor line removed (the text below stays, as when a line is
rewritten); the project's other files are read from disk by the workspace index. Prints each
cursor's completion and the share right (the first line of the completion equals an accepted one,
trailing blanks aside), and how many checks failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "tests" / "scenarios"
sys.path.insert(0, str(REPO))

from server.retrieval.rules import CopyRules, defines  # noqa: E402
from server.retrieval.typescript import ts_only_line  # noqa: E402

LOAD_TIMEOUT_S = 300.0  # model load and workspace index, on a busy 2-core machine
LANGUAGE_IDS = {".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascriptreact"}


@dataclass(frozen=True)
class Cursor:
    project: str
    file: str  # relative to the project
    text: str  # the document as opened: the file without the rest of the cursor line
    offset: int  # the cursor, in `text`
    accept: tuple[str, ...]
    checks: tuple[str, ...]

    @property
    def line(self) -> int:
        return self.text.count("\n", 0, self.offset)

    @property
    def character(self) -> int:
        """UTF-16 code units from the line start (LSP's default position encoding)."""
        start = self.text.rfind("\n", 0, self.offset) + 1
        return len(self.text[start : self.offset].encode("utf-16-le")) // 2


@dataclass
class Project:
    name: str
    root: Path
    description: str
    cursors: list[Cursor] = field(default_factory=list)


def load(root: Path = SCENARIOS) -> list[Project]:
    """Every project under `root` that has a scenario.json; a cursor whose `after` is not in its
    file is an error (the suite's data must say what it means)."""
    projects = []
    for spec_path in sorted(root.glob("*/scenario.json")):
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        project = Project(spec_path.parent.name, spec_path.parent, spec.get("description", ""))
        for c in spec["cursors"]:
            source = (project.root / c["file"]).read_text(encoding="utf-8")
            at = source.find(c["after"])
            if at < 0:
                raise ValueError(f"{spec_path}: {c['after']!r} is not in {c['file']}")
            offset = at + len(c["after"])
            end = source.find("\n", offset)
            end = len(source) if end < 0 else end
            rest = source[offset:end].rstrip()
            accept = tuple(c.get("accept", [rest]))
            text = source[:offset] + source[end:]
            project.cursors.append(Cursor(project.name, c["file"], text, offset, accept, tuple(c.get("checks", []))))
        projects.append(project)
    return projects


def right(cursor: Cursor, completion: str) -> bool:
    first = completion.split("\n", 1)[0].rstrip()
    return any(first == answer.rstrip() for answer in cursor.accept)


def failed_checks(cursor: Cursor, completion: str) -> list[str]:
    """The checks of `cursor` that `completion` breaks."""
    prefix = cursor.text[: cursor.offset]
    line = prefix[prefix.rfind("\n") + 1 :]
    first = completion.split("\n", 1)[0]
    failed = []
    for check in cursor.checks:
        if check == "no_typescript" and ts_only_line(line + first):
            failed.append(check)
        elif check == "no_definition":
            call = CopyRules.at(cursor.file, prefix).call
            if call >= 0 and defines(line[call + 1 :], first):
                failed.append(check)
        elif check.startswith("offers:") and check.split(":", 1)[1] not in line + first:
            failed.append(check)
    return failed


async def _wait_ready(client: Any, timeout: float) -> None:
    """Until the model is loaded and the workspace indexed (`codeparrot/stats`' index state, or
    the indexing `$/progress` ending where the server does not report that state)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = await client.protocol.send_request_async("codeparrot/stats", None)
        data = _plain(snap)
        index = data.get("index")
        ended = any(
            getattr(r, "kind", "") == "end" and "ndex" in str(getattr(r, "message", "") or "")
            for reports in client.progress_reports.values()
            for r in reports
        )
        if data["model"]["loaded"] and (ended or (isinstance(index, dict) and index.get("state") in ("ready", "failed"))):
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the server was not ready within {timeout:.0f} s")


def _plain(value: Any) -> Any:
    """A JSON-RPC result as dicts and lists (pygls gives objects as named tuples)."""
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


async def complete_project(
    project: Project, model: str = "", flags: tuple[str, ...] = (), server_root: Path = REPO
) -> list[str]:
    """Each cursor's completion ("" for none), from one server with `project` as the workspace;
    `server_root`: the checkout whose `server` package runs (`python -m server` from there)."""
    from lsprotocol import types
    from pytest_lsp import client_capabilities, make_test_lsp_client

    client = make_test_lsp_client()
    command = [sys.executable, "-m", "server", *(["--model", model] if model else []), *flags]
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    await client.start_io(*command, cwd=server_root, env=env)
    try:
        uri_root = project.root.resolve().as_uri()
        await client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities("visual-studio-code"),
                root_uri=uri_root,
                workspace_folders=[types.WorkspaceFolder(uri=uri_root, name=project.name)],
            )
        )
        # The index is built at the first completion where the server does not build it at start.
        warm = (project.root / "__warmup__.js").resolve().as_uri()
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(types.TextDocumentItem(warm, "javascript", 1, "const a = 1;\n"))
        )
        await client.text_document_inline_completion_async(_params(types, warm, 1, 0))
        client.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(warm)))
        await _wait_ready(client, LOAD_TIMEOUT_S)
        completions = []
        for cursor in project.cursors:
            uri = (project.root / cursor.file).resolve().as_uri()
            language = LANGUAGE_IDS.get(Path(cursor.file).suffix, "javascript")
            client.text_document_did_open(
                types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, language, 1, cursor.text))
            )
            result = await client.text_document_inline_completion_async(
                _params(types, uri, cursor.line, cursor.character)
            )
            items = result.items if isinstance(result, types.InlineCompletionList) else result or []
            completions.append(str(items[0].insert_text) if items else "")
            client.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri)))
        return completions
    finally:
        await client.shutdown_session()
        await client.stop()


def _params(types: Any, uri: str, line: int, character: int) -> Any:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="", help="model directory (default: the shipped model)")
    parser.add_argument("--only", nargs="*", default=[], help="project names to run")
    parser.add_argument("--json", type=Path, help="write every cursor's completion here")
    parser.add_argument("--server-root", type=Path, default=REPO,
                        help="run the server of another checkout (a before/after comparison)")
    parser.add_argument("flags", nargs="*", help="further server flags (after --)")
    args = parser.parse_args()
    projects = [p for p in load() if not args.only or p.name in args.only]
    rows = []
    start = time.perf_counter()
    for project in projects:
        completions = asyncio.run(complete_project(project, args.model, tuple(args.flags), args.server_root))
        for cursor, completion in zip(project.cursors, completions, strict=True):
            ok, failed = right(cursor, completion), failed_checks(cursor, completion)
            rows.append({"project": project.name, "file": cursor.file, "line": cursor.line + 1,
                         "completion": completion, "accept": list(cursor.accept), "right": ok, "failed": failed})
            mark = "ok  " if ok else ("FAIL" if failed else "    ")
            print(f"{mark} {project.name}/{cursor.file}:{cursor.line + 1}  {completion!r}"
                  + (f"  (want {cursor.accept[0]!r})" if not ok else "") + (f"  broke {failed}" if failed else ""))
    n_right = sum(r["right"] for r in rows)
    n_failed = sum(bool(r["failed"]) for r in rows)
    print(f"\n{len(projects)} projects, {len(rows)} cursors: {n_right} right ({100 * n_right / max(len(rows), 1):.1f} %), "
          f"{n_failed} broke a check; {time.perf_counter() - start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
