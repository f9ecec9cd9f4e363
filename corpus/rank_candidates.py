"""Rank the crawled candidates into the fetch list `corpus/candidates-v2.txt` (`name@version` lines).

    python -m corpus.rank_candidates --crawl corpus/candidates-v2.json --out corpus/candidates-v2.txt

Most-depended-upon first (see corpus/crawl_candidates.py); refused: names reserved for
evaluation or derived from one (`training.data.decontam.is_derived`), dev-set names, `@types/*`
(declarations only), and packages whose registry license is not exactly MIT, ISC or Apache-2.0
(the training reader re-checks each package's own package.json after the fetch).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from training.data.decontam import is_derived, package_name
from training.data.licenses import spdx_allowed
from training.data.npm import read_package_list

ALLOWED_LICENSES = ("MIT", "ISC", "Apache-2.0")  # permissive, attribution only: what the corpus may hold
DEVSET = Path(__file__).with_name("devset-packages.txt")
TOP = 5000  # about 70 % survive the source filters, enough for >= 3,000 packages of JavaScript


def refusal(name: str, devset: frozenset[str]) -> str | None:
    """Why `name` may not enter the corpus (None = it may)."""
    bare = package_name(name).lower()
    if is_derived(bare):
        return "reserved for evaluation (or named after a reserved package)"
    if bare in devset:
        return "held out in the dev set"
    if bare.startswith("@types/"):
        return "type declarations only"
    return None


def devset_names(path: Path = DEVSET) -> frozenset[str]:
    return frozenset(package_name(s).lower() for s in read_package_list(path))


def rank(packages: dict[str, dict[str, Any]], devset: frozenset[str], top: int) -> list[str]:
    """`name@version` of the `top` most-depended-upon acceptable candidates."""
    ok = [
        (name, info)
        for name, info in packages.items()
        if "error" not in info
        and info.get("version")
        and refusal(name, devset) is None
        and spdx_allowed(str(info.get("license") or ""), ALLOWED_LICENSES)[0]
    ]
    ok.sort(key=lambda item: (-int(item[1].get("dependents", 0)), item[0]))
    return [f"{name}@{info['version']}" for name, info in ok[:top]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crawl", type=Path, required=True, help="JSON written by corpus.crawl_candidates")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--top", type=int, default=TOP)
    ap.add_argument("--title", default="v2 fetch candidates", help="first words of the header line")
    args = ap.parse_args(argv)
    crawl = json.loads(args.crawl.read_text(encoding="utf-8"))
    specs = rank(crawl["packages"], devset_names(), args.top)
    header = f"# {args.title}, most-depended-upon first (corpus/rank_candidates.py); pinned at crawl time\n"
    args.out.write_text(header + "\n".join(specs) + "\n", encoding="utf-8")
    print(f"{len(specs)} candidates -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
