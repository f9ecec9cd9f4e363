"""Where completion tokens come from: the in-process engine or an OpenAI-compatible server.

`server.backends.openai` (httpx) is imported only when that backend is configured.
"""

from server.backends.base import Backend, BackendError, BackendRequest, BackendResult, Health
from server.settings import validate_url

__all__ = ["Backend", "BackendError", "BackendRequest", "BackendResult", "Health", "validate_url"]
