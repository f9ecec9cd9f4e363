"""A remote engine gets the workspace too: the real server over stdio with `backend: openai`
against the fake engine (a real HTTP server), on a real workspace folder indexed with the shipped
model's tokenizer. A sure copy is answered before the engine is asked, with its origin; the
engine's prompt starts with path-labelled similar code from another file, within
`backendSnippetTokens` (0: none). A weaker copy (a split vote) asks the engine for log-probabilities
to weigh it against; an engine that sends none keeps its answer (tests/server/backends/test_llama_server.py
weighs them with the real llama.cpp server)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fake_engine import Engine, serve
from lsp_wire import REPO, open_folder, server_command, server_env
from lsprotocol import types
from pytest_lsp import make_test_lsp_client

UTILS = (
    "export function computeWidgetTotals(inventory, warehouse) {\n"
    "  const scaled = inventory.count * warehouse.factor;\n"
    "  return Math.round(scaled * 100) / 100;\n"
    "}\n"
    "\n"
    "export const grandTotal = computeWidgetTotals(globalInventory, mainWarehouse);\n"
)
RENDER = (
    "render(widgetTable, { compact: true });\n"
    "render(widgetTable, { compact: true });\n"
    "render(widgetTable, { compact: false });\n"
)
MOSTLY_AT = "render(widgetTable, { comp"  # 2 of 3 occurrences go on `act: true });`
THROWS = "function a(err) {\n  if (err) throw zorblax;\n}\nfunction b(err) {\n  if (err) throw quuxed;\n}\n"
SPLIT_AT = "function f(err) {\n  if (err) throw "  # one occurrence each way: a weaker copy
COPY_AT = "const subtotal = computeWidgetTotals(globalInv"
SIMILAR = (
    "export function computeWidgetAverages(inventory, warehouse) {\n"
    "  const scaled = inventory.count * warehouse.factor;\n"
    "  let zq = "
)


def open_doc(client: Any, uri: str, text: str) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="javascript", version=1, text=text)
        )
    )


async def inline(client: Any, uri: str, text: str) -> types.InlineCompletionItem | None:
    lines = text.split("\n")
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=len(lines) - 1, character=len(lines[-1])),
            context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked),
        )
    )
    return result.items[0] if result.items else None


def argument(item: types.InlineCompletionItem) -> dict[str, Any]:
    assert item.command is not None
    arg = item.command.arguments[0]
    return {k: v for k, v in arg._asdict().items()} if hasattr(arg, "_asdict") else dict(arg)


@pytest.mark.asyncio
async def test_a_remote_engine_gets_copies_first_and_similar_code_in_its_prompt(
    trained_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "ws"
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "utils.js").write_text(UTILS)
    (root / "lib" / "render.js").write_text(RENDER)
    (root / "lib" / "throws.js").write_text(THROWS)
    engine = Engine()
    engine.chunks = ["scaled", ";"]
    with serve(engine) as (_, url):
        client = make_test_lsp_client()
        await client.start_io(*server_command(trained_dir), cwd=REPO, env=server_env())
        await open_folder(client, root, backend="openai", backendUrl=url, maxNewTokens=16)
        try:
            first = (root / "caller.js").as_uri()
            open_doc(client, first, COPY_AT)
            item = None
            for _ in range(60):  # the index builds in the background
                item = await inline(client, first, COPY_AT)
                if item is not None and argument(item)["source"] == "copy":
                    break
                await asyncio.sleep(0.5)
            assert item is not None and argument(item)["source"] == "copy", item
            asked = len(engine.bodies)
            second = (root / "caller2.js").as_uri()
            open_doc(client, second, COPY_AT)
            item = await inline(client, second, COPY_AT)
            assert item is not None and item.insert_text == "entory, mainWarehouse);"
            assert argument(item) | {"id": ""} == {"id": "", "source": "copy", "from": "lib/utils.js:6"}
            assert len(engine.bodies) == asked, "a sure copy never reaches the engine"

            # Not unanimous, but most occurrences of a long tail agree: copied too, no request.
            mostly = (root / "mostly.js").as_uri()
            open_doc(client, mostly, MOSTLY_AT)
            item = await inline(client, mostly, MOSTLY_AT)
            assert item is not None and item.insert_text == "act: true });"
            assert argument(item)["source"] == "copy" and argument(item)["from"].startswith("lib/render.js:")
            assert len(engine.bodies) == asked

            # Split one to one: the engine is asked, with `logprobs`; this engine scores nothing,
            # so its answer stands, as it did before copies were weighed.
            split = (root / "split.js").as_uri()
            open_doc(client, split, SPLIT_AT)
            item = await inline(client, split, SPLIT_AT)
            assert item is not None and item.insert_text == "scaled;" and argument(item)["source"] == "remote"
            assert len(engine.bodies) == asked + 1 and engine.bodies[-1]["logprobs"] == 5

            similar = (root / "averages.js").as_uri()
            open_doc(client, similar, SIMILAR)
            item = await inline(client, similar, SIMILAR)
            assert item is not None and argument(item)["source"] == "remote"
            prompt = engine.bodies[-1]["prompt"]
            assert prompt.startswith("// lib/utils.js\n") and prompt.endswith(SIMILAR), prompt
            assert "return Math.round(scaled * 100) / 100;" in prompt  # the other file's code
            assert "logprobs" not in engine.bodies[-1]  # no copy to weigh: no scores asked for

            client.workspace_did_change_configuration(
                types.DidChangeConfigurationParams(settings={"codeparrot": {"backendSnippetTokens": 0}})
            )
            none = (root / "averages2.js").as_uri()
            open_doc(client, none, SIMILAR)
            await inline(client, none, SIMILAR)
            assert engine.bodies[-1]["prompt"] == SIMILAR  # the prefix alone
        finally:
            await client.shutdown_session()
            await client.stop()
