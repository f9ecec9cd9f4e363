"""npm package dirs, safe tarball extraction and the (cached) fetch path."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import js_source, write_package

from training.data.build import iter_texts
from training.data.config import DataConfig
from training.data.npm import fetch_one, folder_name, package_dirs, read_package_list, safe_extract

REPO = Path(__file__).resolve().parents[2]


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def make_tarball(path: Path, name: str, version: str, license: str = "MIT", evil: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        meta = {"name": name, "version": version, "license": license}
        _add(tar, "package/package.json", json.dumps(meta).encode())
        _add(tar, "package/lib/index.js", js_source(len(name) + sum(map(ord, name))).encode())
        if evil:
            _add(tar, "package/../../escaped.js", b"evil")
            _add(tar, "/abs/evil.js", b"evil")
            _add(tar, "package/link.js", kind=tarfile.SYMTYPE, link="/etc/passwd")
            _add(tar, "package/hard.js", kind=tarfile.LNKTYPE, link="package/package.json")
            _add(tar, "package/fifo", kind=tarfile.FIFOTYPE)
    return path


def test_safe_extract_refuses_traversal_links_and_devices(tmp_path: Path) -> None:
    tgz = make_tarball(tmp_path / "t.tgz", "ok-pkg", "1.0.0", evil=True)
    dest = tmp_path / "a" / "b" / "out"
    safe_extract(tgz, dest)
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file() or p.is_symlink())
    assert files == ["lib/index.js", "package.json"]
    assert not (tmp_path / "a" / "escaped.js").exists() and not (tmp_path / "escaped.js").exists()
    assert not list(tmp_path.rglob("evil.js"))


def test_fetch_uses_the_tarball_cache_and_refuses_reserved(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dest = tmp_path / "pkgs"
    make_tarball(dest / ".tarballs" / folder_name("@acme/thing@1.2.3") / "acme-thing-1.2.3.tgz", "@acme/thing", "1.2.3")
    out = fetch_one("@acme/thing@1.2.3", dest)  # cached tarball: no npm call
    assert out == dest / "@acme+thing@1.2.3"
    assert json.loads((out / "package.json").read_text())["name"] == "@acme/thing"
    assert fetch_one("@acme/thing@1.2.3", dest) == out  # already unpacked
    with caplog.at_level(logging.WARNING):
        assert fetch_one("lodash@4.17.21", dest) is None
    assert "reserved" in caplog.text
    assert not (dest / "lodash@4.17.21").exists()


def test_fetch_cli_with_cached_tarballs(tmp_path: Path) -> None:
    dest = tmp_path / "pkgs"
    for spec in ("alpha@1.0.0", "beta@2.0.0"):
        name, version = spec.split("@")
        make_tarball(dest / ".tarballs" / spec / f"{name}-{version}.tgz", name, version)
    lst = tmp_path / "packages.txt"
    lst.write_text("# corpus\nalpha@1.0.0\n\nbeta@2.0.0  # second\nchai@4.0.0\n")
    assert read_package_list(lst) == ["alpha@1.0.0", "beta@2.0.0", "chai@4.0.0"]
    proc = subprocess.run(
        [sys.executable, "-m", "training.data.npm", "fetch", "--list", str(lst), "--dest", str(dest), "--jobs", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "fetched 2/3" in proc.stdout and "chai" in proc.stderr
    assert [p.name for p in package_dirs(dest)] == ["alpha@1.0.0", "beta@2.0.0"]  # .tarballs is not a package


def test_local_source_accepts_a_single_package_dir(tmp_path: Path) -> None:
    pkg = write_package(tmp_path, "mine", {"name": "mine", "version": "0.0.1", "license": "ISC"},
                        {"src/a.js": js_source(1), "src/b.js": js_source(2), "dist/c.js": js_source(3)})
    records = list(iter_texts(DataConfig(source="local", dir=str(pkg))))
    assert sorted(r.path for r in records) == ["src/a.js", "src/b.js"]
    assert {(r.source, r.package_or_repo, r.license) for r in records} == {("local", "mine", "ISC")}
    # the npm source wants a dir *of* packages: the same dir holds none
    assert list(iter_texts(DataConfig(source="npm", dir=str(pkg)))) == []


def test_bad_package_json_and_missing_dir(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "package.json").write_text("{not json")
    (tmp_path / "broken" / "a.js").write_text(js_source(1))
    dropped: list[str] = []
    assert list(iter_texts(DataConfig(source="npm", dir=str(tmp_path)), dropped.append)) == []
    assert dropped == ["package_json_invalid"]
    with pytest.raises(FileNotFoundError):
        list(iter_texts(DataConfig(source="npm", dir=str(tmp_path / "nope"))))
    with pytest.raises(ValueError, match=r"data\.dir"):
        list(iter_texts(DataConfig(source="npm")))
