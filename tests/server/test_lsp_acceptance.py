"""Acceptance counts and copy provenance end to end: the real server over stdio (pytest-lsp), a
real workspace folder, the tiny trained model; and the privacy promise, checked with an audit
hook in the server process (tests/server/audit_server.py): no file written and no network call
for acceptance data unless `acceptanceLog` names a file, and no source text in it unless
`acceptanceLogText` is on."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsp_wire import REPO, open_folder, server_env, wait_until_loaded
from lsprotocol import types
from pytest_lsp import make_test_lsp_client

pytestmark = pytest.mark.asyncio(loop_scope="module")

UTILS = (
    "export function computeWidgetTotals(inventory, warehouse) {\n"
    "  return inventory.count * warehouse.factor;\n"
    "}\n"
    "\n"
    "export const grandTotal = computeWidgetTotals(globalInventory, mainWarehouse);\n"
)
COPY_AT = "const subtotal = computeWidgetTotals(globalInv"  # a sure copy: `entory, mainWarehouse);`
COPIED = "entory, mainWarehouse);"
AUDIT = Path(__file__).with_name("audit_server.py")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def session(trained_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("ws")
    (root / "lib").mkdir()
    (root / "lib" / "utils.js").write_text(UTILS)
    audit = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    lsp = make_test_lsp_client()
    command = [sys.executable, str(AUDIT), "--model", str(trained_dir), "--engine", "torch", "--max-new-tokens", "16"]
    await lsp.start_io(*command, cwd=REPO, env=server_env(CODEPARROT_AUDIT_LOG=str(audit)))
    await open_folder(lsp, root)
    await wait_until_loaded(lsp)
    yield lsp, root, audit
    await lsp.shutdown_session()
    await lsp.stop()


_names = iter(range(1_000_000))
_opened: list[str] = []


@pytest_asyncio.fixture(autouse=True, loop_scope="module")
async def close_documents(session: Any) -> Any:
    """Each test's documents are closed after it: a half-typed copy left open would be one more
    occurrence, going on differently, for the next test's copy to weigh."""
    yield
    client = session[0]
    while _opened:
        client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=_opened.pop()))
        )


def open_doc(client: Any, root: Path, text: str) -> str:
    uri = (root / f"caller{next(_names)}.js").as_uri()
    _opened.append(uri)
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="javascript", version=1, text=text)
        )
    )
    return uri


def end_of(text: str) -> types.Position:
    lines = text.split("\n")
    return types.Position(line=len(lines) - 1, character=len(lines[-1]))


def type_at_end(client: Any, uri: str, version: int, before: str, typed: str) -> str:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=end_of(before), end=end_of(before)), text=typed
                )
            ],
        )
    )
    return before + typed


async def inline(client: Any, uri: str, text: str) -> types.InlineCompletionItem | None:
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=end_of(text),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
        )
    )
    items = result.items if isinstance(result, types.InlineCompletionList) else result or []
    return items[0] if items else None


async def copy_item(client: Any, root: Path, text: str = COPY_AT) -> tuple[str, types.InlineCompletionItem]:
    """A new document at `text` and its inline item once the workspace index answers with the copy."""
    uri = open_doc(client, root, text)
    for _ in range(60):  # the index builds in the background after the model loads
        item = await inline(client, uri, text)
        if item is not None and item.command is not None and argument(item)["source"] == "copy":
            return uri, item
        await asyncio.sleep(0.5)
    raise AssertionError(f"no copy at {text!r}: {item}")


def plain(obj: Any) -> Any:
    """pygls hands untyped values over as nested namedtuples; turn them back into dicts."""
    if hasattr(obj, "_asdict"):
        return {k: plain(v) for k, v in obj._asdict().items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


def argument(item: Any) -> dict[str, Any]:
    """The argument of an item's accept command."""
    return plain(item.command.arguments[0])


async def acceptance(client: Any) -> dict[str, Any]:
    snap = plain(await client.protocol.send_request_async("codeparrot/stats", None))
    return snap["acceptance"]


def by_file(snap: dict[str, Any], path: str) -> dict[str, Any]:
    return next(entry for entry in snap["copies_by_file"] if entry["file"] == path)


def counts(snap: dict[str, Any], source: str) -> dict[str, Any]:
    return snap["by_source"].get(source, {"shown": 0, "accepted": 0, "partial": 0, "typed_through": 0})


def accept(client: Any, item: types.InlineCompletionItem, length: int | None = None) -> None:
    params: dict[str, Any] = {"id": argument(item)["id"]}
    if length is not None:
        params["acceptedLength"] = length
    client.protocol.notify("codeparrot/accepted", params)


def audit_records(audit: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []


async def test_a_copy_carries_its_origin_and_an_accept_counts_for_its_source(session: Any) -> None:
    client, root, _ = session
    before = await acceptance(client)
    _, item = await copy_item(client, root)
    assert item.insert_text == COPIED
    arg = argument(item)
    assert item.command.command == "codeparrot.accepted"
    assert arg["from"] == "lib/utils.js:5"
    accept(client, item)
    await asyncio.sleep(0.2)  # a notification: the stats request after it is answered after it
    after = await acceptance(client)
    assert counts(after, "copy")["shown"] == counts(before, "copy")["shown"] + 1
    assert counts(after, "copy")["accepted"] == counts(before, "copy")["accepted"] + 1
    assert by_file(after, "lib/utils.js")["accepted"] >= 1
    assert after["by_lines"]["single"]["accepted"] == before["by_lines"]["single"]["accepted"] + 1
    accept(client, item)  # the same accept reported twice counts once
    await asyncio.sleep(0.2)
    assert counts(await acceptance(client), "copy")["accepted"] == counts(after, "copy")["accepted"]


async def test_a_partial_accept_counts_as_partial_and_an_ignored_one_as_shown_only(session: Any) -> None:
    client, root, _ = session
    before = await acceptance(client)
    _, partly = await copy_item(client, root)
    accept(client, partly, length=6)
    _, ignored = await copy_item(client, root)
    await asyncio.sleep(0.2)
    after = await acceptance(client)
    copy_before, copy_after = counts(before, "copy"), counts(after, "copy")
    assert copy_after["shown"] == copy_before["shown"] + 2
    assert copy_after["partial"] == copy_before["partial"] + 1
    assert copy_after["accepted"] == copy_before["accepted"]
    assert copy_after["accept_rate"] == round(copy_after["accepted"] / copy_after["shown"], 4)
    assert argument(ignored)["id"] != argument(partly)["id"]


async def test_typing_through_a_suggestion_is_one_suggestion_and_no_accept(session: Any) -> None:
    client, root, _ = session
    before = await acceptance(client)
    uri, item = await copy_item(client, root)
    text = type_at_end(client, uri, 2, COPY_AT, COPIED[0])
    rest = await inline(client, uri, text)  # the rest of the same suggestion, under a new id
    assert rest is not None and rest.insert_text == COPIED[1:]
    assert argument(rest)["id"] != argument(item)["id"]
    assert (argument(rest)["source"], argument(rest)["from"]) == ("copy", "lib/utils.js:5")  # still that copy
    text = type_at_end(client, uri, 3, text, COPIED[1:])
    await inline(client, uri, text)
    after = await acceptance(client)
    copy_before, copy_after = counts(before, "copy"), counts(after, "copy")
    assert copy_after["shown"] == copy_before["shown"] + 1
    assert copy_after["typed_through"] == copy_before["typed_through"] + 1
    assert copy_after["accepted"] == copy_before["accepted"]
    # Accepting the rest shown after one typed character accepts the suggestion it continues.
    uri, item = await copy_item(client, root)
    text = type_at_end(client, uri, 2, COPY_AT, COPIED[:3])
    rest = await inline(client, uri, text)
    assert rest is not None
    accept(client, rest)
    await asyncio.sleep(0.2)
    final = counts(await acceptance(client), "copy")
    assert (final["shown"], final["accepted"]) == (copy_after["shown"] + 1, copy_after["accepted"] + 1)


async def test_the_model_s_multi_line_completion_counts_as_model_and_multi_line(session: Any) -> None:
    client, root, _ = session
    before = await acceptance(client)
    uri = open_doc(client, root, "function add(a, b) {\n\n}\n")
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=1, character=0),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
        )
    )
    (item,) = result.items
    assert "return a + b" in str(item.insert_text)
    arg = argument(item)
    assert arg["source"] == "model" and "from" not in arg
    accept(client, item)
    await asyncio.sleep(0.2)
    after = await acceptance(client)
    assert counts(after, "model")["accepted"] == counts(before, "model")["accepted"] + 1
    assert after["by_lines"]["multi"]["accepted"] == before["by_lines"]["multi"]["accepted"] + 1
    assert counts(after, "copy") == counts(before, "copy")


async def test_a_classic_item_names_its_origin_and_accepts_through_execute_command(session: Any) -> None:
    client, root, _ = session
    await copy_item(client, root)  # the index is ready
    uri = open_doc(client, root, COPY_AT)
    result = await client.text_document_completion_async(
        types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=end_of(COPY_AT))
    )
    items = result.items if isinstance(result, types.CompletionList) else result
    assert items and items[0].detail is not None and "copied from lib/utils.js:5" in items[0].detail
    command = items[0].command
    assert command is not None and command.command == "codeparrot.accepted"
    before = counts(await acceptance(client), "copy")["accepted"]
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command.command, arguments=command.arguments)
    )
    assert counts(await acceptance(client), "copy")["accepted"] == before + 1


async def test_an_accept_of_an_unknown_item_changes_nothing(session: Any) -> None:
    client, _, _ = session
    before = await acceptance(client)
    client.protocol.notify("codeparrot/accepted", {"id": "no-such-item"})
    client.protocol.notify("codeparrot/accepted", {"acceptedLength": 3})
    await asyncio.sleep(0.2)
    assert (await acceptance(client))["by_source"] == before["by_source"]


async def test_nothing_is_written_or_sent_without_the_log_and_the_log_holds_text_only_when_asked(
    session: Any, tmp_path: Path
) -> None:
    client, root, audit = session
    started = audit_records(audit)  # the start (imports probing /dev/null and a temp file)
    assert [r for r in started if r["event"] != "write"] == [], "no network call at all"
    _, item = await copy_item(client, root)
    accept(client, item)
    _, item = await copy_item(client, root)
    accept(client, item, length=3)
    await asyncio.sleep(0.2)
    await acceptance(client)
    assert audit_records(audit)[len(started) :] == [], "no file written, nothing sent while the log is off"

    log = tmp_path / "logs" / "acceptance.jsonl"
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"codeparrot": {"acceptanceLog": str(log)}})
    )
    _, item = await copy_item(client, root)
    accept(client, item)
    await asyncio.sleep(0.2)
    await acceptance(client)
    written = {r["path"] for r in audit_records(audit)[len(started) :] if r["event"] == "write"}
    assert written == {str(log)}
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in events] == ["shown", "accepted"]
    assert events[1]["source"] == "copy" and events[1]["from"] == "lib/utils.js:5"
    assert "text" not in events[1] and "line_before" not in events[1]
    assert COPIED not in log.read_text() and "globalInv" not in log.read_text()

    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"codeparrot": {"acceptanceLogText": True}})
    )
    _, item = await copy_item(client, root)
    accept(client, item)
    await asyncio.sleep(0.2)
    await acceptance(client)
    last = json.loads(log.read_text().splitlines()[-1])
    assert (last["event"], last["text"], last["line_before"]) == ("accepted", COPIED, COPY_AT)
    assert [r for r in audit_records(audit) if r["event"] != "write"] == []
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"codeparrot": {"acceptanceLog": "", "acceptanceLogText": False}}
        )
    )
