"""CompletionServer: the LSP face of codeparrot-lsp. Handlers stay thin; the work is elsewhere.

Request path: handler -> `documents` (text, offset) -> `loader` (model loading since `initialized`) ->
`indexing` (the workspace index, built in the background) -> `Completer` (decide, cache, copies,
prompt, generate, postprocess; in the generation thread, `requests`) -> `items` (LSP items).
Generation never runs on the event loop: a request's `threading.Event`, set by `$/cancelRequest`
or a newer request on the same document, is checked by the engine between tokens.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer

from server import __version__
from server.cache import CompletionCache
from server.completion import Completer, Outcome
from server.documents import Document, DocumentStore
from server.errors import CodeparrotError
from server.feedback import ACCEPT_COMMAND, ACCEPTED_METHOD, Feedback, accepted_params
from server.indexing import WorkspaceIndexer
from server.items import Answer, classic_item, inline_item, origin_of, shown
from server.loader import ModelLoader, describe
from server.progress import ProgressBar, begin_progress
from server.protocol import RobustProtocol
from server.requests import Requests, trim_heap
from server.retrieval.copies import CopyBackend
from server.settings import SECTION, Settings, client_section
from server.stats import Stats

logger = logging.getLogger(__name__)

VERSION = __version__
STATS_METHOD = "codeparrot/stats"
LANGUAGES = frozenset({"javascript", "javascriptreact"})
# Wait this long for a first model load inside a request: tiny/small models answer their first
# request, big ones return empty (isIncomplete) instead of freezing the editor for minutes. It
# includes importing torch and transformers (5-10 s on a busy 2-core machine), which the server
# no longer does at start.
LOAD_WAIT_S = 20.0
# While the model loads, a request waits this long for it before the copy-only fallback answers.
COPY_WAIT_S = 0.2
# Characters after which classic-completion clients (Neovim, Helix) should ask us again.
TRIGGER_CHARACTERS = [".", "(", "[", "{", ",", "=", ":", " ", ">", "\n"]


class CompletionServer(LanguageServer):
    """pygls server with inline + classic completion, settings, stats and robust error handling."""

    def __init__(self, settings: Settings | None = None, cli_keys: frozenset[str] = frozenset()) -> None:
        super().__init__(
            "codeparrot-lsp",
            VERSION,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            protocol_cls=RobustProtocol,
        )
        self.settings = settings or Settings()
        self.cli_keys = cli_keys  # settings given as CLI flags: an empty client value keeps them
        self.documents = DocumentStore()
        self.stats = Stats()
        self.feedback = Feedback()  # what users accept, per source (local only: server.feedback)
        self.feedback.configure(self.settings.acceptance_log, self.settings.acceptance_log_text)
        self.loader = ModelLoader(self, self.stats)
        self.loader.on_tokenizer = self._index_early
        # Answers while the model loads: copies from the open documents (server.retrieval.copies).
        # Its own stats: `requests` and the stages stay the model's; `copy_while_loading` counts these.
        self._copier = Completer(None, cache=CompletionCache(64), backend=CopyBackend(self._open_texts))
        self.indexer = WorkspaceIndexer()  # the folders and their index (pygls has its own `workspace`)
        self.requests = Requests(self.stats)  # the generation thread and the requests in flight
        if isinstance(self.protocol, RobustProtocol):
            self.protocol.requests = self.requests  # it counts cancels that land before a handler ran
        self._register_features()

    def _register_features(self) -> None:
        def feature(name: str, options: Any = None) -> Callable[[Callable[..., Any]], Any]:
            return lambda method: self.feature(name, options)(_as_function(method))

        feature(types.INITIALIZE)(self.on_initialize)
        feature(types.INITIALIZED)(self.on_initialized)
        feature(types.TEXT_DOCUMENT_DID_OPEN)(self.on_text_document_did_open)
        feature(types.TEXT_DOCUMENT_DID_CHANGE)(self.on_text_document_did_change)
        feature(types.TEXT_DOCUMENT_DID_CLOSE)(self.on_text_document_did_close)
        feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)(self.on_workspace_did_change_configuration)
        feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)(self.on_workspace_did_change_watched_files)
        # pygls advertises inlineCompletionProvider only when registered with these options.
        feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())(
            self.on_text_document_inline_completion
        )
        feature(
            types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=TRIGGER_CHARACTERS)
        )(self.on_text_document_completion)
        feature(STATS_METHOD)(self.on_codeparrot_stats)
        feature(ACCEPTED_METHOD)(self.on_codeparrot_accepted)
        self.command(ACCEPT_COMMAND)(_as_function(self.on_accept_command))
        feature(types.SHUTDOWN)(self.on_shutdown)

    # ----- handlers (thin: parse params, call one method, build the LSP answer) --------------

    def on_initialize(self, params: types.InitializeParams) -> None:
        self.apply_settings(params.initialization_options, "initializationOptions")
        folders = [f.uri for f in params.workspace_folders or []]
        if not folders and params.root_uri:
            folders = [params.root_uri]
        self.indexer.set_folders(folders)

    async def on_initialized(self, params: types.InitializedParams) -> None:
        # Load now, not at the first completion: importing torch and transformers alone takes
        # seconds, which the user spends opening files and starting to type. Until it is ready,
        # completions copy from the open documents (server.retrieval.copies).
        logger.info("client initialized; loading %s", describe(self.settings))
        self.loader.start(self.settings)
        await self.indexer.watch_files(self)

    def _index_early(self, tokenizer: Any) -> None:
        """The model's tokenizer is loaded (its weights may still be loading): index now."""
        if self.settings.workspace_index == "on" and self.settings.backend == "local":
            self.indexer.index_soon(tokenizer, self._index_progress)

    async def _index_progress(self) -> ProgressBar | None:
        return await begin_progress(self, "codeparrot: indexing workspace", "scanning files")

    def on_workspace_did_change_watched_files(self, params: types.DidChangeWatchedFilesParams) -> None:
        for change in params.changes:
            try:
                self.indexer.disk_changed(change.uri)
            except Exception:  # one unreadable file must not drop the others
                logger.exception("index update for %s failed", change.uri)

    def on_text_document_did_open(self, params: types.DidOpenTextDocumentParams) -> None:
        doc = params.text_document
        self.documents.open(doc.uri, doc.language_id, doc.version, doc.text)
        self.indexer.opened_or_changed(doc.uri, doc.text)

    def on_text_document_did_change(self, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        try:
            doc = self.documents.change(uri, params.text_document.version, params.content_changes)
            self.indexer.opened_or_changed(uri, doc.text)
        except CodeparrotError as exc:
            logger.warning("didChange ignored: %s", exc)
            self.window_log_message(
                types.LogMessageParams(type=types.MessageType.Warning, message=exc.user_message)
            )

    def on_text_document_did_close(self, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        self.requests.cancel(uri)
        self.documents.close(uri)
        self.indexer.closed(uri)
        self.feedback.forget(uri)
        self._forget(uri)

    def _forget(self, uri: str) -> None:
        """Release what a closed document leaves behind, so that memory stays flat over a day of
        files (`benchmarks/soak.py`): its cached completions, and, in the generation thread (after
        a generation that may still be running, without blocking the event loop), the engine's KV
        sequence for it; then the C heap's free pages go back to the system."""
        completer = self.loader.current
        for owner in (completer, self._copier):
            if owner is not None and owner.cache is not None:
                owner.cache.forget(uri)
        engine = completer.engine if completer is not None else None

        def release() -> None:
            if engine is not None:
                engine.reset_cache(uri)
            trim_heap()

        self.requests.after(release)

    async def on_workspace_did_change_configuration(self, params: types.DidChangeConfigurationParams) -> None:
        raw = params.settings
        if not raw and self._client_pulls_configuration():
            # Clients that send `settings: null` expect the server to pull its section.
            (raw,) = await self.workspace_configuration_async(
                types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION)])
            )
        self.apply_settings(raw, "didChangeConfiguration")

    async def on_text_document_inline_completion(
        self, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        # With the editor's suggest widget open on an item, only ghost text that extends that
        # item is shown (VS Code): complete as if it were inserted, and offer item + completion
        # over the item's range.
        selected = params.context.selected_completion_info if params.context is not None else None
        done = await self.complete(params.text_document.uri, params.position, selected)
        if done is None:
            return types.InlineCompletionList(items=[])
        command = shown(self.feedback, done, origin_of(done, self.indexer.folders))
        return types.InlineCompletionList(items=[inline_item(done, selected, command)])

    async def on_text_document_completion(self, params: types.CompletionParams) -> types.CompletionList:
        done = await self.complete(params.text_document.uri, params.position)
        # isIncomplete: the answer depends on every typed character, so clients must ask again.
        if done is None:
            return types.CompletionList(is_incomplete=True, items=[])
        origin = origin_of(done, self.indexer.folders)
        item = classic_item(done, params.position, shown(self.feedback, done, origin), origin)
        return types.CompletionList(is_incomplete=True, items=[item])

    def on_codeparrot_stats(self, params: Any) -> dict[str, Any]:
        snapshot = self.stats.snapshot()
        copied = self._copier.stats.snapshot()
        snapshot["copy_while_loading"] = {"requests": copied["requests"], "answered": copied.get("answered", 0)}
        snapshot["model"] = {
            "spec": describe(self.settings),
            "backend": self.settings.backend,
            "loaded": self.loader.loaded,
            "loading": self.loader.loading,
        }
        index = self.indexer.status()
        if self.settings.workspace_index != "on":
            index["state"] = "off"  # settled by the settings, whatever was built before
        snapshot["index"] = index
        snapshot["acceptance"] = self.feedback.snapshot()
        return snapshot

    def on_codeparrot_accepted(self, params: Any) -> None:
        """The client reports an accept: `{id, acceptedLength?}` (a partial accept gives the
        characters of the item's text accepted)."""
        found = accepted_params(params)
        if found is None:
            logger.warning("%s ignored: params %.200r name no item id", ACCEPTED_METHOD, params)
        elif not self.feedback.accepted(*found):
            logger.info("%s: unknown item %s", ACCEPTED_METHOD, found[0])

    def on_accept_command(self, args: Any) -> None:
        """`workspace/executeCommand` of an item's command (clients that run it through the server)."""
        self.on_codeparrot_accepted(args[0] if isinstance(args, list) and args else args)

    def on_shutdown(self, params: Any) -> None:
        self.requests.cancel_all()

    def _client_pulls_configuration(self) -> bool:
        caps = getattr(self.protocol, "client_capabilities", None)
        return bool(caps and caps.workspace and caps.workspace.configuration)

    # ----- settings -------------------------------------------------------------------------

    def apply_settings(self, raw: Any, origin: str) -> list[str]:
        """Validate and apply client settings; bad keys keep their value and are shown to the user."""
        section = client_section(raw, self.cli_keys)
        if section is None:
            return []
        self.settings, errors = self.settings.merged(section)
        self.feedback.configure(self.settings.acceptance_log, self.settings.acceptance_log_text)
        for error in errors:
            logger.warning("invalid setting from %s: %s", origin, error)
            self.window_show_message(types.ShowMessageParams(type=types.MessageType.Error, message=error))
        if self.loader.forget_if_changed(self.settings):
            self.requests.cancel_all()
        logger.info("settings (%s): %s", origin, self.settings)
        return errors

    # ----- completion -----------------------------------------------------------------------

    def document(self, uri: str) -> Document:
        try:
            return self.documents.get(uri)
        except CodeparrotError as exc:
            raise JsonRpcInvalidParams(exc.user_message) from exc

    async def complete(
        self, uri: str, position: types.Position, selected: types.SelectedCompletionInfo | None = None
    ) -> Answer | None:
        """Run the completion pipeline for one request; None means "nothing to show".

        `selected`: complete the text as it would be with `selected.text` over `selected.range`.
        """
        self.requests.begin()
        doc = self.document(uri)
        try:
            offset = doc.offset_at(position)
            if selected is not None:
                replace = (doc.offset_at(selected.range.start), doc.offset_at(selected.range.end))
                if not replace[0] <= replace[1] <= offset:
                    raise JsonRpcInvalidParams("selectedCompletionInfo.range must end at or before the position")
        except CodeparrotError as exc:
            raise JsonRpcInvalidParams(exc.user_message) from exc
        if doc.language_id not in LANGUAGES or not self.settings.enable:
            return None
        settings = self.settings
        # Snapshots: a didChange may edit the live tree while the worker thread reads this one.
        text, tree = doc.text, (doc.tree.copy() if doc.tree is not None else None)
        self.feedback.typed(uri, text[:offset])
        if selected is not None:  # the text with the selected item in; the Completer parses it
            text = text[: replace[0]] + selected.text + text[replace[1] :]
            offset, tree = offset - (replace[1] - replace[0]) + len(selected.text), None
        try:
            completer = await self.loader.completer(settings, COPY_WAIT_S if settings.backend == "local" else LOAD_WAIT_S)
            if completer is None and self.loader.loading:
                # The model is still loading: copy from the open documents meanwhile (no model, no
                # tokenizer: it answers at once), and wait for the model only if that has nothing.
                copied = await self._run(self._copier, uri, text, offset, tree, settings, indexing=False)
                if copied is not None and copied.text:
                    self._copier.stats.incr("answered")
                    return Answer(dataclasses.replace(copied, source="copy"), doc, offset, position)
                completer = await self.loader.completer(settings, LOAD_WAIT_S)
        except asyncio.CancelledError:
            self.requests.count_cancelled_unstarted()  # cancelled while waiting for the model
            raise
        if completer is None:
            return None
        indexing = await self._use_index(completer, settings)
        outcome = await self._run(completer, uri, text, offset, tree, settings, indexing=indexing)
        if outcome is None or outcome.reason == "cancelled" or not outcome.text:
            return None
        return Answer(outcome, doc, offset, position)

    async def _use_index(self, completer: Completer, settings: Settings) -> bool:
        """Give `completer` the workspace index (started on first use); whether it has one. It is
        in the local model's tokens (it mixes into its logits); a remote engine's is in the
        shipped model's (copies, analogies and prompt snippets: server.remote_context)."""
        if settings.workspace_index != "on" or not (self.indexer.folders or len(self.documents) > 1):
            return False
        tokenizer = await self.loader.index_tokenizer(completer)
        if tokenizer is None:
            return False
        snippets = completer.engine is None
        index = await self.indexer.attach_async(tokenizer, self._index_progress, snippets)
        completer.use_index(index, tokenizer, self.indexer.ready.is_set())
        return True

    def _open_texts(self, key: str) -> list[str]:
        """The other open JavaScript documents' texts (what the copy fallback copies from)."""
        return self.documents.texts(exclude=key, languages=LANGUAGES)

    async def _run(
        self,
        completer: Completer,
        uri: str,
        text: str,
        offset: int,
        tree: Any,
        settings: Settings,
        *,
        indexing: bool,
    ) -> Outcome | None:
        """One completion in the generation thread, superseding the document's previous request."""

        def work(cancel: threading.Event) -> Outcome:
            if indexing:
                self.indexer.flush(uri)  # edits to other documents since their last indexing
            return completer.complete(text, offset, tree=tree, settings=settings, key=uri, cancel=cancel)

        try:
            outcome = await self.requests.run(uri, work)
        except CodeparrotError as exc:
            logger.warning("completion failed: %s", exc.user_message)
            self.window_log_message(
                types.LogMessageParams(type=types.MessageType.Warning, message=exc.user_message)
            )
            return None
        if outcome is not None and outcome.notice:  # once per backend outage, not per keystroke
            self.window_show_message(types.ShowMessageParams(type=types.MessageType.Warning, message=outcome.notice))
        logger.debug("%s: %r (%s)", uri, outcome.text if outcome else "", outcome.reason if outcome else "cancelled")
        return outcome

    # ----- errors and lifecycle -------------------------------------------------------------

    def report_server_error(self, error: Exception, source: Any) -> None:
        """Answer unreadable JSON with a parse error; log the rest instead of popping dialogs."""
        if isinstance(error, json.JSONDecodeError | UnicodeDecodeError):
            logger.warning("unreadable JSON-RPC message: %s", error)
            if isinstance(self.protocol, RobustProtocol):
                self.protocol.send_error(None, types.ErrorCodes.ParseError, f"Parse error: {error}")
            return
        if isinstance(error, JsonRpcException) and isinstance(error.__cause__, CodeparrotError):
            error = error.__cause__
        logger.error("server error (%s): %s", getattr(source, "__name__", source), error)

    def shutdown(self) -> None:
        self.requests.shutdown()
        self.loader.shutdown()
        super().shutdown()


def _as_function(method: Callable[..., Any]) -> Callable[..., Any]:
    """A plain function calling a bound method: pygls sets attributes on handlers, methods refuse them."""
    if asyncio.iscoroutinefunction(method):

        async def async_handler(params: Any) -> Any:
            return await method(params)

        return async_handler

    def handler(params: Any) -> Any:
        return method(params)

    return handler
