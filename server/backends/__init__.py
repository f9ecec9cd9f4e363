"""Where completion tokens come from: the in-process engine or an OpenAI-compatible server."""

from server.backends.base import Backend, BackendError, BackendRequest, BackendResult, Health
from server.backends.openai import OpenAIBackend, validate_url

__all__ = ["Backend", "BackendError", "BackendRequest", "BackendResult", "Health", "OpenAIBackend", "validate_url"]
