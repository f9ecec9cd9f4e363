"""Command line: `python -m server` (LSP over stdio), `--tcp HOST:PORT`, `complete FILE:LINE:COL`.

`complete` answers as the editor would: the folder an editor would open (the nearest one above
FILE holding package.json or .git, or `--workspace DIR`) is indexed as the workspace, with the
same copies and mixing; `--workspace none` completes from the file alone.

`main()` is also the `codeparrot-lsp` console script. Nothing but LSP frames (or, for `complete`,
the completion itself) ever reaches stdout: logs go to stderr or `--log-file`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from server import __version__

logger = logging.getLogger("server")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DEFAULT_TCP_HOST = "127.0.0.1"  # loopback: a completion server has no business on the network
# CLI flag -> LSP setting name (the same names as initializationOptions / didChangeConfiguration).
FLAG_SETTINGS = {
    "model": "model",
    "adapter": "adapter",
    "max_new_tokens": "maxNewTokens",
    "max_prompt_tokens": "maxPromptTokens",
    "device": "device",
    "quantize": "quantize",
    "engine": "engine",
    "multiline": "multiline",
    "fim": "fim",
    "backend": "backend",
    "backend_url": "backendUrl",
    "backend_model": "backendModel",
    "backend_api_key_env": "backendApiKeyEnv",
    "backend_timeout_ms": "backendTimeoutMs",
    "backend_snippet_tokens": "backendSnippetTokens",
    "acceptance_log": "acceptanceLog",
    "acceptance_log_text": "acceptanceLogText",
}


class CliError(Exception):
    """A usage problem: printed to stderr, exit status 2."""


def _add_model_flags(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # The `complete` subparser repeats these with SUPPRESS defaults so that it does not
    # overwrite values given before the subcommand name.
    default: Any = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("model settings (same names as the editor settings)")
    group.add_argument(
        "--model",
        default=default,
        metavar="PATH_OR_ID",
        help="local model directory or hub id (default: the shipped model)",
    )
    group.add_argument("--adapter", default=default, metavar="PATH", help="peft LoRA adapter directory")
    group.add_argument(
        "--max-new-tokens",
        type=int,
        default=default,
        metavar="N",
        help="most tokens generated per completion",
    )
    group.add_argument(
        "--max-prompt-tokens",
        type=int,
        default=default,
        metavar="N",
        help="token budget of the prompt (prefix + suffix)",
    )
    group.add_argument("--device", choices=("auto", "cpu", "cuda"), default=default)
    group.add_argument("--quantize", choices=("auto", "none", "int8", "bf16"), default=default)
    group.add_argument(
        "--engine",
        choices=("auto", "torch", "llama"),
        default=default,
        help="auto: llama.cpp when llama-cpp-python is installed and the model converts, else torch",
    )
    group.add_argument("--multiline", choices=("auto", "never", "always"), default=default)
    group.add_argument("--fim", choices=("auto", "off"), default=default, help="fill-in-the-middle prompts")
    group.add_argument(
        "--backend",
        choices=("local", "openai"),
        default=default,
        help="local: the model in this process; openai: an OpenAI-compatible engine at --backend-url",
    )
    group.add_argument(
        "--backend-url", default=default, metavar="URL", help="https://…, or http://127.0.0.1:PORT"
    )
    group.add_argument("--backend-model", default=default, metavar="NAME", help="`model` sent to the engine")
    group.add_argument(
        "--backend-api-key-env",
        default=default,
        metavar="VAR",
        help="name of the environment variable holding the engine's API key",
    )
    group.add_argument("--backend-timeout-ms", type=int, default=default, metavar="MS")
    group.add_argument(
        "--backend-snippet-tokens",
        type=int,
        default=default,
        metavar="N",
        help="tokens of similar workspace code put before a remote engine's prompt (0: none)",
    )
    group.add_argument(
        "--acceptance-log",
        default=default,
        metavar="PATH",
        help="append shown/accepted completions to this local JSONL file (default: no file)",
    )
    group.add_argument(
        "--acceptance-log-text",
        action="store_const",
        const=True,
        default=default,
        help="put the completions' text in that log too",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codeparrot-lsp",
        description="Local, offline JavaScript code completion language server.",
    )
    parser.add_argument("--version", action="version", version=f"codeparrot-lsp {__version__}")
    parser.add_argument(
        "--tcp",
        metavar="HOST:PORT",
        help=f"serve LSP over TCP on this address (host defaults to {DEFAULT_TCP_HOST})",
    )
    _add_log_flags(parser, suppress=False)
    _add_model_flags(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    complete = sub.add_parser(
        "complete",
        help="print the completion at FILE:LINE:COL to stdout",
        description="Print the completion at FILE:LINE:COL (1-based; COL counts characters) to stdout.",
    )
    complete.add_argument("location", metavar="FILE:LINE:COL")
    complete.add_argument(
        "--workspace",
        metavar="DIR|none",
        help="folder indexed as the editor's workspace (default: the nearest folder above FILE "
        "holding package.json or .git; none: the file alone)",
    )
    _add_log_flags(complete, suppress=True)
    _add_model_flags(complete, suppress=True)
    return parser


def _add_log_flags(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """--log-file and --log-level, before or after `complete` (SUPPRESS as in _add_model_flags)."""
    parser.add_argument(
        "--log-file",
        default=argparse.SUPPRESS if suppress else None,
        metavar="PATH",
        help="write logs to this file instead of stderr",
    )
    parser.add_argument(
        "--log-level",
        default=argparse.SUPPRESS if suppress else "INFO",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    )


def settings_from_args(args: argparse.Namespace) -> tuple[Any, frozenset[str]]:
    """Settings from the flags given, and the LSP names of those flags."""
    from server.settings import Settings

    raw = {
        name: getattr(args, flag)
        for flag, name in FLAG_SETTINGS.items()
        if getattr(args, flag, None) is not None
    }
    settings, errors = Settings().merged(raw)
    if errors:
        raise CliError("; ".join(errors))
    return settings, frozenset(raw)


def parse_tcp(address: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` or `PORT`; IPv6 hosts in brackets (`[::1]:PORT`)."""
    host, sep, port = address.rpartition(":")
    host = host.strip("[]") if sep else ""
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise CliError(f"--tcp expects HOST:PORT with a port from 0 to 65535, got {address!r}")
    return host or DEFAULT_TCP_HOST, int(port)


def parse_location(location: str) -> tuple[str, int, int]:
    """`path/to/file.js:LINE:COL` (1-based) -> (path, line, col)."""
    match = re.fullmatch(r"(.+):(\d+):(\d+)", location)
    if not match:
        raise CliError(f"expected FILE:LINE:COL with 1-based numbers, got {location!r}")
    path, line, col = match.group(1), int(match.group(2)), int(match.group(3))
    if line < 1 or col < 1:
        raise CliError(f"LINE and COL are 1-based, got {line}:{col}")
    return path, line, col


def offset_of(text: str, line: int, col: int) -> int:
    """Index in `text` of 1-based `line` and `col` (col counts characters, not bytes)."""
    starts = [0, *(m.end() for m in re.finditer(r"\r\n|\r|\n", text))]
    if line > len(starts):
        raise CliError(f"line {line} is past the end of the file ({len(starts)} lines)")
    start = starts[line - 1]
    end = starts[line] if line < len(starts) else len(text)
    content = text[start:end].rstrip("\r\n")
    if col > len(content) + 1:
        raise CliError(f"column {col} is past the end of line {line} ({len(content)} characters)")
    return start + col - 1


def find_workspace(path: Path) -> Path | None:
    """The folder an editor would open for `path`: the nearest above it holding package.json or
    .git (a package, or a repository), or None."""
    for folder in path.resolve().parents:
        if (folder / "package.json").is_file() or (folder / ".git").exists():
            return folder
    return None


def workspace_of(path: Path, given: str | None) -> Path | None:
    """`--workspace`: DIR, "none" (None), or unset (`find_workspace`)."""
    if given is None:
        return find_workspace(path)
    if given.lower() == "none":
        return None
    folder = Path(given)
    if not folder.is_dir():
        raise CliError(f"--workspace {given}: not a folder (give a folder, or none)")
    return folder.resolve()


def setup_logging(level: str, log_file: str | None) -> None:
    handler: logging.Handler = (
        logging.FileHandler(log_file, encoding="utf-8") if log_file else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pygls logs every message it sends at INFO; only show that when debugging.
    logging.getLogger("pygls").setLevel(level if level == "DEBUG" else "WARNING")


def run_complete(args: argparse.Namespace, settings: Any) -> int:
    """The `complete` subcommand: one completion, printed alone on stdout."""
    from server.build import build_completer, index_tokenizer

    path, line, col = parse_location(args.location)
    try:
        with open(path, encoding="utf-8", newline="") as f:  # newline="": keep CRLF as written
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from exc
    offset = offset_of(text, line, col)
    folder = workspace_of(Path(path), getattr(args, "workspace", None))
    key = Path(path).resolve().as_uri()  # the editor's key: the file's own indexed copy is left out
    with contextlib.redirect_stdout(sys.stderr):  # whatever a library prints must not mix with the result
        completer = build_completer(settings, cache_entries=0)
        if folder is not None and settings.workspace_index == "on":
            tokenizer = index_tokenizer(completer)  # as in the editor, for a remote engine too
            if tokenizer is not None:
                index = index_folder(folder, tokenizer, snippets=completer.engine is None)
                completer.use_index(index, tokenizer, True)
        outcome = completer.complete(text, offset, settings=settings, key=key)
    if outcome.backend is not None and outcome.backend.error is not None:
        raise CliError(str(outcome.backend.error))
    logger.info("complete %s:%d:%d -> %r (%s)", path, line, col, outcome.text, outcome.reason)
    sys.stdout.write(outcome.text + ("\n" if sys.stdout.isatty() else ""))
    sys.stdout.flush()
    return 0


def index_folder(folder: Path, tokenizer: Any, snippets: bool = False) -> Any:
    """The workspace index the server builds for `folder` (same files, same keys), built now."""
    from server.indexing import WorkspaceIndexer

    workspace = WorkspaceIndexer()
    workspace.set_folders([folder.as_uri()])
    index = workspace.attach(tokenizer, snippets=snippets)
    workspace.ready.wait()
    status = workspace.status()
    logger.info("workspace %s: %d files, %d tokens indexed in %.2f s", folder, status["files"],
                status["tokens"], status["build_s"])
    return index


def run_server(args: argparse.Namespace, settings: Any, cli_keys: frozenset[str]) -> int:
    from server.server import CompletionServer

    server = CompletionServer(settings, cli_keys)
    if args.tcp:
        host, port = parse_tcp(args.tcp)
        logger.info("codeparrot-lsp %s listening on %s:%d", __version__, host, port)
        server.start_tcp(host, port)
        return 0
    # Keep the LSP channel private: frames go to a duplicate of fd 1, and fd 1 itself (print(),
    # C libraries, warnings) now points at stderr, so nothing stray can corrupt the stream.
    lsp_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    logger.info("codeparrot-lsp %s on stdio", __version__)
    server.start_io(sys.stdin.buffer, lsp_out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_file)
    try:
        settings, cli_keys = settings_from_args(args)
        if args.command == "complete":
            return run_complete(args, settings)
        return run_server(args, settings, cli_keys)
    except CliError as exc:
        print(f"codeparrot-lsp: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        from server.errors import CodeparrotError

        if not isinstance(exc, CodeparrotError):
            raise
        print(f"codeparrot-lsp: error: {exc.user_message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
