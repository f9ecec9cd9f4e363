"""What users accept: shown / accepted counts per source of ghost text, kept in memory.

Every completion the server answers gets an id; the item carries a `command` (`codeparrot.accepted`
with that id) that the editor runs when the user accepts it (VS Code runs an inline item's command
after inserting it; Neovim runs a classic item's command through `workspace/executeCommand`). A
partial accept (word by word, line by line) arrives as `codeparrot/accepted` with `acceptedLength`.

One suggestion is counted once: typing its next characters brings back its rest (a typed-ahead
cache hit, or the same text recomputed), which continues the same suggestion under a new id rather
than showing a new one; typing all of it without accepting is `typed_through`, not an accept.

Nothing leaves the process: the counts are answered by `codeparrot/stats`, and a JSONL log
(`AcceptanceLog`) is written only when the user names a file for it (`acceptanceLog`), holding the
completion's text only with `acceptanceLogText` on.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types

from server.provenance import Provenance

log = logging.getLogger(__name__)

ACCEPT_COMMAND = "codeparrot.accepted"  # an item's `command`: the client runs it on accept
ACCEPTED_METHOD = "codeparrot/accepted"  # the notification a client sends (also for partial accepts)
# The sources of a completion (`Outcome.source`): a sure character-level copy, a next-line analogy,
# the model in process, the completion cache (a hit not continuing a shown suggestion), a remote
# engine, and a name completed from the workspace's names.
SOURCES = ("copy", "analogy", "model", "cache", "remote", "names")
KEEP = 2000  # suggestions remembered for a later accept: one per distinct ghost text, ~200 bytes each
ANCHOR_CHARS = 200  # text before the cursor that ties a typed-ahead request to the suggestion shown
LOG_MAX_BYTES = 5_000_000  # then the log moves to `<name>.1` (replacing it) and starts again: "small"
TEXT_MAX_CHARS = 2000  # of a completion or its line kept in the log (with acceptanceLogText only)


@dataclass
class Suggestion:
    source: str
    multiline: bool
    text: str
    anchor: str  # the ANCHOR_CHARS before the cursor when it was shown
    prefix_len: int
    provenance: Provenance | None
    line_before: str  # the cursor line before the cursor (logged with acceptanceLogText only)
    state: str = "shown"  # shown | partial | accepted | typed_through
    accepted_chars: int = 0
    ids: list[str] = field(default_factory=list)


def _counts() -> dict[str, int]:
    return {"shown": 0, "accepted": 0, "partial": 0, "typed_through": 0}


class AcceptanceLog:
    """Appends one JSON object per event to a file the user chose; opened per event (events are
    per suggestion, not per keystroke), moved aside at LOG_MAX_BYTES."""

    def __init__(self, path: str, with_text: bool) -> None:
        self.path = Path(path).expanduser()
        self.with_text = with_text
        self._failed = False

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists() and self.path.stat().st_size + len(line) > LOG_MAX_BYTES:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)
        except OSError as exc:  # a full disk or a bad path costs the log, never a completion
            if not self._failed:
                log.warning("acceptance log %s not written: %s", self.path, exc)
            self._failed = True


class Feedback:
    """Thread-safe acceptance counts; `shown` on each answered completion, `accepted` on each
    accept the client reports."""

    def __init__(self, keep: int = KEEP) -> None:
        self._lock = threading.Lock()
        self._keep = keep
        self._ids = itertools.count(1)
        self._by_id: OrderedDict[str, tuple[Suggestion, int]] = OrderedDict()  # id -> (suggestion, chars typed before)
        self._last: dict[str, Suggestion] = {}  # per document: the suggestion shown last
        self._by_source: dict[str, dict[str, int]] = {}
        self._by_lines: dict[str, dict[str, int]] = {"single": _counts(), "multi": _counts()}
        self._by_file: dict[str, dict[str, int]] = {}  # copies and analogies, by the file copied from
        self.log: AcceptanceLog | None = None

    def configure(self, path: str, with_text: bool) -> None:
        """Log to `path` from now on ("" = no log, nothing written)."""
        with self._lock:
            if not path:
                self.log = None
            elif self.log is None or self.log.path != Path(path).expanduser() or self.log.with_text != with_text:
                self.log = AcceptanceLog(path, with_text)

    def shown(
        self,
        uri: str,
        prefix: str,
        text: str,
        source: str,
        multiline: bool,
        provenance: Provenance | None = None,
    ) -> tuple[str, str, Provenance | None]:
        """The id of the item showing `text` after `prefix` in `uri` (a new suggestion's, or, when
        the user typed on into the one shown last, that suggestion's again under a new id), and the
        suggestion's source and origin (a typed-ahead rest of a copy is still that copy)."""
        with self._lock:
            item_id = str(next(self._ids))
            last = self._last.get(uri)
            typed = len(prefix) - last.prefix_len if last is not None else -1
            if last is not None and 0 <= typed <= len(last.text) and prefix.endswith(last.anchor + last.text[:typed]):
                if typed < len(last.text) and text == last.text[typed:]:
                    self._remember(item_id, last, typed)
                    return item_id, last.source, last.provenance
                self._typed_through(uri, prefix)
            suggestion = Suggestion(
                source,
                multiline,
                text,
                prefix[-ANCHOR_CHARS:],
                len(prefix),
                provenance,
                prefix[prefix.rfind("\n") + 1 :],
            )
            self._last[uri] = suggestion
            self._remember(item_id, suggestion, 0)
            self._count(suggestion, "shown")
            self._write("shown", suggestion)
            return item_id, source, provenance

    def typed(self, uri: str, prefix: str) -> None:
        """A request at the end of `prefix`: the suggestion shown last in `uri` may have been
        typed through (every character typed without an accept)."""
        with self._lock:
            self._typed_through(uri, prefix)

    def _typed_through(self, uri: str, prefix: str) -> None:
        last = self._last.get(uri)
        if last is None or last.state != "shown" or len(prefix) - last.prefix_len != len(last.text):
            return
        if prefix.endswith(last.anchor + last.text):
            last.state = "typed_through"
            self._count(last, "typed_through")
            self._write("typed_through", last)

    def accepted(self, item_id: str, accepted_length: int | None = None) -> bool:
        """Count an accept of item `item_id` (its whole text, or its first `accepted_length`
        characters); False for an id this server never gave (or long forgotten)."""
        with self._lock:
            found = self._by_id.get(item_id)
            if found is None:
                return False
            suggestion, before = found
            whole = accepted_length is None or before + accepted_length >= len(suggestion.text)
            if suggestion.state == "accepted":
                return True
            if whole:
                if suggestion.state == "partial":
                    self._count(suggestion, "partial", -1)
                suggestion.state, suggestion.accepted_chars = "accepted", len(suggestion.text)
                self._count(suggestion, "accepted")
                self._write("accepted", suggestion)
                return True
            assert accepted_length is not None
            if suggestion.state != "partial":
                self._count(suggestion, "partial")
            suggestion.state = "partial"
            suggestion.accepted_chars = max(suggestion.accepted_chars, before + max(accepted_length, 0))
            self._write("partial", suggestion)
            return True

    def forget(self, uri: str) -> None:
        """A closed document has no suggestion on screen any more."""
        with self._lock:
            self._last.pop(uri, None)

    def snapshot(self) -> dict[str, Any]:
        """Counts and accept rates per source, per single/multi-line, and per file copied from."""
        with self._lock:
            return {
                "by_source": {s: _with_rate(c) for s, c in self._by_source.items()},
                "by_lines": {k: _with_rate(c) for k, c in self._by_lines.items()},
                # A list, not an object keyed by path: a path is no identifier (JSON-RPC clients
                # that turn objects into attributes would mangle it).
                "copies_by_file": [
                    {"file": p, **_with_rate(c)}
                    for p, c in sorted(self._by_file.items(), key=lambda item: -item[1]["shown"])
                ],
                "log": str(self.log.path) if self.log is not None else None,
            }

    def _remember(self, item_id: str, suggestion: Suggestion, typed: int) -> None:
        self._by_id[item_id] = (suggestion, typed)
        suggestion.ids.append(item_id)
        while len(self._by_id) > self._keep:
            self._by_id.popitem(last=False)

    def _count(self, suggestion: Suggestion, what: str, n: int = 1) -> None:
        self._by_source.setdefault(suggestion.source, _counts())[what] += n
        self._by_lines["multi" if suggestion.multiline else "single"][what] += n
        if suggestion.provenance is not None:
            self._by_file.setdefault(suggestion.provenance.path, _counts())[what] += n

    def _write(self, event: str, suggestion: Suggestion) -> None:
        if self.log is None:
            return
        record: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "event": event,
            "id": suggestion.ids[0],
            "source": suggestion.source,
            "lines": "multi" if suggestion.multiline else "single",
            "chars": len(suggestion.text),
        }
        if event == "partial":
            record["accepted_chars"] = suggestion.accepted_chars
        if suggestion.provenance is not None:
            record["from"] = suggestion.provenance.label()
        if self.log.with_text:
            record["text"] = suggestion.text[:TEXT_MAX_CHARS]
            record["line_before"] = suggestion.line_before[-TEXT_MAX_CHARS:]
        self.log.write(record)


def _with_rate(counts: dict[str, int]) -> dict[str, Any]:
    shown = counts["shown"]
    return {**counts, "accept_rate": round(counts["accepted"] / shown, 4) if shown else None}


def accept_command(item_id: str, source: str, origin: Provenance | None) -> types.Command:
    """The `command` of an item: its id (and, for the editor to show, its source and origin)."""
    argument: dict[str, Any] = {"id": item_id, "source": source}
    if origin is not None:
        argument["from"] = origin.label()
    return types.Command(title="CodeParrot: completion accepted", command=ACCEPT_COMMAND, arguments=[argument])


def accepted_params(params: Any) -> tuple[str, int | None] | None:
    """(item id, accepted length or None for the whole) from `codeparrot/accepted`'s params (an
    object, as pygls hands it: attributes, or a dict), or None when they name no item."""
    get = params.get if isinstance(params, dict) else lambda name: getattr(params, name, None)
    item_id, length = get("id"), get("acceptedLength")
    if isinstance(item_id, int) and not isinstance(item_id, bool):
        item_id = str(item_id)
    if not isinstance(item_id, str):
        return None
    if not (isinstance(length, int) and not isinstance(length, bool) and length >= 0):
        length = None
    return item_id, length
