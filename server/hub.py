"""The Hugging Face hub, asked only when it can answer (the model resolver, training's data and
model sources): hub libraries retry for ~20 s or more without a network, so the offline
variables are read first and a bounded probe decides before any hub call.
"""

from __future__ import annotations

import http.client
import os
import threading
from urllib.parse import urlsplit

from server.errors import HubUnavailableError

DEFAULT_ENDPOINT = "https://huggingface.co"
# The whole probe, DNS included: the promise to a user is an error within 2 s.
PROBE_TIMEOUT_S = 1.5
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
DATASETS_OFFLINE_VARS = (*OFFLINE_VARS, "HF_DATASETS_OFFLINE")


def offline_var(names: tuple[str, ...] = OFFLINE_VARS) -> str | None:
    """The first of `names` set to a true value (the user asked for no hub), or None."""
    for name in names:
        if os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}:
            return name
    return None


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "").strip() or DEFAULT_ENDPOINT


def reachable(timeout: float | None = None) -> bool:
    """One HEAD request to the hub endpoint, bounded in wall time.

    A bare TCP connect is not enough (sandboxes and proxies accept connections to any address),
    and socket timeouts do not bound the DNS lookup, so the request runs in a daemon thread that
    we wait on for at most `timeout` seconds (default PROBE_TIMEOUT_S). Any HTTP answer counts.
    """
    timeout = PROBE_TIMEOUT_S if timeout is None else timeout
    url = urlsplit(endpoint())
    result: list[bool] = []

    def probe() -> None:
        conn_cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        try:
            conn = conn_cls(url.hostname or "", url.port, timeout=timeout)
            conn.request("HEAD", "/")
            conn.getresponse()
            conn.close()
            result.append(True)
        except (OSError, http.client.HTTPException):
            result.append(False)

    thread = threading.Thread(target=probe, name="hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def ensure_reachable(what: str, hint: str, names: tuple[str, ...] = OFFLINE_VARS) -> None:
    """Raise `HubUnavailableError` (within ~PROBE_TIMEOUT_S) unless `what` can use the hub;
    the message says what needed it and `hint`, what to do instead."""
    var = offline_var(names)
    if var is not None:
        message = f"{what} needs the Hugging Face hub but {var}=1 is set; {hint}"
        raise HubUnavailableError(message, user_message=message)
    if not reachable():
        message = f"{what} needs the Hugging Face hub, but {endpoint()} is unreachable; {hint}"
        raise HubUnavailableError(message, user_message=message)
