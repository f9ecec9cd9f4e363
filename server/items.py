"""LSP items from a finished completion: ghost text (`InlineCompletionItem`) and a classic menu
item (`CompletionItem`), each with the command an accept runs (`server.feedback`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lsprotocol import types

from server.completion import Outcome
from server.documents import Document
from server.feedback import Feedback, accept_command
from server.provenance import Provenance, provenance

_WORD_TAIL = re.compile(r"[\w$]*\Z")


@dataclass
class Answer:
    """What one completion request answers: the Completer's `Outcome` at its place in the
    document (the LSP layer's result; the pipeline's is `Outcome`, an engine's
    `GenerationResult`, a remote engine's `BackendResult`)."""

    outcome: Outcome
    document: Document
    offset: int
    position: types.Position


def origin_of(done: Answer, folders: Iterable[Path]) -> Provenance | None:
    """Where a copy or an analogy came from, relative to the workspace folders; None for others."""
    return provenance(done.outcome.copied_from, done.document.uri, [str(folder) for folder in folders])


def shown(feedback: Feedback, done: Answer, origin: Provenance | None) -> types.Command:
    """Count `done` as shown (or as the suggestion it continues); the command an accept runs."""
    outcome, prefix = done.outcome, done.document.text[: done.offset]
    item = feedback.shown(done.document.uri, prefix, outcome.text, outcome.source, outcome.multiline, origin)
    return accept_command(*item)


def inline_item(
    done: Answer, selected: types.SelectedCompletionInfo | None, command: types.Command
) -> types.InlineCompletionItem:
    """Ghost text at the cursor; with the editor's suggest widget open on an item, the item and
    the completion together over the item's range (VS Code shows only ghost text extending it)."""
    if selected is not None:
        return types.InlineCompletionItem(
            insert_text=selected.text + done.outcome.text, range=selected.range, command=command
        )
    here = types.Range(start=done.position, end=done.position)
    return types.InlineCompletionItem(insert_text=done.outcome.text, range=here, command=command)


def classic_item(
    done: Answer, position: types.Position, command: types.Command, origin: Provenance | None
) -> types.CompletionItem:
    """One menu item replacing the word before the cursor with that word and the completion."""
    word = word_before(done.document.text, done.offset)
    new_text = word + done.outcome.text
    start = done.document.position_at(done.offset - len(word))
    lines = [line.strip() for line in new_text.splitlines() if line.strip()]
    label = (lines[0] if lines else new_text) + (" …" if len(lines) > 1 else "")
    return types.CompletionItem(
        label=label,
        kind=types.CompletionItemKind.Text,
        detail="codeparrot"
        + (" (multi-line)" if done.outcome.multiline else "")
        + (f" · copied from {origin.label()}" if origin is not None else ""),
        command=command,
        filter_text=new_text,
        sort_text="0",  # model completions first: they are the reason this server exists
        insert_text_format=types.InsertTextFormat.PlainText,
        text_edit=types.TextEdit(range=types.Range(start=start, end=position), new_text=new_text),
    )


def word_before(text: str, offset: int) -> str:
    """The identifier characters right before `offset` (what a classic completion replaces)."""
    match = _WORD_TAIL.search(text, max(0, offset - 200), offset)
    return match.group(0) if match else ""
