"""Line completion through the server's own `Completer` on JSONL rows, with the package of each row
as its workspace, and the copy-only floor it is compared against (`training.evaluate lines`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from training.config import ConfigError

log = logging.getLogger("training.evaluate")

def read_jsonl(path: Path, limit: int = 0) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if not isinstance(row, dict) or "id" not in row or "prefix" not in row:
                raise ConfigError(f"{path}:{n}: each row needs at least \"id\" and \"prefix\"")
            rows.append(row)
            if limit and len(rows) >= limit:
                break
    return rows


def repo_index(tokenizer: Any, pkg_dir: Path, snippets: bool = False) -> Any:
    """The server's own workspace index over one package folder (keys: paths inside it), in
    `tokenizer`'s tokens."""
    from server.retrieval.files import scan_workspace
    from server.retrieval.vocab import new_index

    index = new_index(tokenizer, snippets=snippets)
    index.build((path.relative_to(pkg_dir).as_posix(), text) for path, text in scan_workspace(pkg_dir))
    return index


def predict_lines(
    rows: list[dict[str, Any]],
    settings: Any,
    *,
    token_healing: bool = True,
    repos: Path | None = None,
    snippet_tokens: int = 0,
    copy_verdicts: bool = True,
    mix: Any = None,
    failed: list[str] | None = None,
) -> Iterator[tuple[str, str]]:
    """(id, prediction) per row, through the server's Completer. A row whose completion raises
    gets "" (scored as a miss), a warning, and its id appended to `failed`.

    With `repos` (a folder of unpacked packages, `name@version` each), a row's package is indexed
    as its workspace, and the row's own file is left out of it (the editor would have it open,
    without the line being predicted: the Completer searches that text itself).
    """
    from server.build import build_completer, index_tokenizer
    from training.data.npm import folder_name

    completer = build_completer(  # no completion cache: each row is scored on its own
        settings, cache_entries=0, token_healing=token_healing, snippet_tokens=snippet_tokens,
        copy_verdicts=copy_verdicts, mix=mix,
    )
    attach: Callable[[str], None] | None = None
    if repos is not None:
        packages = repos
        tokenizer = index_tokenizer(completer)  # as the editor builds it, for a remote engine too

        def attach(spec: str) -> None:
            index = repo_index(tokenizer, packages / folder_name(spec), snippets=snippet_tokens > 0)
            completer.use_index(index, tokenizer, True)

    for row, done in complete_rows(completer, rows, settings, attach):
        if isinstance(done, Exception):  # one bad row (a lone surrogate, a generation error) must not end the run
            log.warning("row %s failed, recorded as an empty prediction: %s: %s", row["id"], type(done).__name__, done)
            if failed is not None:
                failed.append(str(row["id"]))
            yield str(row["id"]), ""
        else:
            yield str(row["id"]), done.text


def complete_rows(
    completer: Any, rows: list[dict[str, Any]], settings: Any, attach: Callable[[str], None] | None = None
) -> Iterator[tuple[dict[str, Any], Any]]:
    """Each row completed as the editor would, with its Outcome or the exception it raised. With
    `attach`, a row of a package (`name@version`) is completed with that package as the workspace:
    `attach(spec)` points the completer at the package's index when the package changes, and the
    row's path is its document key (the row's own file is open in the editor)."""
    current = None
    for row in rows:
        prefix, suffix = str(row["prefix"]), str(row.get("suffix", ""))
        key = "evaluate"
        if attach is not None and row.get("package"):
            spec = f"{row['package']}@{row.get('version', '')}"
            if spec != current:  # one index in memory: rows come grouped by package
                attach(spec)
                current = spec
            key = str(row.get("path", "evaluate"))
        try:
            yield row, completer.complete(prefix + suffix, len(prefix), settings=settings, key=key)
        except Exception as exc:  # the caller decides: a miss with a warning, or a failed run
            yield row, exc


def _row_sources(rows: list[dict[str, Any]], repos: Path | None) -> Iterator[tuple[dict[str, Any], list[str]]]:
    """Each row with the texts of its package's other files (`repos`), or [] without repos."""
    from server.retrieval.files import scan_workspace
    from training.data.npm import folder_name

    texts: dict[str, dict[str, str]] = {}
    for row in rows:
        others: list[str] = []
        if repos is not None and row.get("package"):
            spec = f"{row['package']}@{row.get('version', '')}"
            if spec not in texts:
                texts.clear()
                pkg = repos / folder_name(spec)
                texts[spec] = {p.relative_to(pkg).as_posix(): t for p, t in scan_workspace(pkg)}
            others = [t for k, t in texts[spec].items() if k != str(row.get("path", ""))]
        yield row, others


def copy_baselines(rows: list[dict[str, Any]], repos: Path | None) -> tuple[dict[str, str], dict[str, bool]]:
    """Per row, in one pass over the packages: the copy-only baseline (from the row's package
    (`repos`) and its own file, or its own file alone without repos) and, for rows with a target,
    whether its line could be copied at all (`line_available`)."""
    from server.retrieval.copies import copy_prediction

    copies: dict[str, str] = {}
    available: dict[str, bool] = {}
    for row, others in _row_sources(rows, repos):
        prefix, suffix = str(row["prefix"]), str(row.get("suffix", ""))
        copies[str(row["id"])] = copy_prediction(prefix, suffix, others)
        if "target" in row:
            available[str(row["id"])] = line_available(prefix, suffix, str(row["target"]), others)
    return copies, available


def line_available(prefix: str, suffix: str, target: str, others: list[str]) -> bool:
    """Whether the completed cursor line (what is typed of it + `target`, stripped) is a line
    somewhere a copy could take it from: the package's other files or the rest of its own file.
    The share of such rows bounds what any copying predictor can get exactly right."""
    from server.retrieval.copies import own_sources

    line = (prefix[prefix.rfind("\n") + 1 :] + target).strip()
    if not line:
        return False
    before, after = own_sources(prefix, suffix)
    own = [before[: before.rfind("\n") + 1], after]  # the file but the cursor line
    return any(line == other.strip() for text in [*own, *others] for other in text.splitlines())


def mix_params(pairs: list[str]) -> Any:
    """`MixParams` with `KEY=VALUE` fields replaced (values coerced to each field's type)."""
    from dataclasses import fields

    from server.retrieval.mixing import MixParams

    params = MixParams()
    types = {f.name: type(getattr(params, f.name)) for f in fields(MixParams)}
    changes: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in types:
            raise ConfigError(f"--mix {pair!r}: expected KEY=VALUE with KEY one of {', '.join(types)}")
        try:
            changes[key] = types[key](value)
        except ValueError as exc:
            raise ConfigError(f"--mix {pair!r}: {exc}") from exc
    return replace(params, **changes)
