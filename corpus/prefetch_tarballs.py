"""Warm the fetch cache (`DIR/.tarballs/<folder>/`) with registry tarballs, without `npm pack`.

    python -m corpus.prefetch_tarballs --list corpus-data/fetch-v3-new.txt --dest corpus-data/npm-v2 --jobs 8
    python -m training.data.npm fetch --list corpus-data/fetch-v3-new.txt --dest corpus-data/npm-v2 --jobs 4

`npm pack` costs ~0.7 s of CPU per package (a Node start), which for ~10,000 candidates is hours
of CPU taken from a training run sharing the machine. This downloads the same bytes `npm pack`
would (the registry's `dist.tarball`, checked against its `dist.integrity` sha512) over a few
kept-alive HTTPS connections, into the folder where `training.data.npm fetch` looks for a cached
tarball; that fetch then only unpacks (outcome "unpacked") and still applies its own refusals.
Names `corpus.rank_candidates.refusal` refuses (reserved for evaluation or derived from one, dev
set, `@types/*`) are never downloaded. Anything that fails here is left to `npm pack`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import sys
import tempfile
import threading
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from corpus.rank_candidates import devset_names, refusal
from training.data.decontam import package_name
from training.data.npm import folder_name, read_package_list, tarball_dir

HOST = "registry.npmjs.org"
JOBS = 8  # network-bound
TIMEOUT_S = 60
MAX_TARBALL_BYTES = 200 * 1024 * 1024  # larger ones are left to npm pack

_local = threading.local()


def _get(url: str) -> bytes:
    """GET over this thread's kept-alive HTTPS connection (one reconnect on a dropped connection)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" or parts.hostname != HOST:
        raise ValueError(f"unexpected tarball host: {url}")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    for attempt in range(2):
        conn = getattr(_local, "conn", None)
        if conn is None:
            conn = _local.conn = http.client.HTTPSConnection(HOST, timeout=TIMEOUT_S)
        try:
            conn.request("GET", path, headers={"User-Agent": "codeparrot-lsp-corpus"})
            resp = conn.getresponse()
            body = resp.read(MAX_TARBALL_BYTES + 1)
            if resp.status != 200:
                raise OSError(f"HTTP {resp.status} for {url}")
            if len(body) > MAX_TARBALL_BYTES:
                raise OSError(f"over {MAX_TARBALL_BYTES} bytes: {url}")
            return body
        except (http.client.HTTPException, ConnectionError, TimeoutError):
            conn.close()
            _local.conn = None
            if attempt:
                raise
    raise AssertionError("unreachable")


def verify(data: bytes, integrity: str, shasum: str) -> bool:
    """`dist.integrity` (sha512, as npm checks it) or, for old packages without it, `dist.shasum`."""
    for item in integrity.split():
        algo, _, b64 = item.partition("-")
        if algo == "sha512":
            return base64.b64encode(hashlib.sha512(data).digest()).decode() == b64
    return bool(shasum) and hashlib.sha1(data).hexdigest() == shasum


def prefetch_one(spec: str, dest: Path, devset: frozenset[str]) -> str:
    """Outcome: "refused", "present", "downloaded" or "failed: why"."""
    name = package_name(spec)
    if refusal(name, devset):
        return "refused"
    if (dest / folder_name(spec) / "package.json").is_file():
        return "present"
    tar_dir = tarball_dir(dest, spec)
    if tar_dir.is_dir() and any(tar_dir.glob("*.tgz")):
        return "present"
    version = spec[len(name) + 1:]
    try:
        doc = json.loads(_get(f"https://{HOST}/{urllib.parse.quote(name, safe='@')}/{urllib.parse.quote(version)}"))
        dist = doc.get("dist") or {}
        url = str(dist.get("tarball") or "")
        data = _get(url)
        if not verify(data, str(dist.get("integrity") or ""), str(dist.get("shasum") or "")):
            return "failed: integrity mismatch"
    except (OSError, ValueError, http.client.HTTPException) as exc:
        return f"failed: {type(exc).__name__}: {exc}"[:300]
    tar_dir.mkdir(parents=True, exist_ok=True)
    # written under a unique name, then renamed: the fetcher only ever sees whole `*.tgz` files
    with tempfile.NamedTemporaryFile(dir=tar_dir, suffix=".part", delete=False) as tmp:
        tmp.write(data)
    Path(tmp.name).replace(tar_dir / Path(urllib.parse.urlsplit(url).path).name)  # `name-1.2.3.tgz`, as npm names it
    return "downloaded"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", type=Path, required=True, help="name@version lines (# comments)")
    ap.add_argument("--dest", type=Path, required=True, help="the folder `training.data.npm fetch` will fill")
    ap.add_argument("--jobs", type=int, default=JOBS)
    args = ap.parse_args(argv)
    specs = read_package_list(args.list)
    devset = devset_names()
    counts: Counter[str] = Counter()
    failed: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for i, (spec, how) in enumerate(zip(specs, pool.map(lambda s: prefetch_one(s, args.dest, devset), specs),
                                            strict=True), 1):
            counts[how.split(":", 1)[0]] += 1
            if how.startswith("failed"):
                failed[spec] = how
            if i % 500 == 0:
                print(f"{i}/{len(specs)} {dict(counts)}", file=sys.stderr, flush=True)
    for spec, why in sorted(failed.items()):
        print(f"  {spec}: {why}", file=sys.stderr)
    print(f"{len(specs)} specs: {dict(sorted(counts.items()))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
