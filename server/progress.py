"""Work-done progress bars (`$/progress`) for the model load and the workspace index.

Both run in their own threads; a `ProgressBar` hands each report to the event loop, where pygls
sends it. Clients that support no progress (or do not accept the token in time) get none.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from lsprotocol import types
from pygls.lsp.server import LanguageServer

logger = logging.getLogger(__name__)

# How long the client may take to accept a progress token before the work goes on without a bar.
CREATE_TIMEOUT_S = 5.0


class ProgressBar:
    """One begun progress bar; `report` and `end` may be called from any thread."""

    def __init__(self, server: LanguageServer, token: str, loop: asyncio.AbstractEventLoop) -> None:
        self._server, self._token, self._loop = server, token, loop

    def report(self, message: str, percentage: int | None) -> None:
        value = types.WorkDoneProgressReport(message=message, percentage=percentage)
        self._loop.call_soon_threadsafe(self._server.work_done_progress.report, self._token, value)

    def end(self, message: str) -> None:
        value = types.WorkDoneProgressEnd(message=message)
        self._loop.call_soon_threadsafe(self._server.work_done_progress.end, self._token, value)


async def begin_progress(server: LanguageServer, title: str, what: str) -> ProgressBar | None:
    """Create a progress token if the client supports it and send `begin`; None otherwise."""
    caps = getattr(server.protocol, "client_capabilities", None)
    window = caps.window if caps is not None else None
    if window is None or not window.work_done_progress:
        return None
    token = f"codeparrot-{uuid.uuid4()}"
    try:
        await asyncio.wait_for(server.work_done_progress.create_async(token), CREATE_TIMEOUT_S)
    except Exception as exc:
        logger.warning("client did not accept a progress token (%s); going on without progress", exc)
        return None
    server.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title, message=what, percentage=0))
    return ProgressBar(server, token, asyncio.get_running_loop())
