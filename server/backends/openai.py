"""OpenAI-compatible `/v1/completions` over HTTP with server-sent events (llama.cpp, vLLM, TGI, Ollama)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import TYPE_CHECKING, Any

import httpx

from server.backends.base import BackendError, BackendRequest, BackendResult, Health, TokenLogprob
from server.settings import validate_url

if TYPE_CHECKING:
    from server.settings import Settings

log = logging.getLogger(__name__)

# Per-read timeout: a completion is useless to an editor after ~2 s; configurable per backend.
DEFAULT_TIMEOUT_S = 2.0


class OpenAIBackend:
    """`complete()` streams one completion; failures give an empty result and go to `health`."""

    def __init__(
        self,
        url: str,
        model: str = "",
        *,
        api_key_env: str = "",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        health: Health | None = None,
    ) -> None:
        problem = validate_url(url)
        if problem:
            message = f"codeparrot.backendUrl {url!r}: {problem}"
            raise BackendError(message, user_message=message)
        self.url = url.rstrip("/") + "/v1/completions"
        self.model = model
        self.health = health if health is not None else Health()
        headers = {"Accept": "text/event-stream"}
        key = os.environ.get(api_key_env, "") if api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s))
        # Set once the engine refused a request for `logprobs` (HTTP 400 or 422) and answered it
        # without: it is not asked for them again.
        self.logprobs_refused = False

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIBackend:
        """The backend `settings` name (codeparrot.backend "openai"); BackendError if unusable."""
        if not settings.backend_url:
            message = (
                "codeparrot.backend is 'openai' but codeparrot.backendUrl is empty: set it to the "
                "engine's address, e.g. http://127.0.0.1:8080"
            )
            raise BackendError(message, user_message=message)
        return cls(
            settings.backend_url,
            settings.backend_model,
            api_key_env=settings.backend_api_key_env,
            timeout_s=settings.backend_timeout_ms / 1000.0,
        )

    def close(self) -> None:
        self._client.close()

    def complete(self, request: BackendRequest) -> BackendResult:
        start = time.perf_counter()
        if self.health.backing_off():
            return BackendResult("", finish_reason="backoff", error=self.health.last_error)
        try:
            try:
                text, reason, tokens = self._stream(request)
            except _LogprobsRefused:
                text, reason, tokens = self._stream(dataclasses.replace(request, logprobs=None))
                self.logprobs_refused = True  # the field it was: without it, the engine answered
                log.info("%s refused `logprobs`: asking without from now on", self.url)
        except BackendError as exc:
            log.warning("backend failure: %s", exc)  # no headers: the API key never reaches the log
            self.health.failure(exc)
            return BackendResult("", ms=_ms(start), finish_reason="error", error=exc)
        self.health.success()
        cancelled = reason == "cancelled"
        if cancelled:
            return BackendResult("", True, _ms(start), reason)
        return BackendResult(text, False, _ms(start), reason, tokens=tokens)

    def _body(self, r: BackendRequest) -> dict[str, Any]:
        # Greedy means greedy: llama-cpp-python's server applies a repeat penalty of 1.1 unless
        # told otherwise (its greedy text then differs from the model's); engines that do not know
        # the field ignore it (vLLM, Ollama, llama.cpp's own server, whose default is 1.0 already).
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": r.prompt,
            "max_tokens": r.max_tokens,
            "temperature": 0,
            "repeat_penalty": 1.0,
            "stream": True,
        }
        if r.stop:
            body["stop"] = r.stop
        if r.suffix:
            body["suffix"] = r.suffix
        if r.logprobs is not None and not self.logprobs_refused:
            body["logprobs"] = r.logprobs
        return body

    def _stream(self, r: BackendRequest) -> tuple[str, str, list[TokenLogprob] | None]:
        """The streamed text, why it ended, and its tokens' log-probabilities when asked for and
        sent with every piece of text (else None)."""
        text = ""
        body = self._body(r)
        tokens: list[TokenLogprob] | None = [] if "logprobs" in body else None
        try:
            with self._client.stream("POST", self.url, json=body) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    if tokens is not None and resp.status_code in (400, 422):
                        raise _LogprobsRefused  # an engine that rejects the field: asked again without
                    raise BackendError(f"HTTP {resp.status_code} from {self.url}: {resp.text[:200]}")
                for line in resp.iter_lines():
                    if r.cancel is not None and r.cancel.is_set():
                        return text, "cancelled", None  # leaving the `with` closes the connection
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return text, "stop", tokens
                    choice = _choice(data)
                    piece = choice.get("text") or ""
                    text += piece
                    if tokens is not None:
                        scored = _logprobs(choice.get("logprobs"))
                        if piece and not scored:
                            tokens = None  # text the engine did not score: none of it counts
                        else:
                            tokens.extend(scored)
                    if r.stop_check is not None and r.stop_check(text):
                        return text, "stop_check", tokens
                    if choice.get("finish_reason"):
                        return text, str(choice["finish_reason"]), tokens
        except httpx.TimeoutException as exc:
            raise BackendError(f"timeout talking to {self.url}") from exc
        except httpx.HTTPError as exc:
            raise BackendError(f"{type(exc).__name__} talking to {self.url}: {exc}") from exc
        raise BackendError(f"stream from {self.url} ended before [DONE]")


class _LogprobsRefused(Exception):
    """A request with `logprobs` answered HTTP 400 or 422."""


def _choice(data: str) -> dict[str, Any]:
    try:
        choice = json.loads(data)["choices"][0]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise BackendError(f"malformed event from the completion server: {data[:100]!r}") from exc
    if not isinstance(choice, dict):
        raise BackendError(f"malformed event from the completion server: {data[:100]!r}")
    return choice


def _logprobs(data: Any) -> list[TokenLogprob]:
    """The tokens an event's `logprobs` scores, in either format engines send: the completions
    API's parallel lists (OpenAI, vLLM, llama-cpp-python: `tokens`, `token_logprobs`,
    `top_logprobs`) or the chat API's `content` list (llama.cpp's own server); [] for none."""
    try:
        if isinstance(data, dict) and isinstance(data.get("content"), list):
            return [
                TokenLogprob(
                    str(t["token"]),
                    float(t["logprob"]),
                    {str(a["token"]): float(a["logprob"]) for a in t.get("top_logprobs") or []},
                )
                for t in data["content"]
            ]
        if isinstance(data, dict) and isinstance(data.get("tokens"), list):
            tops = data.get("top_logprobs") or [None] * len(data["tokens"])
            return [
                TokenLogprob(str(t), float(lp), {str(k): float(v) for k, v in (top or {}).items()})
                for t, lp, top in zip(data["tokens"], data["token_logprobs"], tops, strict=True)
            ]
    except (KeyError, TypeError, ValueError, AttributeError):
        pass  # malformed or partial: treated as not sent
    return []


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
