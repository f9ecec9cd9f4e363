"""package.json `contributes.configuration` and server/settings.py name the same settings the same way."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from server import settings as server_settings

REPO = Path(__file__).resolve().parents[2]
CLIENT_ONLY = {"pythonPath", "installSource", "trace.server"}  # how the extension starts the server


def _properties() -> dict[str, dict[str, Any]]:
    manifest = json.loads((REPO / "package.json").read_text(encoding="utf-8"))
    props: dict[str, dict[str, Any]] = manifest["contributes"]["configuration"]["properties"]
    return {key.removeprefix("codeparrot."): schema for key, schema in props.items()}


def test_same_keys_as_the_server() -> None:
    assert set(_properties()) - CLIENT_ONLY == set(server_settings.LSP_KEYS)


def test_same_defaults_as_the_server() -> None:
    props = _properties()
    defaults = server_settings.Settings().to_lsp()
    assert {key: props[key]["default"] for key in defaults} == defaults


def test_same_choices_and_bounds() -> None:
    props = _properties()
    assert tuple(props["device"]["enum"]) == server_settings.DEVICES
    assert tuple(props["quantize"]["enum"]) == server_settings.QUANTIZE
    assert tuple(props["multiline"]["enum"]) == server_settings.MULTILINE
    for key, bounds in (
        ("maxNewTokens", server_settings.MAX_NEW_TOKENS_RANGE),
        ("maxPromptTokens", server_settings.MAX_PROMPT_TOKENS_RANGE),
    ):
        assert (props[key]["minimum"], props[key]["maximum"]) == bounds


def test_every_schema_default_is_accepted_by_the_server() -> None:
    props = _properties()
    raw = {key: props[key]["default"] for key in server_settings.LSP_KEYS}
    merged, errors = server_settings.Settings().merged(raw)
    assert errors == []
    assert dataclasses.asdict(merged) == dataclasses.asdict(server_settings.Settings())
