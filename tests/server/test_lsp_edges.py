"""The edges of a real day, over stdio with the real server and the trained tiny GPT-2 (prefix-only
prompts, the shipped default `fim: off`): a new empty file, line 0 above text, a column past the
end of a line (LSP clamps it), a line past the end (out of sync: -32602), and the workspace index
built from the start, before any completion is asked."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsp_wire import REPO, open_folder, server_command, server_env, wait_until_loaded
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pytest_lsp import LanguageClient, make_test_lsp_client

pytestmark = pytest.mark.asyncio(loop_scope="module")

HELPER = "export function quuxFormatPrice(cents) {\n  return (cents / 100).toFixed(2);\n}\n"
CART = "import { quuxFormatPrice } from './helper.js';\n\nexport const shown = quuxFormatPrice(total);\n"


def workspace_folder(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "package.json").write_text('{"name": "edges", "version": "1.0.0"}\n')
    (root / "helper.js").write_text(HELPER)
    (root / "cart.js").write_text(CART)
    return root


async def start(model: Path, root: Path, **env: str) -> LanguageClient:
    client = make_test_lsp_client()
    await client.start_io(*server_command(model, "--max-new-tokens", "16"), cwd=REPO, env=server_env(**env))
    await open_folder(client, root)
    return client


async def stats(client: LanguageClient) -> dict[str, Any]:
    return plain(await client.protocol.send_request_async("codeparrot/stats", None))  # type: ignore[no-any-return]


def plain(obj: Any) -> Any:
    """pygls hands untyped results over as nested namedtuples; turn them back into dicts."""
    if hasattr(obj, "_asdict"):
        return {k: plain(v) for k, v in obj._asdict().items()}
    return obj


async def index_when(client: LanguageClient, done: Any, timeout: float = 120.0) -> dict[str, Any]:
    """`codeparrot/stats` polled (no completion asked) until `done(stats)`."""
    deadline = time.monotonic() + timeout
    while not done(snap := await stats(client)):
        assert time.monotonic() < deadline, snap
        await asyncio.sleep(0.1)
    return snap


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(trained_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = workspace_folder(tmp_path_factory.mktemp("edges") / "project")
    lsp = await start(trained_dir, root)
    lsp.root = root  # type: ignore[attr-defined]
    await wait_until_loaded(lsp)
    yield lsp
    await lsp.shutdown_session()
    await lsp.stop()


_docs = iter(range(1_000_000))


def open_doc(client: LanguageClient, text: str) -> str:
    uri = (client.root / f"new{next(_docs)}.js").as_uri()  # type: ignore[attr-defined]
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="javascript", version=1, text=text)
        )
    )
    return uri


async def inline(client: LanguageClient, uri: str, line: int, character: int) -> list[str]:
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=line, character=character),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
    )
    assert isinstance(result, types.InlineCompletionList)
    return [str(item.insert_text) for item in result.items]


async def classic(client: LanguageClient, uri: str, line: int, character: int) -> types.CompletionList:
    result = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=line, character=character)
        )
    )
    assert isinstance(result, types.CompletionList)
    return result


def generated(snap: dict[str, Any]) -> int:
    """How many completions the model generated so far."""
    return int(snap["stages_ms"].get("generate", {}).get("count", 0))


def warnings(client: LanguageClient) -> list[str]:
    """What the server told the user (log and message) at warning level or worse."""
    shown = [m.message for m in client.messages if m.type <= types.MessageType.Warning]
    logged = [m.message for m in client.log_messages if m.type <= types.MessageType.Warning]
    return shown + logged


async def test_an_empty_file_completes_from_the_start_of_a_text(client: LanguageClient) -> None:
    uri = open_doc(client, "")
    before = await stats(client)
    items = await inline(client, uri, 0, 0)
    after = await stats(client)
    assert not warnings(client), warnings(client)
    assert after["requests"] == before["requests"] + 1
    # The model generated (no error, no decline): from the start token, the trained model writes
    # one of the tiny corpus's first lines, or nothing a filter would keep.
    assert generated(after) == generated(before) + 1
    assert all("\n" not in text for text in items)
    assert (await classic(client, uri, 0, 0)).is_incomplete


async def test_line_0_above_text_completes_without_an_error(client: LanguageClient) -> None:
    uri = open_doc(client, "\nfunction add(a, b) {\n  return a + b;\n}\n")
    before = await stats(client)
    await inline(client, uri, 0, 0)
    after = await stats(client)
    assert not warnings(client), warnings(client)
    assert generated(after) == generated(before) + 1


async def test_a_column_past_the_line_end_is_the_line_end(client: LanguageClient) -> None:
    text = "function add(a, b) {\n  return a\n}\n"
    uri = open_doc(client, text)
    at_end = await inline(client, uri, 1, len("  return a"))
    assert at_end  # the trained model completes ` + b;`
    assert await inline(client, uri, 1, len("  return a") + 5) == at_end
    assert await inline(client, uri, 1, 10**6) == at_end
    # The classic item replaces the word before the cursor up to the clamped end of the line.
    (item,) = (await classic(client, uri, 1, 40)).items
    assert isinstance(item.text_edit, types.TextEdit)
    assert item.text_edit.range.start == types.Position(line=1, character=len("  return "))


async def test_a_line_past_the_end_is_out_of_sync(client: LanguageClient) -> None:
    uri = open_doc(client, "const a = 1;\n")
    for line in (2, 50):
        with pytest.raises(JsonRpcInvalidParams, match="out of sync"):
            await inline(client, uri, line, 0)
        with pytest.raises(JsonRpcInvalidParams, match="out of sync"):
            await classic(client, uri, line, 0)


async def test_the_index_is_built_before_any_completion(trained_dir: Path, tmp_path: Path) -> None:
    """The model's tokenizer comes first and the workspace is indexed from it while the weights
    load (here they take 10 s more), with its own progress; `codeparrot/stats` says so, and no
    completion was asked for it."""
    root = workspace_folder(tmp_path / "project")
    lsp = await start(trained_dir, root, CODEPARROT_TEST_FAULTS="load-slow:10000")
    try:
        snap = await index_when(lsp, lambda s: s["index"]["state"] == "ready")
        index = snap["index"]
        assert index["files"] == 2 and index["tokens"] > 20 and index["bytes"] > 0 and index["build_s"] >= 0
        assert snap["requests"] == 0 and snap["copy_while_loading"]["requests"] == 0
        assert not snap["model"]["loaded"]  # the weights are still on their way
        titles = [getattr(reports[0], "title", "") for reports in lsp.progress_reports.values() if reports]
        assert any("indexing" in title for title in titles), titles
    finally:
        await lsp.shutdown_session()
        await lsp.stop()


async def test_index_state_is_off_with_the_setting(client: LanguageClient) -> None:
    snap = await stats(client)
    assert snap["index"]["state"] == "ready" and snap["index"]["files"] >= 2
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"codeparrot": {"workspaceIndex": "off"}})
    )
    try:
        assert (await stats(client))["index"]["state"] == "off"
    finally:
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"codeparrot": {"workspaceIndex": "on"}})
        )


async def test_a_closed_document_leaves_no_cached_completion_or_kv_cache(client: LanguageClient) -> None:
    """didClose forgets the document's cached completions and its KV cache: the same text opened
    again under the same URI is completed afresh, its whole prompt computed."""
    text = "function add(a, b) {\n  return a\n}\n"
    uri = open_doc(client, text)
    await inline(client, uri, 1, 10)
    first = await stats(client)
    await inline(client, uri, 1, 10)
    again = await stats(client)
    assert again["cache_hits"] == first["cache_hits"] + 1  # asked twice: the second from the cache
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="javascript", version=1, text=text)
        )
    )
    await inline(client, uri, 1, 10)
    reopened = await stats(client)
    assert reopened["cache_hits"] == again["cache_hits"]
    assert generated(reopened) == generated(again) + 1
    last = reopened["last"]
    assert last["prompt_tokens_computed"] == last["prompt_tokens"] > 3, last
