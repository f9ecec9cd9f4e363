"""License checks: SPDX expressions from package.json and github-code license labels.

Written by hand because no maintained Python library both parses SPDX expressions and answers
"is every alternative in this allow-list?" without pulling the full license database; the
grammar we accept is small (ids, AND, OR, parentheses) and anything else is rejected.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")


class _Reject(Exception):
    """The expression is not acceptable; the message is the reason."""


def _tokens(expr: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            break
        out.append(m.group(1))
        pos = m.end()
    return out


def spdx_allowed(expr: str, allowed: Iterable[str]) -> tuple[bool, str]:
    """Accept an SPDX expression only if every license it names is in `allowed`.

    `MIT`, `(MIT OR Apache-2.0)`, `ISC AND MIT` pass; `MIT OR GPL-3.0`, `Apache-2.0 WITH x`,
    `MIT+`, `SEE LICENSE IN …`, `UNLICENSED`, malformed expressions fail. Ids compare
    case-insensitively. Returns (ok, reason).
    """
    allow = {a.lower() for a in allowed}
    text = expr.strip()
    if not text:
        return False, "license_missing"
    if text.upper().startswith("SEE LICENSE"):
        return False, "license_see_file"
    toks = _tokens(text)
    pos = 0

    def atom() -> None:
        nonlocal pos
        if pos >= len(toks):
            raise _Reject("license_malformed")
        tok = toks[pos]
        if tok == "(":
            pos += 1
            expression()
            if pos >= len(toks) or toks[pos] != ")":
                raise _Reject("license_malformed")
            pos += 1
            return
        if tok == ")" or tok.upper() in {"AND", "OR", "WITH"}:
            raise _Reject("license_malformed")
        if tok.lower() not in allow:
            raise _Reject("license_not_permissive")
        pos += 1

    def expression() -> None:
        nonlocal pos
        atom()
        while pos < len(toks) and toks[pos].upper() in {"AND", "OR", "WITH"}:
            if toks[pos].upper() == "WITH":
                raise _Reject("license_exception")
            pos += 1
            atom()

    try:
        expression()
        if pos != len(toks):
            raise _Reject("license_malformed")
    except _Reject as reject:
        return False, str(reject)
    return True, "ok"


def package_license(pkg: Mapping[str, Any]) -> str:
    """The license expression a package.json declares, normalised to one SPDX-like string.

    Handles the modern `"license": "MIT"`, the legacy object `{"type": "MIT", "url": …}` and
    the legacy `"licenses": [{"type": …}, …]` array (joined with AND: every listed license
    must be acceptable, the conservative reading). Returns "" when none is declared.
    """
    lic = pkg.get("license")
    if isinstance(lic, str):
        return lic
    if isinstance(lic, Mapping) and isinstance(lic.get("type"), str):
        return str(lic["type"])
    legacy = pkg.get("licenses")
    if isinstance(legacy, list) and legacy:
        parts: list[str] = []
        for item in legacy:
            if isinstance(item, str):
                parts.append(item)
            elif isinstance(item, Mapping) and isinstance(item.get("type"), str):
                parts.append(str(item["type"]))
            else:
                return ""
        return " AND ".join(f"({p})" for p in parts)
    return ""


def package_license_allowed(pkg: Mapping[str, Any], allowed: Iterable[str]) -> tuple[bool, str, str]:
    """(ok, reason, license expression) for a parsed package.json."""
    expr = package_license(pkg)
    ok, reason = spdx_allowed(expr, allowed)
    return ok, reason, expr


def label_allowed(label: str | None, allowed: Iterable[str]) -> bool:
    """github-code style labels (`mit`, `apache-2.0`, `gpl-3.0`, …): exact, case-insensitive."""
    return bool(label) and str(label).strip().lower() in {a.lower() for a in allowed}
