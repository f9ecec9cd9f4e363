"""Which files of a workspace folder are indexed, read safely.

JavaScript (`.js .mjs .cjs .jsx`) and TypeScript text (`.ts .tsx`, as context) under the folder,
skipping what `.gitignore` ignores (root file, via `pathspec`), `node_modules/`, `dist/`, `build/`
and other output folders, minified or bundled files, files over `MAX_FILE_BYTES`, binary files
and anything unreadable; symlinked folders are not followed (no loops), symlinked files only when
they resolve inside the folder. Stops at a total of `max_total_bytes`. Each skip is logged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pathspec

log = logging.getLogger(__name__)

EXTENSIONS = frozenset({".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx"})
SKIP_DIRS = frozenset({"node_modules", "dist", "build", "out", "coverage", ".git", ".hg", "vendor", "bower_components"})
MAX_FILE_BYTES = 1_000_000  # bigger JavaScript is generated, bundled or data
MAX_TOTAL_BYTES = 64 * 1024 * 1024  # ~20 M tokens: a few seconds to build, ~120 MB of index
MINIFIED_LINE_CHARS = 500  # hand-written code has no line this long on average
BUNDLE_MARKERS = ("__webpack_require__", "webpackBootstrap", "System.register(", "/*! For license information")


def skip_reason(name: str, text: str) -> str | None:
    """Why a file's text is not indexed (minified/bundled), or None."""
    if name.endswith((".min.js", ".min.mjs", ".bundle.js")):
        return "minified name"
    lines = text.count("\n") + 1
    if len(text) / lines > MINIFIED_LINE_CHARS:
        return "minified (long lines)"
    if any(marker in text[:20000] for marker in BUNDLE_MARKERS):
        return "bundled"
    return None


def read_text(path: Path) -> str | None:
    """UTF-8 text of a small source file, or None (logged) when it should not be indexed."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            log.info("index: skipping %s (%d bytes > %d)", path, size, MAX_FILE_BYTES)
            return None
        data = path.read_bytes()
    except OSError as exc:
        log.info("index: skipping %s (%s)", path, exc.strerror or exc)
        return None
    if b"\0" in data[:8192]:
        log.info("index: skipping %s (binary)", path)
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        log.info("index: skipping %s (not UTF-8)", path)
        return None
    reason = skip_reason(path.name, text)
    if reason:
        log.info("index: skipping %s (%s)", path, reason)
        return None
    return text


def _gitignore(root: Path) -> pathspec.PathSpec | None:
    try:
        lines = (root / ".gitignore").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return pathspec.PathSpec.from_lines("gitwildmatch", lines)


def is_candidate(path: Path) -> bool:
    return path.suffix in EXTENSIONS


def scan_workspace(root: Path, max_total_bytes: int = MAX_TOTAL_BYTES) -> Iterator[tuple[Path, str]]:
    """(path, text) of the indexable files under `root`, sorted, up to `max_total_bytes`."""
    if not root.is_dir():
        log.warning("index: workspace folder %s is not a directory", root)
        return
    ignore = _gitignore(root)
    real_root = root.resolve()
    total = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=lambda e: log.info("index: %s", e)):
        here = Path(dirpath)
        rel_dir = here.relative_to(root).as_posix()
        keep = []
        for d in sorted(dirnames):
            rel = f"{rel_dir}/{d}/" if rel_dir != "." else f"{d}/"
            if d in SKIP_DIRS or (ignore is not None and ignore.match_file(rel)):
                continue
            if (here / d).is_symlink():
                log.info("index: not following symlinked folder %s", here / d)
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            path = here / name
            rel = f"{rel_dir}/{name}" if rel_dir != "." else name
            if not is_candidate(path) or (ignore is not None and ignore.match_file(rel)):
                continue
            if path.is_symlink():
                try:
                    target = path.resolve(strict=True)
                except (OSError, RuntimeError) as exc:  # dangling link or a loop
                    log.info("index: skipping symlink %s (%s)", path, exc)
                    continue
                if not target.is_relative_to(real_root):
                    log.info("index: skipping symlink %s (points outside the folder)", path)
                    continue
            text = read_text(path)
            if text is None:
                continue
            size = len(text.encode("utf-8", "surrogatepass"))
            if total + size > max_total_bytes:
                log.warning("index: stopping at the %d-byte cap (codeparrot index limit)", max_total_bytes)
                return
            total += size
            yield path, text
