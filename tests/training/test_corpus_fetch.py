"""The v2 corpus pipeline on fixtures, with a fake `npm` on PATH that packs real tarballs:
fetch (parallel, resumable, a vanished package survived) -> training reader (license per
version, reserved names refused) -> manifest, and the selection scripts' name refusals."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from conftest import js_source, write_package

from corpus import rank_candidates, select_packages
from training.data.build import iter_texts
from training.data.config import DataConfig
from training.data.decontam import check_manifest, is_derived, reserved_packages
from training.data.manifest import Manifest
from training.data.npm import SUMMARY_FILE, FetchSummary, fetch_packages, main, read_package_list

# The fake npm: `npm pack SPEC --pack-destination DIR ...` packs the files the registry JSON
# lists for SPEC into DIR/<name>-<version>.tgz; an unknown SPEC fails like a vanished package.
FAKE_NPM = """#!{python}
import io, json, os, sys, tarfile
args = sys.argv[1:]
with open(os.environ["FAKE_NPM_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")
spec, dest = args[1], args[args.index("--pack-destination") + 1]
registry = json.load(open(os.environ["FAKE_NPM_REGISTRY"]))
if args[0] != "pack" or spec not in registry:
    sys.stderr.write("npm error 404 Not Found - GET " + spec + "\\n")
    sys.exit(1)
entry = registry[spec]
name, version = entry["meta"]["name"], entry["meta"]["version"]
path = os.path.join(dest, name.lstrip("@").replace("/", "-") + "-" + version + ".tgz")
with tarfile.open(path, "w:gz") as tar:
    files = dict(entry["files"], **{{"package.json": json.dumps(entry["meta"])}})
    for rel, text in files.items():
        data = text.encode()
        info = tarfile.TarInfo("package/" + rel)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
print(os.path.basename(path))
"""


def _entry(name: str, version: str, license: str, seed: int, extra: dict[str, str] | None = None) -> dict[str, object]:
    files = {"lib/index.js": js_source(seed), "lib/util.js": js_source(seed + 1), **(extra or {})}
    return {"meta": {"name": name, "version": version, "license": license}, "files": files}


REGISTRY = {
    "left-thing@1.0.0": _entry("left-thing", "1.0.0", "MIT", 10),
    "@acme/tool@2.1.0": _entry("@acme/tool", "2.1.0", "ISC", 20, {
        "test/lib/chai.js": js_source(90),  # vendored test library: dropped
        "lib/compiled.js": 'exports.foo = exports.bar = void 0;\n' + js_source(91),  # tsc output: dropped
    }),
    "relicensed@1.0.0": _entry("relicensed", "1.0.0", "MIT", 30),
    "relicensed@2.0.0": _entry("relicensed", "2.0.0", "GPL-3.0-only", 40),
    "apache-thing@0.3.0": _entry("apache-thing", "0.3.0", "Apache-2.0", 50),
}
SPECS = [*REGISTRY, "vanished@9.9.9"]


@pytest.fixture
def fake_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(FAKE_NPM.format(python=sys.executable), encoding="utf-8")
    npm.chmod(npm.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "registry.json").write_text(json.dumps(REGISTRY), encoding="utf-8")
    log = tmp_path / "npm-calls.log"
    log.touch()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_NPM_REGISTRY", str(tmp_path / "registry.json"))
    monkeypatch.setenv("FAKE_NPM_LOG", str(log))
    return log


def _calls(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8").splitlines()


def test_fetch_filter_manifest_pipeline(fake_npm: Path, tmp_path: Path) -> None:
    dest = tmp_path / "pkgs"
    reserved = sorted(reserved_packages())[0]
    summary = FetchSummary()
    results = fetch_packages([*SPECS, f"{reserved}@1.0.0"], dest, jobs=3, summary=summary)
    assert [r is not None for r in results] == [True] * len(REGISTRY) + [False, False]
    assert set(summary.skipped) == {"vanished@9.9.9", f"{reserved}@1.0.0"}
    assert "404" in summary.skipped["vanished@9.9.9"] and "reserved" in summary.skipped[f"{reserved}@1.0.0"]
    assert summary.counts["fetched"] == len(REGISTRY)
    assert not any(reserved in c for c in _calls(fake_npm))  # refused before npm is asked
    assert len(_calls(fake_npm)) == len(SPECS)

    manifest = Manifest()
    rows = [r.manifest_row() for r in iter_texts(DataConfig(source="npm", dir=str(dest)), manifest.drop)]
    check_manifest(rows)
    kept = {(r["package"], r["version"], r["path"]) for r in rows}
    assert ("relicensed", "1.0.0", "lib/index.js") in kept
    assert not any(r["version"] == "2.0.0" for r in rows)  # the GPL version of the same name is refused
    assert {r["license"] for r in rows} == {"MIT", "ISC", "Apache-2.0"}
    assert not any(p in ("test/lib/chai.js", "lib/compiled.js") for _, _, p in kept)
    assert sum(v for k, v in manifest.dropped.items() if k.startswith("package_") and "reserved" not in k) == 1
    assert manifest.dropped["vendored_test_lib"] == 1 and manifest.dropped["tsc_output"] == 1


def test_second_run_calls_npm_zero_times(fake_npm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "pkgs"
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(f"{s}  # comment" for s in SPECS) + "\n", encoding="utf-8")
    assert main(["fetch", "--list", str(listing), "--dest", str(dest), "--jobs", "2", "--no-progress"]) == 0
    first = len(_calls(fake_npm))
    assert first == len(SPECS)
    assert main(["fetch", "--list", str(listing), "--dest", str(dest), "--jobs", "2", "--no-progress"]) == 0
    assert len(_calls(fake_npm)) - first == 1  # only the vanished package is asked again
    summary = json.loads((dest / SUMMARY_FILE).read_text())
    assert summary["counts"] == {"cached": len(REGISTRY), "skipped": 1}

    # without the failing spec, a rerun is fully cached: npm is called zero times
    listing.write_text("\n".join(REGISTRY) + "\n", encoding="utf-8")
    before = len(_calls(fake_npm))
    assert main(["fetch", "--list", str(listing), "--dest", str(dest), "--no-progress"]) == 0
    assert len(_calls(fake_npm)) == before
    # a removed unpacked folder is rebuilt from the cached tarball, still without npm
    (dest / "left-thing@1.0.0" / "package.json").unlink()
    assert main(["fetch", "--list", str(listing), "--dest", str(dest), "--no-progress"]) == 0
    assert len(_calls(fake_npm)) == before and (dest / "left-thing@1.0.0" / "package.json").is_file()
    assert "fetched 5/5" in capsys.readouterr().out


def test_selection_refuses_reserved_derived_and_devset_names(tmp_path: Path) -> None:
    reserved = sorted(n for n in reserved_packages() if not n.startswith("@"))[0]
    dev = sorted(rank_candidates.devset_names())[0]
    crawl = {
        "popular-ok": {"version": "1.0.0", "license": "MIT", "dependents": 50},
        reserved: {"version": "1.0.0", "license": "MIT", "dependents": 999},
        f"{reserved}.helper": {"version": "1.0.0", "license": "MIT", "dependents": 99},
        f"@types/{reserved}": {"version": "1.0.0", "license": "MIT", "dependents": 99},
        dev: {"version": "1.0.0", "license": "MIT", "dependents": 99},
        "gpl-thing": {"version": "1.0.0", "license": "GPL-3.0", "dependents": 99},
        "less-ok": {"version": "2.0.0", "license": "(MIT OR Apache-2.0)", "dependents": 3},
        "broken": {"error": "registry lookup failed", "dependents": 9},
    }
    devset = rank_candidates.devset_names()
    assert rank_candidates.rank(crawl, devset, top=10) == ["popular-ok@1.0.0", "less-ok@2.0.0"]
    assert rank_candidates.rank(crawl, devset, top=1) == ["popular-ok@1.0.0"]

    # select_packages drops them even when they were fetched
    pkgs = tmp_path / "pkgs"
    for i, name in enumerate(["popular-ok", f"{reserved}.helper", dev]):
        write_package(pkgs, f"{name}@1.0.0", {"name": name, "version": "1.0.0", "license": "MIT"},
                      {"lib/a.js": js_source(300 + i), "lib/b.js": js_source(400 + i), "lib/copy.js": js_source(300 + i)})
    out, report = tmp_path / "packages.txt", tmp_path / "report.json"
    assert select_packages.main(["--pkgs", str(pkgs), "--out", str(out), "--report", str(report),
                                 "--min-bytes", "100", "--dedup"]) == 0
    assert [s.split("@")[0] for s in read_package_list(out)] == ["popular-ok"]
    data = json.loads(report.read_text())
    assert set(data["refused"]) == {f"{reserved}.helper", dev} and data["packages_kept"] == 1
    assert data["raw_js_bytes_all_fetched"] >= data["raw_js_bytes_kept_packages"] >= data["kept_js_bytes_before_dedup"] > 0
    copy = len(js_source(300).encode())
    assert data["kept_js_bytes_after_dedup"] == data["kept_js_bytes_before_dedup"] - copy  # the copy counts once


@pytest.mark.parametrize(("name", "derived"), [
    ("lodash.debounce", True), ("express-session-store", True), ("@types/express", True), ("@express/core", True),
    ("@node-red/runtime-extra", True), ("chalk", True),
    ("expressive", False), ("@node-red/util", False), ("runtime-extra", False), ("left-pad", False),
])
def test_is_derived(name: str, derived: bool) -> None:
    assert {"lodash", "express", "chalk", "@node-red/runtime"} <= reserved_packages()
    assert is_derived(name) is derived
