"""npm packages: read unpacked package dirs (`data.dir`) or fetch `name@version` lists with `npm pack`.

Reading: every folder of `data.dir` holding a package.json is one package (scoped packages may
sit in `@scope/name` folders; for `source = "local"` the dir may itself be a package). The
license comes from the package's own package.json (`licenses.package_license_allowed`);
reserved evaluation packages are refused; build/vendored/minified files are skipped
(`filters.path_reason`).

Fetching (CLI): `python -m training.data.npm fetch --list FILE --dest DIR [--jobs N]` runs
`npm pack` per line (parallel, cached in DIR/.tarballs, failures logged and skipped, reserved
packages refused, a tqdm bar on stderr, a summary in DIR/fetch-summary.json; a second run
fetches nothing already unpacked or cached) and unpacks each tarball safely into DIR/<name>@<version>/.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from training.data.config import DataConfig
from training.data.decontam import is_reserved, package_name
from training.data.filters import is_excluded_dir, path_reason
from training.data.licenses import package_license_allowed
from training.data.records import Drop, Record

log = logging.getLogger(__name__)
DEFAULT_CACHE = Path.home() / ".cache" / "codeparrot-lsp" / "npm"
SUMMARY_FILE = "fetch-summary.json"  # beside the packages: what the last run fetched and skipped
NPM_PACK_TIMEOUT_S = 180  # a slow registry answer; beyond it the package is skipped


# ---------------------------------------------------------------- reading package dirs


def package_dirs(root: Path, *, root_may_be_package: bool = False) -> list[Path]:
    """Package folders under `root`, sorted (deterministic corpus order)."""
    if root_may_be_package and (root / "package.json").is_file():
        return [root]
    found: list[Path] = []
    for child in sorted(root.iterdir()):
        if not child.is_dir() or child.is_symlink():
            continue
        if (child / "package.json").is_file():
            found.append(child)
        elif child.name.startswith("@"):
            found.extend(sorted(c for c in child.iterdir() if c.is_dir() and (c / "package.json").is_file()))
    return found


def _package_files(pkg_dir: Path, drop: Drop) -> Iterator[str]:
    """Relative POSIX paths of regular files, sorted; excluded dirs are pruned (one
    `excluded_dir` drop per directory, its files are never listed)."""
    for here, dirs, files in os.walk(pkg_dir):
        for d in dirs:
            if is_excluded_dir(d):
                drop("excluded_dir")
        dirs[:] = sorted(d for d in dirs if not is_excluded_dir(d))
        for name in sorted(files):
            full = Path(here) / name
            if full.is_symlink() or not full.is_file():
                continue
            yield full.relative_to(pkg_dir).as_posix()


def iter_package(pkg_dir: Path, cfg: DataConfig, drop: Drop, source: str) -> Iterator[Record]:
    try:
        meta = json.loads((pkg_dir / "package.json").read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not an object")
    except (OSError, ValueError) as exc:
        log.info("skip %s: bad package.json (%s)", pkg_dir, exc)
        drop("package_json_invalid")
        return
    name = str(meta.get("name") or pkg_dir.name)
    version = str(meta.get("version") or "")
    if is_reserved(name) or is_reserved(pkg_dir.name):
        log.info("skip %s: reserved for evaluation", name)
        drop("package_reserved")
        return
    ok, reason, expr = package_license_allowed(meta, cfg.licenses)
    if not ok:
        log.info("skip %s: %s (%r)", name, reason, expr)
        drop(f"package_{reason}")
        return
    for rel in _package_files(pkg_dir, drop):
        why = path_reason(rel, cfg.extensions)
        if why:
            drop(why)
            continue
        full = pkg_dir / rel
        if full.stat().st_size > cfg.max_file_bytes:
            drop("too_large")
            continue
        try:
            text = full.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            drop("not_utf8")
            continue
        yield Record.make(text, source, name, version, expr, rel)


def iter_npm_records(cfg: DataConfig, drop: Drop) -> Iterator[Record]:
    if cfg.dir:
        root = Path(cfg.dir).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"data.dir {root} is not a directory")
        dirs = package_dirs(root, root_may_be_package=cfg.source == "local")
    elif cfg.packages_file:
        dest = Path(cfg.npm_cache_dir).expanduser() if cfg.npm_cache_dir else DEFAULT_CACHE
        dirs = [d for d in fetch_packages(read_package_list(Path(cfg.packages_file)), dest) if d is not None]
    else:
        raise ValueError(f"data.source={cfg.source!r} needs data.dir (unpacked packages) or data.packages_file")
    seen = 0
    for pkg_dir in dirs:
        for record in iter_package(pkg_dir, cfg, drop, cfg.source):
            yield record
            seen += 1
            if cfg.max_files and seen >= cfg.max_files:
                return


# ---------------------------------------------------------------- fetching with npm pack


def read_package_list(path: Path) -> list[str]:
    lines = (ln.split("#", 1)[0].strip() for ln in path.read_text(encoding="utf-8").splitlines())
    return [ln for ln in lines if ln]


def folder_name(spec: str) -> str:
    """`@scope/name@1.2.3` → `@scope+name@1.2.3` (one folder level, still readable)."""
    return spec.strip().replace("/", "+")


def tarball_dir(dest: Path, spec: str) -> Path:
    """Where `fetch` caches the tarball of `spec` (`npm pack` writes it there; a warm cache only
    unpacks)."""
    return dest / ".tarballs" / folder_name(spec)


def safe_extract(tarball: Path, dest: Path) -> None:
    """Unpack an npm tarball into `dest`, dropping its top folder (`package/`).

    Written by hand instead of `extractall` so only regular files and dirs are created and every
    path is checked: absolute paths, `..` components, links and devices are refused.
    """
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "r:*") as tar:
        for member in tar.getmembers():
            parts = PurePosixPath(member.name.replace("\\", "/")).parts
            if member.name.startswith("/") or ".." in parts or len(parts) < 2:
                continue
            if not (member.isfile() or member.isdir()):
                continue
            target = dest.joinpath(*parts[1:])
            if not target.resolve().is_relative_to(dest.resolve()):
                continue
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            if src is None:
                continue
            with src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)


def _fetch(spec: str, dest: Path) -> tuple[Path | None, str]:
    """Fetch one spec; (folder, "cached" | "unpacked" | "fetched") or (None, why it was skipped)."""
    if is_reserved(package_name(spec)):
        return None, "reserved for evaluation"
    out = dest / folder_name(spec)
    if (out / "package.json").is_file():
        return out, "cached"
    tar_dir = tarball_dir(dest, spec)
    tarballs = sorted(tar_dir.glob("*.tgz")) if tar_dir.is_dir() else []
    how = "unpacked"
    if not tarballs:
        how = "fetched"
        tar_dir.mkdir(parents=True, exist_ok=True)
        try:
            proc = subprocess.run(
                ["npm", "pack", spec, "--pack-destination", str(tar_dir), "--loglevel=error", "--ignore-scripts"],
                capture_output=True, text=True, timeout=NPM_PACK_TIMEOUT_S, check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"npm pack failed ({exc})"
        tarballs = sorted(tar_dir.glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            return None, f"npm pack exit {proc.returncode}: {proc.stderr.strip()[-300:]}"
    tmp = Path(tempfile.mkdtemp(dir=dest, prefix=".unpack-"))
    try:
        safe_extract(tarballs[0], tmp)
        if not (tmp / "package.json").is_file():
            return None, "tarball has no package.json"
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
        return out, how
    except (tarfile.TarError, OSError, EOFError) as exc:
        return None, f"bad tarball ({exc})"
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def fetch_one(spec: str, dest: Path) -> Path | None:
    """`npm pack` one spec (cached) and unpack it; None (logged) when it fails or is refused."""
    out, how = _fetch(spec, dest)
    if out is None:
        log.warning("skip %s: %s", spec, how)
    return out


@dataclass
class FetchSummary:
    """What one fetch run did: counts per outcome and every skipped spec with its reason."""

    counts: Counter[str] = field(default_factory=Counter)
    skipped: dict[str, str] = field(default_factory=dict)

    def write(self, path: Path) -> None:
        data = {"counts": dict(sorted(self.counts.items())), "skipped": dict(sorted(self.skipped.items()))}
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def fetch_packages(
    specs: list[str], dest: Path, jobs: int = 4, summary: FetchSummary | None = None, progress: bool = False
) -> list[Path | None]:
    """Fetch all specs in parallel; the result is aligned with `specs` (None = skipped).

    Resumable: an unpacked folder or a cached tarball is never fetched again, so a second run
    calls npm only for what failed before. A failing spec (vanished, network, bad tarball,
    unexpected error) is logged, skipped and listed in `summary`.
    """
    if shutil.which("npm") is None:
        raise RuntimeError("npm is not on PATH: install Node.js/npm to fetch packages, or pass data.dir")
    dest.mkdir(parents=True, exist_ok=True)
    summary = summary if summary is not None else FetchSummary()
    results: list[Path | None] = [None] * len(specs)

    def safe(spec: str) -> tuple[Path | None, str]:
        try:
            return _fetch(spec, dest)
        except Exception as exc:
            return None, f"unexpected error ({type(exc).__name__}: {exc})"

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool, tqdm(
        total=len(specs), desc="npm fetch", unit="pkg", file=sys.stderr, disable=not progress
    ) as bar:
        futures = {pool.submit(safe, spec): i for i, spec in enumerate(specs)}
        for fut in as_completed(futures):
            i = futures[fut]
            out, how = fut.result()
            results[i] = out
            if out is None:
                log.warning("skip %s: %s", specs[i], how)
                summary.counts["skipped"] += 1
                summary.skipped[specs[i]] = how
            else:
                summary.counts[how] += 1
            bar.update(1)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.data.npm", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    fetch = sub.add_parser("fetch", help="npm pack + unpack every name@version line of a list")
    fetch.add_argument("--list", required=True, type=Path, help="file of name@version lines (# comments)")
    fetch.add_argument("--dest", required=True, type=Path, help="directory receiving one folder per package")
    fetch.add_argument("--jobs", type=int, default=4, help="parallel npm pack processes")
    fetch.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    specs = read_package_list(args.list)
    summary = FetchSummary()
    results = fetch_packages(specs, args.dest, args.jobs, summary, progress=not args.no_progress)
    summary.write(args.dest / SUMMARY_FILE)
    ok = sum(r is not None for r in results)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.counts.items()))
    print(f"fetched {ok}/{len(specs)} packages into {args.dest} ({counts}); summary: {args.dest / SUMMARY_FILE}")
    for spec, why in sorted(summary.skipped.items()):
        print(f"  skipped {spec}: {why}", file=sys.stderr)
    return 0 if ok or not specs else 1


if __name__ == "__main__":
    raise SystemExit(main())
