"""The LSP side of workspace retrieval: which folders, when to (re)index, and events to updates.

`initialize` gives the folders. The index is in the model's token ids, so it is built as soon as
the model's tokenizer is loaded (`server.loader`, long before the weights are; a remote engine's
is built with the shipped model's tokenizer), in a background thread with `$/progress`;
completions run without it meanwhile. Any tokenizer with the same
vocabulary serves (`vocabulary_key`): the one loaded early and the engine's own share the index.

Open documents win over disk: `didOpen/didChange` mark a document dirty and the next completion
in *another* document re-indexes it first (the document being typed in is never needed in the
index: the completer searches its own text directly); `didClose` goes back to the file on disk
(or out of the index, for a file outside the folders), `workspace/didChangeWatchedFiles` follows
disk changes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls import uris
from pygls.lsp.server import LanguageServer

from server.progress import ProgressBar
from server.retrieval.files import MAX_TOTAL_BYTES, is_candidate, read_text, scan_workspace
from server.retrieval.index import WorkspaceIndex
from server.retrieval.vocab import new_index, vocabulary_key

log = logging.getLogger(__name__)

Progress = Callable[[str, int | None], None]  # (message, percentage; 100 = done), from the index thread
# The files the client watches for us: what `is_candidate` may index.
WATCHED_GLOB = "**/*.{js,mjs,cjs,jsx,ts,tsx}"


class WorkspaceIndexer:
    """The workspace folders and their index (`server.retrieval.index.WorkspaceIndex`), kept up
    to date from LSP events. (pygls' `server.workspace` is the client's view of the documents.)"""

    def __init__(self, max_total_bytes: int = MAX_TOTAL_BYTES) -> None:
        self.folders: list[Path] = []
        self.max_total_bytes = max_total_bytes
        self.index: WorkspaceIndex | None = None
        self._vocabulary: tuple[tuple[int, int], bool] | None = None  # and whether with snippet windows
        self._dirty: dict[str, str] = {}  # uri -> latest text not yet indexed
        self._lock = threading.Lock()
        self.ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = "not_started"  # then "building", then "ready" or "failed"
        self._build_s = 0.0
        # uri -> hash of the text the index holds for it: closing a document that was never
        # edited (or saved as indexed) re-indexes nothing, and the index's delta stays small.
        self._indexed: dict[str, int] = {}
        self._touched: set[str] = set()  # uris updated or removed while a build runs
        self._attaching = asyncio.Lock()  # one build (and progress bar) started at a time
        self._background: set[asyncio.Future[Any]] = set()  # `index_soon` tasks, referenced until done

    def set_folders(self, folder_uris: list[str]) -> None:
        for uri in folder_uris:
            path = uris.to_fs_path(uri)
            if path:
                self.folders.append(Path(path))
        log.info("workspace folders: %s", [str(f) for f in self.folders])

    def contains(self, path: Path) -> bool:
        return any(path.is_relative_to(f) for f in self.folders)

    # ----- building

    def attached(self, tokenizer: Any, snippets: bool = False) -> bool:
        """Whether the index for this tokenizer's vocabulary exists (built or building)."""
        return self.index is not None and self._vocabulary == (vocabulary_key(tokenizer), snippets)

    def attach(self, tokenizer: Any, progress: Progress | None = None, snippets: bool = False) -> WorkspaceIndex:
        """The index for this tokenizer's vocabulary (with similar-code windows for `snippets`);
        starts its build in the background the first time."""
        vocabulary = (vocabulary_key(tokenizer), snippets)
        with self._lock:
            if self.index is not None and self._vocabulary == vocabulary:
                return self.index
            self.index = new_index(tokenizer, snippets=snippets)
            self._vocabulary = vocabulary
            self.ready.clear()
            self._state = "building"
            self._indexed, self._touched = {}, set()
            index = self.index
            self._thread = threading.Thread(target=self._build, args=(index, progress), name="index", daemon=True)
            self._thread.start()
            return index

    async def attach_async(
        self, tokenizer: Any, begin: Callable[[], Awaitable[ProgressBar | None]], snippets: bool = False
    ) -> WorkspaceIndex:
        """`attach` from the event loop: the first call for a vocabulary starts the build with a
        progress bar from `begin` (completions go on meanwhile)."""
        async with self._attaching:
            if self.attached(tokenizer, snippets) and self.index is not None:
                return self.index
            bar = await begin()

            def report(message: str, percentage: int | None) -> None:  # runs in the index thread
                if bar is not None and percentage == 100:
                    bar.end(message)
                elif bar is not None:
                    bar.report(message, percentage)

            return self.attach(tokenizer, report, snippets)

    def index_soon(self, tokenizer: Any, begin: Callable[[], Awaitable[ProgressBar | None]]) -> None:
        """Start indexing the folders with `tokenizer` now, in the background (the model's
        weights may still be loading), so that the first completions know the other files."""
        if not self.folders:
            return  # without folders, the first request with two documents open builds it
        task = asyncio.ensure_future(self.attach_async(tokenizer, begin))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def watch_files(self, server: LanguageServer) -> None:
        """Ask the client to report changes on disk (`workspace/didChangeWatchedFiles`) where it
        can register the watcher dynamically; without it the index follows open documents only."""
        caps = getattr(server.protocol, "client_capabilities", None)
        watched = caps.workspace.did_change_watched_files if caps and caps.workspace else None
        if not self.folders or watched is None or not watched.dynamic_registration:
            return
        registration = types.Registration(
            id="codeparrot-watch",
            method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
            register_options=types.DidChangeWatchedFilesRegistrationOptions(
                watchers=[types.FileSystemWatcher(glob_pattern=WATCHED_GLOB)]
            ),
        )
        try:
            await server.client_register_capability_async(types.RegistrationParams(registrations=[registration]))
        except Exception as exc:
            log.warning("file watcher registration refused: %s", exc)

    def status(self) -> dict[str, Any]:
        """`codeparrot/stats`' `index`: state ("not_started", "building", "ready", "failed"),
        files, tokens and bytes indexed (0 until built), and the build's seconds."""
        index = self.index
        files = tokens = size = 0
        if index is not None and self.ready.is_set():
            for _ in range(3):  # the counts sum dicts that an update may be changing: try again
                try:
                    files, tokens, size = len(index), index.tokens, index.nbytes
                    break
                except RuntimeError:
                    continue
        return {"state": self._state, "files": files, "tokens": tokens, "bytes": size,
                "build_s": round(self._build_s, 3)}

    def _build(self, index: WorkspaceIndex, progress: Progress | None) -> None:
        report = progress or (lambda _m, _p: None)
        start = time.perf_counter()
        state = "failed"
        try:
            report("Indexing workspace", 0)
            remaining = self.max_total_bytes
            texts: list[tuple[str, str]] = []
            for folder in self.folders:
                for path, text in scan_workspace(folder, remaining):
                    texts.append((uris.from_fs_path(str(path)) or str(path), text))
                    remaining -= len(text.encode("utf-8", "surrogatepass"))
            report(f"Indexing {len(texts)} files", 30)
            index.build(texts)
            with self._lock:  # what changed during the build holds its own, newer entry
                built = {uri: hash(text) for uri, text in texts if uri not in self._touched}
                self._indexed = built | self._indexed
            state = "ready"
            report(f"Workspace indexed: {len(texts)} files", 100)
        except Exception:  # a bad file must never take the server down
            log.exception("workspace indexing failed")
            report("Workspace indexing failed (see the server log); completing without it", 100)
        finally:
            if self.index is index:  # not replaced by an index for another tokenizer meanwhile
                self._build_s, self._state = time.perf_counter() - start, state
                self.ready.set()

    # ----- events

    def opened_or_changed(self, uri: str, text: str) -> None:
        with self._lock:
            self._dirty[uri] = text

    def closed(self, uri: str) -> None:
        """Back to the file on disk; a document that is no file (`untitled:`) leaves the index."""
        with self._lock:
            self._dirty.pop(uri, None)
        if self.index is not None and not uris.to_fs_path(uri):
            self.index.remove(uri)
            self._record(uri, None)
            return
        self.disk_changed(uri)

    def disk_changed(self, uri: str) -> None:
        """A file was created/changed/deleted on disk (or closed): index what the disk has now."""
        index = self.index
        path_str = uris.to_fs_path(uri)
        if index is None or not path_str:
            return
        path = Path(path_str)
        if uri in self._dirty:
            return  # open in the editor: its text wins
        text = read_text(path) if is_candidate(path) and path.is_file() and self.contains(path) else None
        if text is None:
            index.remove(uri)
            self._record(uri, None)
        elif self._indexed.get(uri) != hash(text):
            index.update(uri, text)
            self._record(uri, text)

    def _record(self, uri: str, text: str | None) -> None:
        """Remember which text the index now holds for `uri` (None: none)."""
        with self._lock:
            if self._state == "building":
                self._touched.add(uri)
            if text is None:
                self._indexed.pop(uri, None)
            else:
                self._indexed[uri] = hash(text)

    def flush(self, current_uri: str) -> None:
        """Index the dirty open documents other than `current_uri` (they changed since)."""
        index = self.index
        if index is None:
            return
        with self._lock:
            todo = {u: t for u, t in self._dirty.items() if u != current_uri}
        for uri, text in todo.items():
            if self._indexed.get(uri) != hash(text):  # opened, not edited: the index has it
                index.update(uri, text)
                self._record(uri, text)
            with self._lock:
                if self._dirty.get(uri) is text:
                    del self._dirty[uri]
