"""The reserved evaluation packages never reach training data."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.data.decontam import (
    RESERVED_FILE,
    ContaminationError,
    check_manifest,
    is_reserved,
    package_name,
    parse_reserved,
    repo_is_reserved,
    reserved_packages,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "eval-reserved-npm-packages.txt"


def test_in_repo_copy_equals_the_shared_list() -> None:
    if not SHARED.is_file():
        pytest.skip(f"{SHARED} not present on this machine")
    assert RESERVED_FILE.read_bytes() == SHARED.read_bytes()


def test_list_parsing_and_exact_matching() -> None:
    names = reserved_packages()
    assert {"lodash", "express", "@node-red/runtime"} <= names
    assert not any(n.startswith("#") or " " in n for n in names)
    assert parse_reserved("# c\nfoo  # trailing\n\n@a/b\n") == {"foo", "@a/b"}
    assert is_reserved("lodash") and is_reserved("lodash@4.17.21") and is_reserved("Lodash")
    assert is_reserved("@node-red/runtime@3.0.0")
    assert not is_reserved("lodash.debounce") and not is_reserved("lodash-es") and not is_reserved("@node-red/util")
    assert not is_reserved("runtime")
    assert package_name("@scope/x@1.0.0") == "@scope/x" and package_name("@scope/x") == "@scope/x"
    assert repo_is_reserved("expressjs/express") and not repo_is_reserved("someone/expressive")


def test_check_manifest() -> None:
    check_manifest([{"package": "left-pad", "path": "a.js"}, {"repo": "u/p"}])
    with pytest.raises(ContaminationError, match="lodash"):
        check_manifest([{"package": "left-pad"}, {"package": "lodash"}])
    with pytest.raises(ContaminationError, match="express"):
        check_manifest([{"repo": "expressjs/express"}])
