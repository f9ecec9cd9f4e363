"""The README shows the tested Neovim file verbatim and configurations that parse."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "README.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC, flags=re.S)


def test_neovim_snippet_is_the_tested_file() -> None:
    assert _blocks("lua") == [(REPO / "editors" / "nvim" / "codeparrot.lua").read_text(encoding="utf-8")]


def test_helix_languages_toml_parses_and_wires_both_languages() -> None:
    (block,) = _blocks("toml")
    cfg = tomllib.loads(block)
    server = cfg["language-server"]["codeparrot"]
    assert server["command"] == "codeparrot-lsp"
    assert set(server["config"]["codeparrot"]) <= {"maxNewTokens", "multiline", "model", "enable"}
    wired = {lang["name"] for lang in cfg["language"] if "codeparrot" in lang["language-servers"]}
    assert wired == {"javascript", "jsx"}


def test_eglot_snippet_uses_the_server_language_id() -> None:
    (block,) = _blocks("elisp")
    assert block.count("(") == block.count(")")
    assert re.findall(r':language-id "(\w+)"', block) == ["javascript", "javascript"]
