"""corpus/prefetch_tarballs.py without the network: refusals come before any request, a cached
tarball or unpacked package is not fetched again, and the registry's checksums are checked."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from corpus import prefetch_tarballs as prefetch


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []

    def refuse(url: str) -> bytes:
        asked.append(url)
        raise OSError("no network in tests")

    monkeypatch.setattr(prefetch, "_get", refuse)
    return asked


def test_refused_names_are_never_requested(tmp_path: Path, no_network: list[str]) -> None:
    for spec in ("jquery@3.7.1", "lodash.merge@4.6.2", "@types/node@20.0.0", "some-dev-pkg@1.0.0"):
        assert prefetch.prefetch_one(spec, tmp_path, frozenset({"some-dev-pkg"})) == "refused"
    assert no_network == []


def test_what_is_there_already_is_not_fetched_again(tmp_path: Path, no_network: list[str]) -> None:
    (tmp_path / "left-pad-ok@1.0.0").mkdir()
    (tmp_path / "left-pad-ok@1.0.0" / "package.json").write_text("{}")
    assert prefetch.prefetch_one("left-pad-ok@1.0.0", tmp_path, frozenset()) == "present"
    cached = tmp_path / ".tarballs" / "right-pad-ok@2.0.0"
    cached.mkdir(parents=True)
    (cached / "right-pad-ok-2.0.0.tgz").write_bytes(b"x")
    assert prefetch.prefetch_one("right-pad-ok@2.0.0", tmp_path, frozenset()) == "present"
    assert no_network == []
    # Anything else is asked for, and a failure is an outcome, not an exception.
    assert prefetch.prefetch_one("up-pad-ok@3.0.0", tmp_path, frozenset()).startswith("failed: OSError")
    assert len(no_network) == 1


def test_verify_checks_sha512_integrity_or_the_old_sha1() -> None:
    data = b"tarball bytes"
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    assert prefetch.verify(data, integrity, "")
    assert not prefetch.verify(data + b"!", integrity, "")
    assert prefetch.verify(data, "", hashlib.sha1(data).hexdigest())
    assert not prefetch.verify(data, "", "")
