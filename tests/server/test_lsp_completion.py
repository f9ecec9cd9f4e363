"""End to end over stdio with pytest-lsp: the real server subprocess and a tiny trained GPT-2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsp_wire import REPO, server_command, server_env, wait_until_loaded
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pytest_lsp import LanguageClient, client_capabilities, make_test_lsp_client

pytestmark = pytest.mark.asyncio(loop_scope="module")

ADD = "function add(a, b) {\n\n}\n"  # cursor on line 1: an empty block body -> multi-line
FOR = "const fs = require("  # cursor at the end -> single line



@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(trained_dir: Path) -> Any:
    lsp = make_test_lsp_client()
    await lsp.start_io(*server_command(trained_dir, "--max-new-tokens", "24"), cwd=REPO, env=server_env())
    params = types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        # These tests open many copies of the same few lines as separate documents: copying from
        # one into another (tests/server/test_lsp_workspace.py) would mask the model's own output.
        initialization_options={"codeparrot": {"multiline": "auto", "workspaceIndex": "off"}},
    )
    lsp.init_result = await lsp.initialize_session(params)  # type: ignore[attr-defined]
    await wait_until_loaded(lsp)
    yield lsp
    await lsp.shutdown_session()
    await lsp.stop()


_docs = iter(range(1_000_000))


def open_doc(client: LanguageClient, text: str, language_id: str = "javascript") -> str:
    uri = f"file:///work/doc{next(_docs)}.js"
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id=language_id, version=1, text=text)
        )
    )
    return uri


def end_of(text: str) -> types.Position:
    lines = text.split("\n")
    return types.Position(line=len(lines) - 1, character=len(lines[-1].encode("utf-16-le")) // 2)


def insert(client: LanguageClient, uri: str, version: int, at: types.Position, text: str) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(range=types.Range(start=at, end=at), text=text)
            ],
        )
    )


async def inline(client: LanguageClient, uri: str, pos: types.Position) -> list[types.InlineCompletionItem]:
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=pos,
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
        )
    )
    assert isinstance(result, types.InlineCompletionList)
    return list(result.items)


async def classic(client: LanguageClient, uri: str, pos: types.Position) -> types.CompletionList:
    result = await client.text_document_completion_async(
        types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=pos)
    )
    assert isinstance(result, types.CompletionList)
    return result


async def stats(client: LanguageClient) -> dict[str, Any]:
    return plain(await client.protocol.send_request_async("codeparrot/stats", None))


def plain(obj: Any) -> Any:
    """pygls hands untyped results over as nested namedtuples; turn them back into dicts."""
    if hasattr(obj, "_asdict"):
        return {k: plain(v) for k, v in obj._asdict().items()}
    return obj


async def test_capabilities_advertise_both_completion_kinds_and_incremental_sync(client: Any) -> None:
    caps = client.init_result.capabilities
    assert caps.inline_completion_provider
    assert caps.completion_provider is not None and "." in caps.completion_provider.trigger_characters
    sync = caps.text_document_sync
    assert getattr(sync, "change", sync) == types.TextDocumentSyncKind.Incremental
    assert client.init_result.server_info.name == "codeparrot-lsp"


async def test_inline_completion_in_empty_block_is_multiline_and_stops_at_block_end(client: Any) -> None:
    uri = open_doc(client, ADD)
    pos = types.Position(line=1, character=0)
    items = await inline(client, uri, pos)
    assert len(items) == 1
    assert items[0].range == types.Range(start=pos, end=pos)
    text = items[0].insert_text
    assert isinstance(text, str) and "return a + b" in text
    assert "}" not in text  # the closing brace already exists after the cursor


async def test_classic_completion_replaces_the_word_prefix(client: Any) -> None:
    text = "const fs = req"
    uri = open_doc(client, text)
    result = await classic(client, uri, end_of(text))
    assert result.is_incomplete is True
    (item,) = result.items
    edit = item.text_edit
    assert isinstance(edit, types.TextEdit)
    assert edit.range.start == types.Position(line=0, character=len("const fs = "))
    assert edit.range.end == end_of(text)
    assert edit.new_text.startswith("req") and len(edit.new_text) > len("req")
    assert "\n" not in edit.new_text  # end of a statement line: single-line
    assert "multi-line" not in (item.detail or "")


async def test_single_and_multi_line_decisions_are_visible(client: Any) -> None:
    multi = (await classic(client, open_doc(client, ADD), types.Position(line=1, character=0))).items
    single = (await classic(client, open_doc(client, FOR), end_of(FOR))).items
    assert multi and "(multi-line)" in (multi[0].detail or "")
    assert single and "(multi-line)" not in (single[0].detail or "")
    single_edit = single[0].text_edit
    assert isinstance(single_edit, types.TextEdit) and "\n" not in single_edit.new_text


async def test_other_languages_get_nothing(client: Any) -> None:
    uri = open_doc(client, "def add(a, b):\n    ", language_id="python")
    assert await inline(client, uri, types.Position(line=1, character=4)) == []
    assert not (await classic(client, uri, types.Position(line=1, character=4))).items


async def test_incremental_edits_give_the_same_completion_as_the_full_text(client: Any) -> None:
    uri = open_doc(client, "")
    pos = types.Position(line=0, character=0)
    version = 1
    for ch in FOR:  # typed one character at a time, newlines included
        version += 1
        insert(client, uri, version, pos, ch)
        pos = (
            types.Position(line=pos.line + 1, character=0)
            if ch == "\n"
            else types.Position(line=pos.line, character=pos.character + 1)
        )
    assert pos == end_of(FOR)
    typed = await inline(client, uri, pos)
    fresh = await inline(client, open_doc(client, FOR), end_of(FOR))
    assert typed and [i.insert_text for i in typed] == [i.insert_text for i in fresh]


async def test_utf16_positions_after_an_emoji(client: Any) -> None:
    text = 'const s = "😀"; const fs = req'
    uri = open_doc(client, text)
    end = end_of(text)
    assert end.character == len(text) + 1  # the emoji is two UTF-16 code units
    result = await classic(client, uri, end)
    (item,) = result.items
    assert isinstance(item.text_edit, types.TextEdit)
    assert item.text_edit.range.start.character == end.character - len("req")
    # Inside the surrogate pair: a clear error (the client counts positions differently).
    with pytest.raises(JsonRpcInvalidParams):
        await inline(client, uri, types.Position(line=0, character=text.index("😀") + 1))


async def test_typing_one_character_recomputes_only_the_tail(client: Any) -> None:
    uri = open_doc(client, FOR)
    pos = end_of(FOR)
    first = await inline(client, uri, pos)
    before = await stats(client)
    assert before["last"]["prompt_tokens_computed"] == before["last"]["prompt_tokens"] > 3
    typed = "x" if not first or not first[0].insert_text.startswith("x") else "z"  # not a typed-ahead hit
    insert(client, uri, 2, pos, typed)
    await inline(client, uri, types.Position(line=pos.line, character=pos.character + 1))
    after = await stats(client)
    assert after["stages_ms"]["generate"]["count"] == before["stages_ms"]["generate"]["count"] + 1
    assert after["last"]["prompt_tokens_computed"] < before["last"]["prompt_tokens_computed"]
    assert after["last"]["prompt_tokens_computed"] <= 4


async def test_typing_the_shown_completion_is_answered_from_the_cache(client: Any) -> None:
    uri = open_doc(client, FOR)
    pos = end_of(FOR)
    (shown,) = await inline(client, uri, pos)
    assert isinstance(shown.insert_text, str) and len(shown.insert_text) >= 2
    before = await stats(client)
    insert(client, uri, 2, pos, shown.insert_text[0])
    (rest,) = await inline(client, uri, types.Position(line=pos.line, character=pos.character + 1))
    after = await stats(client)
    assert rest.insert_text == shown.insert_text[1:]
    assert after["cache_hits"] == before["cache_hits"] + 1
    assert after["stages_ms"]["generate"]["count"] == before["stages_ms"]["generate"]["count"]


async def test_stats_shape(client: Any) -> None:
    snap = await stats(client)
    for key in ("requests", "cancelled", "cache_hits"):
        assert isinstance(snap[key], int)
    assert set(snap["last"]) >= {"prompt_tokens", "prompt_tokens_computed", "new_tokens"}
    gen = snap["stages_ms"]["generate"]
    assert gen["p50"] <= gen["p95"] <= gen["p99"] and gen["count"] >= 1


async def test_settings_change_valid_and_invalid(client: Any) -> None:
    uri = open_doc(client, ADD)
    pos = types.Position(line=1, character=0)
    client.messages.clear()
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"codeparrot": {"maxNewTokens": "lots", "multiline": "never"}}
        )
    )
    snap = await stats(client)  # a request round trip: the notification has been handled
    errors = [m for m in client.messages if m.type == types.MessageType.Error]
    assert len(errors) == 1 and "maxNewTokens" in errors[0].message
    assert snap["model"]["loaded"]  # max tokens/multiline do not reload the model
    never = (await classic(client, uri, pos)).items
    assert all("(multi-line)" not in (i.detail or "") for i in never)  # multiline=never applied

    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"codeparrot": {"enable": False}})
    )
    assert not await inline(client, open_doc(client, FOR), end_of(FOR))
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"maxNewTokens": 2, "enable": True, "multiline": "auto"}
        )  # flat
    )
    await inline(client, open_doc(client, FOR), end_of(FOR))
    assert (await stats(client))["last"]["new_tokens"] <= 2
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"codeparrot": {"maxNewTokens": 24}})
    )


async def test_unknown_document_and_bad_position_are_invalid_params(client: Any) -> None:
    with pytest.raises(JsonRpcInvalidParams, match="not open"):
        await inline(client, "file:///never/opened.js", types.Position(line=0, character=0))
    uri = open_doc(client, "let a = 1;\n")
    with pytest.raises(JsonRpcInvalidParams):
        await classic(client, uri, types.Position(line=9, character=0))
    assert (await stats(client))["requests"] >= 1  # still serving


async def test_inline_completion_extends_the_selected_suggest_item(client: Any) -> None:
    """VS Code shows ghost text with its suggest widget open only when it extends the selected
    item: the server completes as if the item were inserted and answers item + completion."""
    text = "const fs = req"
    uri = open_doc(client, text)
    selected = types.SelectedCompletionInfo(
        range=types.Range(start=types.Position(line=0, character=len("const fs = ")), end=end_of(text)),
        text="require",
    )
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=end_of(text),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic, selected_completion_info=selected
            ),
        )
    )
    assert isinstance(result, types.InlineCompletionList)
    (item,) = result.items
    assert item.range == selected.range
    assert isinstance(item.insert_text, str) and item.insert_text.startswith("require(")
    # the same as completing the document with the item typed in
    typed = open_doc(client, "const fs = require")
    (plain,) = await inline(client, typed, end_of("const fs = require"))
    assert item.insert_text == "require" + str(plain.insert_text)

    # A range ending past the document (a column past its line's end would be clamped to the cursor).
    after = types.Position(line=end_of(text).line + 1, character=0)
    bad = types.SelectedCompletionInfo(range=types.Range(start=end_of(text), end=after), text="x")
    with pytest.raises(JsonRpcInvalidParams):
        await client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=end_of(text),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked, selected_completion_info=bad
                ),
            )
        )
