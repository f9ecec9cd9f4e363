"""Turn a directory of unpacked candidate npm packages into the pinned list `corpus/packages.txt`.

    python -m corpus.select_packages --pkgs corpus-data/pkgs --out corpus/packages.txt

A candidate is kept when the training pipeline's own npm reader accepts it (license from its
package.json is exactly MIT, ISC or Apache-2.0; not reserved for evaluation) and, after the
pipeline's path and quality filters, it still has at least `--min-bytes` of hand-written
JavaScript that is not compiled TypeScript. Each line is `name@version  # LICENSE  (N KB)`.
This is how the shipped list was made; rebuilding the corpus needs only the list itself.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

from training.data.config import DataConfig
from training.data.filters import quality_reason
from training.data.npm import iter_npm_records

MIN_BYTES = 2000  # below this a package adds nothing but a line to the attribution list
# TypeScript's CommonJS output without source maps: `exports.a = exports.b = void 0;`
# Checked by hand: their JavaScript is TypeScript/Babel output that passes the file-level markers.
EXCLUDED = {
    "date-fns": "TypeScript output (.js + .cjs per function)",
    "chokidar": "TypeScript output",
    "validator": "Babel output (lib/, es/) beside a UMD bundle",
}
# `.ts` files here are type tests or typings, not the source the JavaScript was compiled from.
NOT_SOURCE_DIRS = frozenset({"node_modules", "test", "tests", "types", "typings", "type-tests"})
TSC_EXPORTS = re.compile(r"^exports\.\w+ = (exports\.\w+ = )*void 0;", re.M)


def has_typescript_sources(pkg_dir: Path) -> bool:
    """A package shipping `.ts` sources (not declarations) publishes compiled JS beside them."""
    for p in pkg_dir.rglob("*.ts"):
        if p.name.endswith((".d.ts", ".d.mts", ".d.cts", ".test-d.ts")):
            continue
        if not NOT_SOURCE_DIRS.intersection(part.lower() for part in p.relative_to(pkg_dir).parts[:-1]):
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pkgs", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--min-bytes", type=int, default=MIN_BYTES)
    ap.add_argument(
        "--title", default="Training corpus of the shipped default model", help="first header line"
    )
    args = ap.parse_args(argv)
    cfg = DataConfig(source="npm", dir=str(args.pkgs))
    size: dict[tuple[str, str, str], int] = defaultdict(int)
    tsc: dict[str, int] = defaultdict(int)
    for rec in iter_npm_records(cfg, lambda reason: None):
        if quality_reason(rec.text, cfg):
            continue
        if TSC_EXPORTS.search(rec.text):
            tsc[rec.package_or_repo] += 1
            continue
        size[(rec.package_or_repo, rec.version, rec.license)] += len(rec.text.encode("utf-8"))
    ts_pkgs = {
        meta_dir.name
        for meta_dir in sorted(args.pkgs.iterdir())
        if meta_dir.is_dir() and has_typescript_sources(meta_dir)
    }
    lines: list[str] = []
    total = 0
    for (name, version, lic), n in sorted(size.items()):
        if (
            n < args.min_bytes
            or name in EXCLUDED
            or name.replace("/", "__") in ts_pkgs
            or name.replace("/", "+") in ts_pkgs
        ):
            continue
        lines.append(f"{name}@{version}  # {lic}  ({n // 1000} KB)")
        total += n
    header = (
        f"# {args.title}: npm packages of hand-written JavaScript whose\n"
        "# own package.json license is exactly MIT, ISC or Apache-2.0 (none reserved for evaluation).\n"
        "# Rebuild: see corpus/README.md. Size = JavaScript kept after the pipeline's filters.\n"
    )
    args.out.write_text(header + "\n".join(lines) + "\n", encoding="utf-8")
    print(
        f"{len(lines)} packages, {total / 1e6:.1f} MB of JavaScript; tsc-output files skipped: {sum(tsc.values())}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
