"""Settings: camelCase keys, per-key validation, previous values kept on errors."""

from __future__ import annotations

import dataclasses

import pytest

from server.settings import LSP_KEYS, Settings


def test_defaults_are_valid_and_round_trip_through_lsp_names() -> None:
    s = Settings()
    again, errors = Settings(max_new_tokens=1, multiline="never").merged(s.to_lsp())
    assert errors == []
    assert again == s


def test_lsp_keys_are_the_documented_camel_case_names() -> None:
    assert set(LSP_KEYS) == {
        "model",
        "adapter",
        "maxNewTokens",
        "device",
        "quantize",
        "engine",
        "multiline",
        "enable",
        "maxPromptTokens",
        "workspaceIndex",
        "fim",
        "backend",
        "backendUrl",
        "backendModel",
        "backendApiKeyEnv",
        "backendTimeoutMs",
        "backendSnippetTokens",
        "acceptanceLog",
        "acceptanceLogText",
    }


def test_the_acceptance_log_takes_an_absolute_path_or_nothing() -> None:
    s, errors = Settings().merged({"acceptanceLog": "~/codeparrot/acceptance.jsonl", "acceptanceLogText": True})
    assert errors == [] and s.acceptance_log == "~/codeparrot/acceptance.jsonl" and s.acceptance_log_text
    kept, errors = s.merged({"acceptanceLog": "relative.jsonl", "acceptanceLogText": "yes"})
    assert kept == s
    assert [e.split(":")[0] for e in errors] == ["codeparrot.acceptanceLog", "codeparrot.acceptanceLogText"]
    off, errors = s.merged({"acceptanceLog": ""})
    assert errors == [] and off.acceptance_log == ""


def test_valid_values_are_applied() -> None:
    s, errors = Settings().merged(
        {
            "model": "/m",
            "adapter": "/a",
            "maxNewTokens": 16,
            "device": "cpu",
            "quantize": "int8",
            "multiline": "always",
            "enable": False,
            "maxPromptTokens": 256,
        }
    )
    assert errors == []
    assert s == Settings(
        model="/m",
        adapter="/a",
        max_new_tokens=16,
        device="cpu",
        quantize="int8",
        multiline="always",
        enable=False,
        max_prompt_tokens=256,
    )


def test_snake_case_keys_are_accepted_too() -> None:
    s, errors = Settings().merged({"max_new_tokens": 9})
    assert errors == [] and s.max_new_tokens == 9


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("maxNewTokens", 0),
        ("maxNewTokens", -3),
        ("maxNewTokens", "64"),
        ("maxNewTokens", 1.5),
        ("maxNewTokens", True),
        ("maxNewTokens", 10**9),
        ("device", "tpu"),
        ("device", 1),
        ("quantize", "int4"),
        ("multiline", "sometimes"),
        ("enable", "yes"),
        ("enable", 1),
        ("model", 42),
        ("adapter", ["x"]),
        ("maxPromptTokens", 2),
        ("backend", "vllm"),
        ("backendUrl", "http://10.0.0.5:8080"),  # plain http off this machine would leak the key
        ("backendUrl", "ftp://localhost"),
        ("backendUrl", "localhost:8080"),
        ("backendUrl", 8080),
        ("backendApiKeyEnv", "sk-abc123-the-key-itself"),
        ("backendTimeoutMs", 0),
        ("backendModel", 3),
    ],
)
def test_invalid_value_keeps_previous_and_explains(key: str, value: object) -> None:
    before = Settings(max_new_tokens=32, device="cpu", quantize="bf16", multiline="never", model="/m")
    after, errors = before.merged({key: value, "adapter" if key != "adapter" else "model": "/ok"})
    assert len(errors) == 1
    assert f"codeparrot.{key}" in errors[0] and repr(value) in errors[0]
    assert after.to_lsp()[key] == before.to_lsp()[key]
    # the valid key in the same update was still applied
    assert (after.adapter if key != "adapter" else after.model) == "/ok"


def test_unknown_keys_and_nulls_are_ignored() -> None:
    before = Settings(max_new_tokens=7)
    after, errors = before.merged({"temperature": 0.2, "maxNewTokens": None})
    assert errors == [] and after == before


def test_non_mapping_is_an_error_not_a_crash() -> None:
    before = Settings()
    after, errors = before.merged(["model"])  # type: ignore[arg-type]
    assert after is before and len(errors) == 1


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().model = "x"  # type: ignore[misc]


def test_model_key_changes_only_for_reload_fields() -> None:
    base = Settings()
    assert (
        base.merged({"maxNewTokens": 8, "multiline": "never", "enable": False})[0].model_key()
        == base.model_key()
    )
    for raw in ({"model": "/m"}, {"adapter": "/a"}, {"device": "cpu"}, {"quantize": "int8"}):
        assert base.merged(raw)[0].model_key() != base.model_key()


@pytest.mark.parametrize(
    "url", ["", "http://127.0.0.1:8080", "http://localhost:11434/", "http://[::1]:9000", "https://llm.example.com/team"]
)
def test_backend_urls_on_this_machine_or_https_are_accepted(url: str) -> None:
    after, errors = Settings().merged({"backend": "openai", "backendUrl": url, "backendApiKeyEnv": "TEAM_LLM_KEY"})
    assert errors == []
    assert (after.backend, after.backend_url, after.backend_api_key_env) == ("openai", url, "TEAM_LLM_KEY")


def test_backend_settings_select_what_is_reconnected() -> None:
    remote = Settings(backend="openai", backend_url="http://127.0.0.1:8080")
    assert remote.model_key() != Settings().model_key()
    # The local model's settings do not matter to a remote backend, its own ones do.
    assert remote.merged({"model": "/m", "quantize": "int8"})[0].model_key() == remote.model_key()
    for raw in ({"backendUrl": "http://localhost:9"}, {"backendModel": "m"}, {"backendTimeoutMs": 500},
                {"backendApiKeyEnv": "K"}):
        assert remote.merged(raw)[0].model_key() != remote.model_key()
