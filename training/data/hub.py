"""Fail fast when a hub dataset is requested but the hub cannot be reached.

`datasets` hangs ~20 s (or longer) on hub calls without network; we check the offline
environment variables and a short TCP probe first, and raise a typed error with what to do.
"""

from __future__ import annotations

import os
import socket

HUB_HOST = "huggingface.co"
PROBE_TIMEOUT_S = 1.5  # a reachable hub answers a TCP connect in well under a second


class HubUnavailableError(RuntimeError):
    """The Hugging Face hub is needed but offline or unreachable."""


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def ensure_hub_reachable(what: str, hint: str) -> None:
    """Raise HubUnavailableError within ~PROBE_TIMEOUT_S unless the hub is reachable."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if _truthy(var):
            raise HubUnavailableError(f"{what} needs the Hugging Face hub but {var}=1 is set; {hint}")
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        raise HubUnavailableError(f"{what} needs the Hugging Face hub, which is unreachable ({exc}); {hint}") from exc
