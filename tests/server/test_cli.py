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


HELPER = (
    "export function zorbleQuantifyWidgets(widgets, factor) {\n"
    "  return widgets.map((w) => w * factor);\n"
    "}\n\n"
    "export const result = zorbleQuantifyWidgets(readWidgetsFromDisk(config), 3);\n"
)
CALLER = "import { zorbleQuantifyWidgets } from './helper.js';\n\nexport const total = zorble\n"


def project(root: Path, marker: str | None = "package.json") -> Path:
    """A two-file project: a helper defined in one file, the cursor in the other."""
    (root / "src").mkdir(parents=True)
    if marker == "package.json":
        (root / "package.json").write_text('{"name": "widgets", "version": "1.0.0"}\n')
    elif marker == ".git":
        (root / ".git").mkdir()
    (root / "src" / "helper.js").write_text(HELPER)
    caller = root / "src" / "caller.js"
    caller.write_text(CALLER)
    return caller


def complete_caller(caller: Path, model: Path, *flags: str) -> str:
    line = CALLER.split("\n").index("export const total = zorble") + 1
    done = run_cli("complete", f"{caller}:{line}:{len('export const total = zorble') + 1}", "--model", str(model),
                   "--max-new-tokens", "12", *flags)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("marker", ["package.json", ".git"])
def test_complete_indexes_the_project_around_the_file_like_the_editor(
    tmp_path: Path, trained_dir: Path, marker: str
) -> None:
    """The tiny model has never seen the helper's name: only the workspace index can offer it,
    and the project is found from the file (its nearest folder with package.json or .git)."""
    caller = project(tmp_path / "proj", marker)
    assert complete_caller(caller, trained_dir).startswith("QuantifyWidgets(")


def test_complete_workspace_none_reads_the_file_alone(tmp_path: Path, trained_dir: Path) -> None:
    caller = project(tmp_path / "proj")
    # The file's own import line is all it has: no call of the helper to copy.
    assert not complete_caller(caller, trained_dir, "--workspace", "none").startswith("QuantifyWidgets(")


def test_complete_workspace_dir_is_indexed_without_a_marker(tmp_path: Path, trained_dir: Path) -> None:
    caller = project(tmp_path / "proj", marker=None)
    assert not complete_caller(caller, trained_dir).startswith("QuantifyWidgets(")  # nothing marks a project
    assert complete_caller(caller, trained_dir, "--workspace", str(tmp_path / "proj")).startswith("QuantifyWidgets(")


def test_complete_an_empty_file_and_line_1_above_text(tmp_path: Path, trained_dir: Path) -> None:
    """An empty prefix is completed from the start of a text (no error, exit status 0)."""
    empty, above = tmp_path / "empty.js", tmp_path / "above.js"
    empty.write_text("")
    above.write_text("\nfunction add(a, b) {\n  return a + b;\n}\n")
    for source in (empty, above):
        done = run_cli("complete", f"{source}:1:1", "--model", str(trained_dir), "--max-new-tokens", "8",
                       "--workspace", "none")
        assert done.returncode == 0 and "error" not in done.stderr.lower(), done.stderr
        assert "\n" not in done.stdout.strip("\n")  # one line at most


def test_find_workspace_is_the_nearest_marked_folder(tmp_path: Path) -> None:
    from server.__main__ import find_workspace, workspace_of

    caller = project(tmp_path / "outer" / "inner")
    (tmp_path / "outer" / ".git").mkdir()
    assert find_workspace(caller) == (tmp_path / "outer" / "inner").resolve()
    assert workspace_of(caller, "none") is None
    assert workspace_of(caller, str(tmp_path)) == tmp_path.resolve()
    with pytest.raises(CliError, match="not a folder"):
        workspace_of(caller, str(tmp_path / "missing"))


def test_complete_flags_after_and_before_the_subcommand() -> None:
    parser = build_parser()
    after = parser.parse_args(["complete", "a.js:1:1", "--model", "m", "--max-new-tokens", "5"])
    before = parser.parse_args(["--model", "m", "--max-new-tokens", "5", "complete", "a.js:1:1"])
    for args in (after, before):
        settings, given = settings_from_args(args)
        assert (settings.model, settings.max_new_tokens) == ("m", 5)
        assert given == {"model", "maxNewTokens"}
    # The log flags too, either side; the default stays when neither gives them.
    for argv in (["complete", "a.js:1:1", "--log-level", "error", "--log-file", "x.log"],
                 ["--log-level", "error", "--log-file", "x.log", "complete", "a.js:1:1"]):
        args = parser.parse_args(argv)
        assert (args.log_level, args.log_file) == ("ERROR", "x.log")
    args = parser.parse_args(["complete", "a.js:1:1"])
    assert (args.log_level, args.log_file) == ("INFO", None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["complete", "missing.js:1:1"], "cannot read"),
        (["complete", "no-numbers.js"], "FILE:LINE:COL"),
        (["complete", "x.js:0:1"], "1-based"),
        (["complete", "x.js:1:1", "--workspace", "no-such-folder"], "cannot read"),
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
