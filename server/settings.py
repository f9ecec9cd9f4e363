"""Server settings: one frozen dataclass, validated key by key.

LSP/JSON names are camelCase (the keys of package.json `contributes.configuration`, section
`codeparrot`); Python fields are snake_case. `Settings.merged(raw)` applies every valid key and
returns a readable error for each invalid one, which keeps its previous value.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
QUANTIZE = ("auto", "none", "int8", "bf16")
MULTILINE = ("auto", "never", "always")
ON_OFF = ("on", "off")
FIM = ("auto", "off")
BACKENDS = ("local", "openai")
ENGINES = ("auto", "torch", "llama")

# Bounds: beyond these a value is a typo, not a preference.
MAX_NEW_TOKENS_RANGE = (1, 1024)
MAX_PROMPT_TOKENS_RANGE = (16, 32768)
BACKEND_TIMEOUT_MS_RANGE = (50, 60000)
BACKEND_SNIPPET_TOKENS_RANGE = (0, 8192)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
CACHE_ENV = "CODEPARROT_CACHE_DIR"
# Plain http is allowed only to these: a key sent in clear must not leave the machine.
SECTION = "codeparrot"  # the client's configuration section
# Model settings a client may send as "" meaning "the server's default" (its --model flag).
DEFAULT_WHEN_EMPTY = ("model", "adapter")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def cache_dir() -> Path:
    """Where the server keeps what it derives from a model once (GGUF conversions, tokenizers):
    `$CODEPARROT_CACHE_DIR`, else `$XDG_CACHE_HOME/codeparrot-lsp`, else ~/.cache/codeparrot-lsp."""
    explicit = os.environ.get(CACHE_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "codeparrot-lsp"


def validate_url(url: str) -> str | None:
    """None when `url` may be used; else why not. Plain http only to this machine (no key leaks)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme == "https" and host:
        return None
    if parts.scheme == "http" and host in LOCAL_HOSTS:
        return None
    return (
        "not allowed: use https://…, or http://127.0.0.1, http://localhost or http://[::1] "
        "(any port) for an engine on this machine"
    )


@dataclass(frozen=True)
class Settings:
    model: str = ""  # empty = the model shipped in server/models/default
    adapter: str = ""  # optional peft LoRA adapter dir; empty = none
    max_new_tokens: int = 64  # a block body is a few short lines; single-line stops at the newline anyway
    device: str = "auto"  # cuda when available, else cpu
    # auto: bf16 matrix products on a CPU that has bf16 instructions (~17 % faster decode, the same
    # dev-set scores), float32 elsewhere; none: float32; int8: ~4x faster decode at a small quality cost.
    quantize: str = "auto"
    # auto: llama.cpp (~5x faster decode here, GGUF q8_0 for quantize auto) when llama-cpp-python is
    # installed and the model converts, else torch; torch / llama: that engine (llama falls back, saying so).
    engine: str = "auto"
    multiline: str = "auto"  # multi-line only where the cursor opens an empty block body
    enable: bool = True  # lets a user silence completions without stopping the server
    max_prompt_tokens: int = 768  # 1024-position models keep room for new tokens; longer = slower cold start
    workspace_index: str = "on"  # copying from the user's own files is the strongest signal we have
    fim: str = "off"  # the shipped model completes lines better from the prefix alone (dev set ES +1.3-1.7)
    # Where tokens come from: "local" (the model in this process) or "openai" (an engine's
    # /v1/completions at backend_url; see docs/team-server.md).
    backend: str = "local"
    backend_url: str = ""  # https://…, or http:// to this machine only
    backend_model: str = ""  # the `model` field of each request; engines serving one model ignore it
    backend_api_key_env: str = ""  # the *name* of an environment variable holding the key; never the key
    backend_timeout_ms: int = 2000  # per read: a completion later than ~2 s is of no use to an editor
    # Tokens (of the shipped model's tokenizer) of similar workspace code put before a remote
    # engine's prompt, path-labelled; 0: none (benchmarks/README.md measured the default).
    backend_snippet_tokens: int = 128
    # A JSONL file of shown/accepted completions for the user's own evaluation; "" writes nothing.
    acceptance_log: str = ""
    acceptance_log_text: bool = False  # put the completion's text (and its line) in that log too

    def merged(self, raw: Mapping[str, Any]) -> tuple[Settings, list[str]]:
        """Return settings with each valid key of `raw` applied, and errors for invalid ones.

        Keys may be camelCase (LSP) or snake_case (Python). `None` means "unset": keep the value.
        Unknown keys are logged and ignored.
        """
        if not isinstance(raw, Mapping):
            return self, [f"codeparrot settings must be an object, got {type(raw).__name__}"]
        changes: dict[str, Any] = {}
        errors: list[str] = []
        for key, value in raw.items():
            field = _FIELD_BY_KEY.get(key) if isinstance(key, str) else None
            if field is None:
                log.info("ignoring unknown setting %r", key)
                continue
            if value is None:
                continue
            error = _VALIDATORS[field](value)
            if error is None:
                changes[field] = value
            else:
                errors.append(
                    f"codeparrot.{_CAMEL[field]}: {error} (got {value!r}); keeping {getattr(self, field)!r}"
                )
        return (dataclasses.replace(self, **changes) if changes else self), errors

    def model_key(self) -> tuple[Any, ...]:
        """The fields whose change requires reloading the model (or reconnecting the backend)."""
        if self.backend == "openai":
            return (self.backend, self.backend_url, self.backend_model, self.backend_api_key_env,
                    self.backend_timeout_ms)
        return (self.backend, self.model, self.adapter, self.device, self.quantize, self.engine)

    def to_lsp(self) -> dict[str, Any]:
        """The settings under their camelCase LSP names."""
        return {_CAMEL[f.name]: getattr(self, f.name) for f in dataclasses.fields(self)}


def client_section(raw: Any, cli_keys: frozenset[str]) -> Any:
    """What a client sent for the `codeparrot` section (or the whole object, when it sent the
    section's contents), less "" for model settings given as CLI flags: there "" means the
    server's default, which is the flag."""
    section = raw.get(SECTION, raw) if isinstance(raw, Mapping) else raw
    if not isinstance(section, Mapping):
        return section
    return {k: v for k, v in section.items() if not (k in DEFAULT_WHEN_EMPTY and k in cli_keys and v == "")}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _string(value: Any) -> str | None:
    return None if isinstance(value, str) else "must be a string"


def _choice(choices: tuple[str, ...]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, str) and value in choices:
            return None
        return "must be one of " + ", ".join(repr(c) for c in choices)

    return check


def _int_in(lo: int, hi: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        # bool is an int subclass in Python; `true` is not a token count.
        if isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi:
            return None
        return f"must be an integer from {lo} to {hi}"

    return check


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _url(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    return validate_url(value) if value else None  # "" = not configured


def _log_path(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if value and not os.path.isabs(os.path.expanduser(value)):
        return "must be an absolute path (or ~/…), or empty for no log"
    return None


def _env_name(value: Any) -> str | None:
    if isinstance(value, str) and (value == "" or _ENV_NAME.match(value)):
        return None
    return "must be the name of an environment variable (letters, digits, _), not the key itself"


_VALIDATORS: dict[str, Callable[[Any], str | None]] = {
    "model": _string,
    "adapter": _string,
    "max_new_tokens": _int_in(*MAX_NEW_TOKENS_RANGE),
    "device": _choice(DEVICES),
    "quantize": _choice(QUANTIZE),
    "engine": _choice(ENGINES),
    "multiline": _choice(MULTILINE),
    "enable": _boolean,
    "max_prompt_tokens": _int_in(*MAX_PROMPT_TOKENS_RANGE),
    "workspace_index": _choice(ON_OFF),
    "fim": _choice(FIM),
    "backend": _choice(BACKENDS),
    "backend_url": _url,
    "backend_model": _string,
    "backend_api_key_env": _env_name,
    "backend_timeout_ms": _int_in(*BACKEND_TIMEOUT_MS_RANGE),
    "backend_snippet_tokens": _int_in(*BACKEND_SNIPPET_TOKENS_RANGE),
    "acceptance_log": _log_path,
    "acceptance_log_text": _boolean,
}
_CAMEL: dict[str, str] = {f.name: _camel(f.name) for f in dataclasses.fields(Settings)}
_FIELD_BY_KEY: dict[str, str] = {**{c: f for f, c in _CAMEL.items()}, **{f: f for f in _CAMEL}}
assert set(_VALIDATORS) == set(_CAMEL), "every setting needs a validator"

LSP_KEYS: tuple[str, ...] = tuple(_CAMEL.values())
