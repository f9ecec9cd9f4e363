"""JSON-RPC robustness on top of pygls: every request gets an answer.

pygls 2.1 raises out of its read loop when a message's params fail to deserialize (for example a
negative position or a string where a number belongs), so such a request would never be answered
and the client would wait forever. pygls has no option for this, so `RobustProtocol` catches the
failure in `structure_message` (the `json.loads` object hook), turns the message into a marker
object, and `handle_message` answers the marker with a JSON-RPC error.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import attrs
from lsprotocol import types
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.json_rpc import RPCError, RPCNotification, RPCRequest, RPCResponse

from server.requests import Requests

logger = logging.getLogger(__name__)


@attrs.define
class InvalidMessage:
    """A message that could not be turned into its LSP type; `id` is None for notifications."""

    id: int | str | None
    method: str
    code: int
    reason: str
    is_request: bool


def _valid_id(value: Any) -> int | str | None:
    """A JSON-RPC id we can echo back (bool is an int in Python but not a JSON-RPC id)."""
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    return None


def _first_line(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    text = str(cause).strip().splitlines()
    return text[0] if text else type(cause).__name__


COMPLETION_METHODS = frozenset({types.TEXT_DOCUMENT_INLINE_COMPLETION, types.TEXT_DOCUMENT_COMPLETION})


class RobustProtocol(LanguageServerProtocol):
    """LanguageServerProtocol that answers malformed requests instead of dropping them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Pending completion requests by id, so that a cancel that lands before the handler ever
        # ran (pygls cancels the task; our handler never sees it) is still counted in the stats.
        self._completion_futures: dict[Any, Any] = {}
        self.requests: Requests | None = None  # set by the server that owns this protocol

    def _handle_request(self, msg_id: Any, method_name: str, params: Any) -> None:
        super()._handle_request(msg_id, method_name, params)
        future = self._request_futures.get(msg_id)
        if method_name in COMPLETION_METHODS and future is not None and not future.done():
            self._completion_futures[msg_id] = future
            future.add_done_callback(partial(self._forget_completion, msg_id))

    def _forget_completion(self, msg_id: Any, _future: Any) -> None:
        self._completion_futures.pop(msg_id, None)

    def _handle_cancel_notification(self, msg_id: Any) -> None:
        future = self._completion_futures.get(msg_id)
        requests = self.requests
        unstarted = future is not None and requests is not None and requests.not_started(future)
        super()._handle_cancel_notification(msg_id)
        if unstarted and requests is not None:  # super() has just cancelled it; the handler will never count it
            requests.count_cancelled_unstarted()

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except Exception as exc:
            method = data.get("method")
            if not isinstance(method, str):
                raise  # a malformed response from the client: nothing to answer
            is_request = "id" in data
            code = types.ErrorCodes.InvalidParams
            if is_request and _valid_id(data["id"]) is None:
                code = types.ErrorCodes.InvalidRequest
            reason = f"Invalid params for {method}: {_first_line(exc)}"
            return InvalidMessage(
                id=_valid_id(data.get("id")), method=method, code=code, reason=reason, is_request=is_request
            )

    def handle_message(self, message: Any) -> None:
        if isinstance(message, InvalidMessage):
            logger.warning("%s", message.reason)
            if message.is_request:
                self.send_error(message.id, message.code, message.reason)
            return
        if not isinstance(message, RPCRequest | RPCNotification | RPCResponse | RPCError):
            # Valid JSON that is not a JSON-RPC 2.0 message (no "jsonrpc", an array, a number...).
            msg_id = _valid_id(message.get("id")) if isinstance(message, dict) else None
            logger.warning("Invalid JSON-RPC message: %.200r", message)
            self.send_error(msg_id, types.ErrorCodes.InvalidRequest, "Invalid JSON-RPC 2.0 message")
            return
        if message.jsonrpc != self.VERSION and isinstance(message, RPCRequest):
            self.send_error(
                message.id,
                types.ErrorCodes.InvalidRequest,
                f"Unsupported jsonrpc version {message.jsonrpc!r}",
            )
            return
        super().handle_message(message)

    def send_error(self, msg_id: int | str | None, code: int, message: str) -> None:
        """Send a JSON-RPC error response; `"id": null` when the request's id is unknown.

        Built as a plain dict: lsprotocol's converter drops a None id, and JSON-RPC requires it.
        """
        self._send_data(
            {"jsonrpc": self.VERSION, "id": msg_id, "error": {"code": int(code), "message": message}}
        )
