"""Turn a directory of unpacked candidate npm packages into the pinned list `corpus/packages.txt`.

    python -m corpus.select_packages --pkgs corpus-data/pkgs --out corpus/packages.txt

A candidate is kept when the training pipeline's own npm reader accepts it (license from its
package.json is exactly MIT, ISC or Apache-2.0; not reserved for evaluation) and, after the
pipeline's path and quality filters, it still has at least `--min-bytes` of hand-written
JavaScript that is not compiled TypeScript. Each line is `name@version  # LICENSE  (N KB)`.
Names reserved for evaluation, derived from one, or held out in the dev set are refused
(`corpus.rank_candidates.refusal`) even when they were fetched. A JSON report (`--report`)
records the totals: raw JavaScript bytes in the packages, bytes kept, per license.
This is how the shipped lists were made; rebuilding the corpus needs only the list itself.

    python -m corpus.select_packages --pkgs corpus-data/npm-v2 --out corpus/packages-v2.txt \
        --report corpus/packages-v2-report.json --title "Training corpus v2 (issue 13)"
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from corpus.rank_candidates import devset_names, refusal
from training.data.config import DataConfig
from training.data.decontam import package_name
from training.data.dedup import ExactDedup, NearDedup
from training.data.filters import quality_reason
from training.data.npm import iter_npm_records, package_dirs

MIN_BYTES = 2000  # below this a package adds nothing but a line to the attribution list
# Checked by hand: their JavaScript is TypeScript/Babel output that passes the file-level markers.
EXCLUDED = {
    "date-fns": "TypeScript output (.js + .cjs per function)",
    "chokidar": "TypeScript output",
    "validator": "Babel output (lib/, es/) beside a UMD bundle",
    # v3: copies of code reserved for evaluation under another name
    "karma-jquery": "vendors ~35 full jQuery releases (jquery is reserved)",
    "postman-request": "a fork of request (reserved)",
}
# `.ts` files here are type tests or typings, not the source the JavaScript was compiled from.
NOT_SOURCE_DIRS = frozenset({"node_modules", "test", "tests", "types", "typings", "type-tests"})


def has_typescript_sources(pkg_dir: Path) -> bool:
    """A package shipping `.ts` sources (not declarations) publishes compiled JS beside them."""
    for p in pkg_dir.rglob("*.ts"):
        if p.name.endswith((".d.ts", ".d.mts", ".d.cts", ".test-d.ts")):
            continue
        if not NOT_SOURCE_DIRS.intersection(part.lower() for part in p.relative_to(pkg_dir).parts[:-1]):
            return True
    return False


def folder_package(folder: str) -> str:
    """`@scope+name@1.2.3` (a fetch folder) -> `@scope/name`."""
    return package_name(folder.replace("+", "/", 1))


def raw_js_bytes(pkg_dir: Path, extensions: list[str]) -> int:
    """Every JavaScript file in the package, before any filter (dist, minified, vendored included)."""
    ext = tuple(extensions)
    return sum(p.stat().st_size for p in pkg_dir.rglob("*") if p.name.endswith(ext) and p.is_file())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pkgs", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--min-bytes", type=int, default=MIN_BYTES)
    ap.add_argument("--report", type=Path, help="write the totals (bytes before/after filters, licenses) here")
    ap.add_argument("--dedup", action="store_true", help="also measure the bytes left after exact + near dedup")
    ap.add_argument(
        "--title", default="Training corpus of the shipped default model", help="first header line"
    )
    args = ap.parse_args(argv)
    cfg = DataConfig(source="npm", dir=str(args.pkgs))
    dirs = package_dirs(args.pkgs)
    ts_pkgs = {folder_package(d.name) for d in dirs if has_typescript_sources(d)}
    exact, near = (ExactDedup(), NearDedup(cfg.near_dedup_threshold, cfg.near_dedup_num_perm)) if args.dedup else (
        None, None)
    size: dict[tuple[str, str, str], int] = defaultdict(int)
    unique: dict[str, int] = defaultdict(int)
    dropped: dict[str, int] = defaultdict(int)
    devset = devset_names()
    refused: dict[str, str] = {}
    for rec in iter_npm_records(cfg, lambda reason: None):
        why = refusal(rec.package_or_repo, devset)
        if why:
            refused[rec.package_or_repo] = why
            continue
        reason = quality_reason(rec.text, cfg)  # includes the TypeScript `exports.x = void 0;` marker
        if reason:
            dropped[reason] += 1
            continue
        n = len(rec.text.encode("utf-8"))
        size[(rec.package_or_repo, rec.version, rec.license)] += n
        if exact is None or near is None or rec.package_or_repo in ts_pkgs or rec.package_or_repo in EXCLUDED:
            continue
        if not exact.is_duplicate(rec.text) and not near.is_duplicate(rec.text):
            unique[f"{rec.package_or_repo}@{rec.version}"] += n
    lines: list[str] = []
    total = after_dedup = 0
    by_license: dict[str, int] = defaultdict(int)
    kept_specs: set[str] = set()
    for (name, version, lic), n in sorted(size.items()):
        if n < args.min_bytes or name in EXCLUDED or name in ts_pkgs:
            continue
        lines.append(f"{name}@{version}  # {lic}  ({n // 1000} KB)")
        kept_specs.add(f"{name}@{version}")
        total += n
        after_dedup += unique[f"{name}@{version}"]
        by_license[lic] += 1
    header = (
        f"# {args.title}: npm packages of hand-written JavaScript whose\n"
        "# own package.json license is exactly MIT, ISC or Apache-2.0 (none reserved for evaluation).\n"
        "# Rebuild: see corpus/README.md. Size = JavaScript kept after the pipeline's filters.\n"
    )
    args.out.write_text(header + "\n".join(lines) + "\n", encoding="utf-8")
    if args.report:
        raw = {d.name.replace("+", "/", 1): raw_js_bytes(d, cfg.extensions) for d in dirs}
        report = {
            "package_dirs": len(dirs),
            "packages_kept": len(lines),
            "raw_js_bytes_all_fetched": sum(raw.values()),
            "raw_js_bytes_kept_packages": sum(v for k, v in raw.items() if k in kept_specs),
            "kept_js_bytes_before_dedup": total,
            "kept_js_bytes_after_dedup": after_dedup if args.dedup else None,
            "by_license": dict(sorted(by_license.items())),
            "files_dropped_by_quality_filters": dict(sorted(dropped.items())),
            "typescript_source_packages_skipped": len(ts_pkgs),
            "refused": dict(sorted(refused.items())),
        }
        args.report.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(
        f"{len(lines)} packages, {total / 1e6:.1f} MB of JavaScript; tsc-output files skipped: {dropped.get('tsc_output', 0)}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
