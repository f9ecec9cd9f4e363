"""Candidate npm packages for the v2 corpus, ranked by how many other crawled packages depend on them.

    python -m corpus.crawl_candidates --seeds corpus/packages.txt --out corpus/candidates-v2.json

Popularity proxy: api.npmjs.org (download counts) and the registry search API do not answer
from our machines, so we crawl the registry's `/<name>/latest` documents breadth-first from
the seed packages and count, for every name reached, the crawled packages that list it in
`dependencies`, `peerDependencies` or `devDependencies` (in-crawl dependents). The crawl keeps every count it
saw in the JSON output, so the ranking can be checked and re-made without the network.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from training.data.decontam import package_name
from training.data.npm import read_package_list

REGISTRY = "https://registry.npmjs.org"
MAX_PACKAGES = 9000  # enough candidates that >= 3,000 survive the license and source filters
JOBS = 16  # network-bound: many small JSON requests in flight, almost no CPU
# devDependencies too: runtime deps of popular packages close into ~2,000 names, dev tools widen it
DEP_FIELDS = ("dependencies", "peerDependencies", "devDependencies")
TIMEOUT_S = 30  # one slow registry answer; beyond it the name is recorded as failed


def latest(name: str) -> dict[str, Any] | None:
    """The registry's document for the latest version of `name`, or None when it fails."""
    url = f"{REGISTRY}/{urllib.parse.quote(name, safe='@')}/latest"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
            doc = json.loads(resp.read())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def summarize(doc: dict[str, Any]) -> dict[str, Any]:
    lic = doc.get("license")
    deps = sorted({d for k in DEP_FIELDS for d in (doc.get(k) or {})})
    return {
        "version": str(doc.get("version") or ""),
        "license": lic if isinstance(lic, str) else json.dumps(lic),
        "unpacked_size": int((doc.get("dist") or {}).get("unpackedSize") or 0),
        "has_types_source": bool(doc.get("types") or doc.get("typings")),
        "deps": deps,
    }


def crawl(seeds: list[str], max_packages: int, jobs: int) -> tuple[dict[str, dict[str, Any]], Counter[str]]:
    """Breadth-first over dependencies; returns per-name summaries and in-crawl dependent counts."""
    seen: dict[str, dict[str, Any]] = {}
    dependents: Counter[str] = Counter()
    queued = set(seeds)
    frontier = list(seeds)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while frontier and len(seen) < max_packages:
            batch = frontier[: max_packages - len(seen)]
            frontier = frontier[len(batch):]
            for name, doc in zip(batch, pool.map(latest, batch), strict=True):
                if doc is None:
                    seen[name] = {"error": "registry lookup failed"}
                    continue
                info = summarize(doc)
                seen[name] = info
                for dep in info["deps"]:
                    dependents[dep] += 1
                    if dep not in queued:
                        queued.add(dep)
                        frontier.append(dep)
            # most-depended-upon names first in the next round
            frontier.sort(key=lambda n: (-dependents[n], n))
            print(f"crawled {len(seen)}, frontier {len(frontier)}", file=sys.stderr, flush=True)
    return seen, dependents


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=Path, nargs="+", required=True, help="name@version lists (names are used)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--max-packages", type=int, default=MAX_PACKAGES)
    ap.add_argument("--jobs", type=int, default=JOBS)
    args = ap.parse_args(argv)
    seeds = sorted({package_name(s) for f in args.seeds for s in read_package_list(f)})
    seen, dependents = crawl(seeds, args.max_packages, args.jobs)
    out = {
        "source": f"{REGISTRY}/<name>/latest, breadth-first from {len(seeds)} seed names",
        "popularity": "number of crawled packages listing the name in dependencies/peerDependencies/devDependencies",
        "seeds": seeds,
        "packages": {
            n: {**{k: v for k, v in seen[n].items() if k != "deps"}, "dependents": dependents[n]}
            for n in sorted(seen)
        },
    }
    args.out.write_text(json.dumps(out, indent=0, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{len(seen)} packages crawled -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
