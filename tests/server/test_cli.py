"""The command line: `python -m server complete FILE:LINE:COL`, flags, and usage errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from lsp_wire import REPO, server_env

from server.__main__ import CliError, build_parser, offset_of, parse_location, parse_tcp, settings_from_args


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=REPO,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_complete_prints_only_the_completion(tmp_path: Path, trained_dir: Path) -> None:
    from server.completion import Completer
    from server.engines.pytorch import TorchEngine
    from server.settings import Settings

    text = "// 😀 emoji first\r\nfunction add(a, b) {\r\n  \r\n}\r\n"
    source = tmp_path / "add.js"
    source.write_bytes(text.encode("utf-8"))
    done = run_cli("complete", f"{source}:3:3", "--model", str(trained_dir), "--max-new-tokens", "16")
    assert done.returncode == 0, done.stderr
    settings = Settings(model=str(trained_dir), max_new_tokens=16)
    expected = Completer(TorchEngine(settings)).complete(text, text.index("{\r\n  ") + 5, settings=settings).text
    assert expected.strip()  # the trained tiny model writes something there
    assert done.stdout == expected  # nothing else on stdout: logs went to stderr


def test_complete_flags_after_and_before_the_subcommand() -> None:
    parser = build_parser()
    after = parser.parse_args(["complete", "a.js:1:1", "--model", "m", "--max-new-tokens", "5"])
    before = parser.parse_args(["--model", "m", "--max-new-tokens", "5", "complete", "a.js:1:1"])
    for args in (after, before):
        settings, given = settings_from_args(args)
        assert (settings.model, settings.max_new_tokens) == ("m", 5)
        assert given == {"model", "maxNewTokens"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["complete", "missing.js:1:1"], "cannot read"),
        (["complete", "no-numbers.js"], "FILE:LINE:COL"),
        (["complete", "x.js:0:1"], "1-based"),
        (["--tcp", "localhost:http"], "--tcp"),
        (["--max-new-tokens", "0"], "maxNewTokens"),
    ],
)
def test_usage_errors_go_to_stderr_with_status_2(tmp_path: Path, args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=tmp_path,
        env=server_env(PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert message in done.stderr


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    source = tmp_path / "a.js"
    source.write_text("const a = ")
    done = run_cli("complete", f"{source}:1:11", "--model", str(tmp_path / "nowhere"))
    assert done.returncode == 1
    assert done.stdout == ""
    assert "model" in done.stderr.lower() and "Traceback" not in done.stderr


def test_version() -> None:
    done = run_cli("--version")
    assert done.returncode == 0 and done.stdout.startswith("codeparrot-lsp ")


def test_parse_location_and_offsets() -> None:
    assert parse_location("dir:with:colons/a.js:12:3") == ("dir:with:colons/a.js", 12, 3)
    text = "a😀b\r\ncd\n"
    assert offset_of(text, 1, 3) == text.index("b")  # columns count characters, not bytes or UTF-16
    assert offset_of(text, 2, 3) == text.index("d") + 1  # end of line 2
    assert offset_of(text, 3, 1) == len(text)
    with pytest.raises(CliError):
        offset_of(text, 2, 4)
    with pytest.raises(CliError):
        offset_of(text, 4, 1)


def test_parse_tcp_defaults_to_loopback() -> None:
    assert parse_tcp("9000") == ("127.0.0.1", 9000)
    assert parse_tcp(":9000") == ("127.0.0.1", 9000)
    assert parse_tcp("0.0.0.0:1") == ("0.0.0.0", 1)
    assert parse_tcp("[::1]:7") == ("::1", 7)
    with pytest.raises(CliError):
        parse_tcp("host:99999")
