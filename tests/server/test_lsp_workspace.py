"""Workspace retrieval end to end: the real server over stdio (pytest-lsp) on a real folder.

A helper defined in one file of the workspace must show up in a completion in another file,
an edit to that file must be seen by the next completion, and `workspaceIndex off` must stop it.
The trained tiny model has never seen the helper's name, so only the index can supply it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsp_wire import REPO, open_folder, server_command, server_env, wait_until_loaded
from lsprotocol import types
from pytest_lsp import make_test_lsp_client

pytestmark = pytest.mark.asyncio(loop_scope="module")

HELPER = (
    "export function zorbleQuantifyWidgets(widgets, factor) {\n"
    "  return widgets.map((w) => w * factor);\n"
    "}\n\n"
    "export const result = zorbleQuantifyWidgets(readWidgetsFromDisk(config), 3);\n"
)
CALLER = "import { zorbleQuantifyWidgets } from './helper.js';\n\nexport const total = zorble"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def workspace(trained_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("ws")
    (root / "helper.js").write_text(HELPER)
    (root / "node_modules" / "dep").mkdir(parents=True)
    (root / "node_modules" / "dep" / "index.js").write_text("export const NODEMODULESONLY = 1;\n")
    lsp = make_test_lsp_client()
    registrations: list[types.Registration] = []

    @lsp.feature(types.CLIENT_REGISTER_CAPABILITY)
    def on_register(params: types.RegistrationParams) -> None:
        registrations.extend(params.registrations)

    lsp.registrations = registrations  # type: ignore[attr-defined]
    await lsp.start_io(*server_command(trained_dir, "--max-new-tokens", "24"), cwd=REPO, env=server_env())
    await open_folder(lsp, root)
    await wait_until_loaded(lsp)
    yield lsp, root
    await lsp.shutdown_session()
    await lsp.stop()


def open_doc(client: Any, uri: str, text: str) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="javascript", version=1, text=text)
        )
    )


async def complete(client: Any, uri: str, text: str) -> str:
    lines = text.split("\n")
    pos = types.Position(line=len(lines) - 1, character=len(lines[-1]))
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=pos,
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
        )
    )
    items = result.items if isinstance(result, types.InlineCompletionList) else result or []
    return str(items[0].insert_text) if items else ""


async def complete_when_indexed(client: Any, uri: str, text: str, want: str) -> str:
    """The index builds in the background after the model loads: ask until it answers (≤ 20 s)."""
    got = ""
    for _ in range(40):
        got = await complete(client, uri, text)
        if want in got:
            return got
        await asyncio.sleep(0.5)
    return got


async def test_completion_copies_a_helper_from_another_file(workspace: Any) -> None:
    client, root = workspace
    uri = (root / "caller.js").as_uri()
    open_doc(client, uri, CALLER)
    got = await complete_when_indexed(client, uri, CALLER, "QuantifyWidgets(")
    assert got.startswith("QuantifyWidgets("), got


async def test_an_edit_to_the_other_file_is_seen_next(workspace: Any) -> None:
    client, root = workspace
    helper_uri = (root / "helper.js").as_uri()
    edited = HELPER.replace("zorbleQuantifyWidgets", "zorbleRenormalizeGadgets")
    open_doc(client, helper_uri, edited)
    uri = (root / "caller2.js").as_uri()
    text = "export const total = zorble"
    open_doc(client, uri, text)
    got = await complete(client, uri, text)
    assert got.startswith("RenormalizeGadgets("), got


async def test_node_modules_are_not_indexed(workspace: Any) -> None:
    client, root = workspace
    uri = (root / "caller3.js").as_uri()
    text = "export const value = NODEMODULES"
    open_doc(client, uri, text)
    assert "ONLY" not in await complete(client, uri, text)


async def test_workspace_index_off_stops_copying(workspace: Any) -> None:
    client, root = workspace
    # The same assignment is written out in the other file: with the index on it is copied.
    open_doc(client, (root / "things.js").as_uri(),
             "export function zarqleFrobnicateThings(x) {\n  return x;\n}\n\n"
             "export const things = zarqleFrobnicateThings([]);\n")
    uri = (root / "caller4.js").as_uri()
    text = "export const things = zarqle"
    open_doc(client, uri, text)
    assert (await complete(client, uri, text)).startswith("FrobnicateThings("), "copied while on"
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"codeparrot": {"workspaceIndex": "off"}})
    )
    try:
        # A new document (the cache keeps what was shown in the old one): the model alone.
        fresh = (root / "caller5.js").as_uri()
        open_doc(client, fresh, text)
        assert "FrobnicateThings" not in await complete(client, fresh, text)
    finally:
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"codeparrot": {"workspaceIndex": "on"}})
        )


async def test_the_file_watcher_is_registered_and_a_deleted_file_leaves_the_index(workspace: Any) -> None:
    client, root = workspace
    methods = [r.method for r in client.registrations]
    assert types.WORKSPACE_DID_CHANGE_WATCHED_FILES in methods
    # A file created on disk (not opened in the editor) is indexed when the watcher reports it...
    created = root / "created.js"
    created.write_text("export function zibbleMeasureSprockets(s) {\n  return s.length;\n}\n\n"
                       "export const sprockets = zibbleMeasureSprockets('gear');\n")

    def report(kind: types.FileChangeType) -> None:
        client.workspace_did_change_watched_files(
            types.DidChangeWatchedFilesParams(changes=[types.FileEvent(uri=created.as_uri(), type=kind)])
        )

    report(types.FileChangeType.Created)
    text = "export const sprockets = zibble"
    uri = (root / "caller6.js").as_uri()
    open_doc(client, uri, text)
    assert (await complete_when_indexed(client, uri, text, "MeasureSprockets(")).startswith("MeasureSprockets(")
    # ... and leaves it when deleted there.
    created.unlink()
    report(types.FileChangeType.Deleted)
    fresh = (root / "caller7.js").as_uri()  # a new document: the typed-ahead cache is per document
    open_doc(client, fresh, text)
    assert "MeasureSprockets" not in await complete(client, fresh, text)


async def test_indexing_reports_progress_from_begin_to_end(workspace: Any) -> None:
    client, _ = workspace
    indexing = [
        reports
        for reports in client.progress_reports.values()
        if reports and isinstance(reports[0], types.WorkDoneProgressBegin) and "indexing" in reports[0].title
    ]
    assert len(indexing) == 1, client.progress_reports  # one build, however many completions asked
    end = indexing[0][-1]
    assert isinstance(end, types.WorkDoneProgressEnd) and str(end.message).startswith("Workspace indexed: "), end
