"""Ship a trained model dir as the server's default model: fp16 weights, checked, written atomically.

    python -m training.ship RUN_DIR server/models/default [--dtype float16|bfloat16|float32]
        [--keep-previous-as stage3]

What it does, in order, before anything in DEST is touched:
- loads RUN_DIR (safetensors only, no remote code) in float32 and stores its floating tensors in
  `--dtype` (default float16: half the bytes in the repository and its history; the server and
  `training.finetune` load it back explicitly as float32, which is faster than fp16 on a CPU);
- checks that fp16 kept the model: the largest absolute weight fits fp16, and the fp16 copy's
  logits on a probe text agree with float32's (same greedy tokens);
- checks the data manifest beside the weights: no package reserved for evaluation, none of the
  dev-set packages (`corpus/devset-packages.txt`);
- copies the tokenizer, the run's configuration, metrics, logs, loss plot and manifest, and writes
  `ATTRIBUTION.md` from the shipped manifest: every package, version, license and file count.

With `--stage LABEL` the shipped manifest lists every stage's files: DEST's rows are kept, the
run's rows are labelled `"stage": LABEL`, and a file both list keeps one row whose label names
both (`"4,5"`): a model continued across stages and corpora says everything it trained on.

Then DEST is replaced in one step per file with `training.publish` (markers last: a reader sees
the old model or the new one, never a mix). `--keep-previous-as NAME` first renames DEST's own
run records (`metrics.json`, `log_history.json`, `loss.png`, `training_config.json`) to
`NAME_*` so the model card keeps the history of stages; the previous weights are not kept (git
history has them).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from training.publish import publish

log = logging.getLogger("training.ship")

DTYPES = ("float16", "bfloat16", "float32")
FP16_MAX = 65504.0
# Copied when present; the weights and tokenizer are written by save_pretrained.
RECORDS = (
    "training_config.json", "recipe.toml", "metrics.json", "log_history.json", "loss.png",
    "data_manifest_summary.json", "generation_config.json",
)
# The shipped model dir, all of it (weights, tokenizer, card, records, manifest), travels in every
# clone and every .vsix: at most this many bytes.
SHIP_LIMIT_BYTES = 60_000_000
STAGE_RECORDS = ("metrics.json", "log_history.json", "loss.png", "training_config.json")
PROBE = "function add(a, b) {\n  return a + b;\n}\n\nmodule.exports = { add };\n"
REPO_ROOT = Path(__file__).resolve().parent.parent


class ShipError(RuntimeError):
    """The model cannot be shipped as asked; DEST is left as it was."""


def devset_packages(path: Path = REPO_ROOT / "corpus" / "devset-packages.txt") -> set[str]:
    """Package names of the held-out dev set."""
    from training.data.decontam import package_name
    from training.data.npm import read_package_list

    return {package_name(spec) for spec in read_package_list(path)} if path.is_file() else set()


def check_manifest_rows(rows: list[dict[str, Any]], devset: set[str]) -> None:
    from training.data.decontam import check_manifest

    check_manifest(rows)  # raises on a package reserved for evaluation
    leaked = sorted({str(r.get("package")) for r in rows} & devset)
    if leaked:
        raise ShipError(f"the training manifest holds dev-set packages: {', '.join(leaked[:5])}")


def convert(src: Path, stage: Path, dtype_name: str) -> dict[str, Any]:
    """Write src's model in `dtype_name` + its tokenizer into `stage`; returns what was checked."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(src), trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(
        str(src), use_safetensors=True, trust_remote_code=False, dtype=torch.float32
    ).eval()
    biggest = max(float(p.detach().abs().max()) for p in model.parameters())
    if dtype_name == "float16" and biggest > FP16_MAX:
        raise ShipError(f"a weight of magnitude {biggest:.3g} does not fit float16: use --dtype bfloat16")
    ids = torch.tensor([tokenizer(PROBE, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        ref = model(ids).logits
        model.to(getattr(torch, dtype_name))  # in place: the weights are rounded to the stored dtype
        back = model.to(torch.float32)(ids).logits  # computed as the server does: stored low, run in fp32
    agree = float((ref.argmax(-1) == back.argmax(-1)).float().mean())
    max_diff = float((ref - back).abs().max())
    if agree < 0.95:
        raise ShipError(f"{dtype_name} changes the model's greedy tokens on the probe ({agree:.0%} agree)")
    model = model.to(getattr(torch, dtype_name))
    model.save_pretrained(stage, safe_serialization=True)
    tokenizer.save_pretrained(stage)
    return {"dtype": dtype_name, "max_abs_weight": biggest, "probe_greedy_agreement": agree,
            "probe_max_logit_diff": max_diff}


def _file_key(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(row.get(k, "")) for k in ("source", "package", "repo", "version", "path", "sha256"))


def merge_stages(previous: list[dict[str, Any]], run: list[dict[str, Any]], stage: str) -> list[dict[str, Any]]:
    """DEST's manifest rows, then the run's labelled `stage`; a file in both keeps DEST's row with
    `stage` added to its label."""
    merged = [dict(r) for r in previous]
    at: dict[tuple[str, ...], int] = {}
    for i, r in enumerate(merged):  # a file listed twice (two corpora held it): the first row takes the label
        at.setdefault(_file_key(r), i)
    for row in run:
        found = at.get(_file_key(row))
        if found is None:
            at[_file_key(row)] = len(merged)
            merged.append({**row, "stage": stage})
            continue
        labels = str(merged[found].get("stage", "")).split(",") if merged[found].get("stage") else []
        if stage not in labels:
            merged[found]["stage"] = ",".join([*labels, stage])
    return merged


ATTRIBUTION_FILE = "ATTRIBUTION.md"


def attribution(rows: list[dict[str, Any]]) -> str:
    """The attribution list of a manifest: one line per package version, with its license and files."""
    counts: dict[tuple[str, str, str], int] = {}
    for r in rows:
        key = (str(r.get("package") or r.get("repo") or ""), str(r.get("version", "")), str(r.get("license", "")))
        counts[key] = counts.get(key, 0) + 1
    lines = [
        "# Training data: packages and licenses",
        "",
        "The shipped weights were trained on the source code of the packages below. Each package is",
        "copyright its authors and was used under the license named in its own `package.json` (every",
        "license named is MIT, ISC or Apache-2.0, all permitting this use with attribution). The files,",
        "with their sha256, are listed in `data_manifest.jsonl.xz`. Written by `python -m training.ship`.",
        "",
        f"{len(counts)} package versions, {len(rows)} files.",
        "",
        "| package | version | license | files |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {p} | {v} | {lic} | {n} |" for (p, v, lic), n in sorted(counts.items())]
    return "\n".join(lines) + "\n"


def check_size(stage: Path, dest: Path) -> None:
    """Refuse a model dir over SHIP_LIMIT_BYTES: what `stage` holds plus what DEST keeps of its own
    (the model card, earlier stages' records)."""
    from training.data.manifest import MANIFEST_FILE
    from training.publish import STALE_PATTERNS

    staged = {f.name: f.stat().st_size for f in stage.iterdir() if f.is_file()}
    replaced = {f.name for pattern in STALE_PATTERNS for f in dest.glob(pattern)} | {MANIFEST_FILE}
    kept = sum(f.stat().st_size for f in dest.iterdir() if f.is_file() and f.name not in {*staged, *replaced})
    total = sum(staged.values()) + kept
    if total > SHIP_LIMIT_BYTES:
        weights = sum(size for name, size in staged.items() if name.endswith(".safetensors"))
        raise ShipError(
            f"the shipped model would take {total / 1e6:.1f} MB ({weights / 1e6:.1f} MB of weights); "
            f"it may take {SHIP_LIMIT_BYTES / 1e6:.0f} MB in all: train a smaller shape (docs/model.md)"
        )


def ship(
    src: Path, dest: Path, *, dtype: str = "float16", keep_previous_as: str = "", stage_label: str = ""
) -> dict[str, Any]:
    from training.data.manifest import (
        MANIFEST_FILE,
        SHIPPED_MANIFEST_FILE,
        manifest_path,
        read_manifest,
        write_manifest,
    )

    if not (src / "config.json").is_file():
        raise ShipError(f"{src}: not a model dir (no config.json)")
    found = manifest_path(src)
    if found is None:
        raise ShipError(f"{src}: no {MANIFEST_FILE}: a shipped model needs its training data manifest")
    rows = read_manifest(found)
    if stage_label:
        kept = manifest_path(dest)
        rows = merge_stages(read_manifest(kept) if kept is not None else [], rows, stage_label)
    check_manifest_rows(rows, devset_packages())
    dest.mkdir(parents=True, exist_ok=True)
    stage = dest.parent / f".tmp-ship-{dest.name}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        report = convert(src, stage, dtype)
        for name in RECORDS:
            if (src / name).is_file():
                shutil.copyfile(src / name, stage / name)
        write_manifest(stage / SHIPPED_MANIFEST_FILE, rows)
        (stage / ATTRIBUTION_FILE).write_text(attribution(rows), encoding="utf-8")
        for f in stage.iterdir():
            f.chmod(0o644)  # safetensors writes 0600: the shipped files are read by every user
        check_size(stage, dest)
        if keep_previous_as:
            for name in STAGE_RECORDS:
                if (dest / name).is_file():
                    (dest / name).rename(dest / f"{keep_previous_as}_{name}")
        publish(stage, dest)
        (dest / MANIFEST_FILE).unlink(missing_ok=True)  # superseded by the xz rows
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return report


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    ap = argparse.ArgumentParser(prog="python -m training.ship", description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="a model dir written by training.finetune")
    ap.add_argument("dest", type=Path, help="where to ship it (server/models/default)")
    ap.add_argument("--dtype", choices=DTYPES, default="float16", help="how the weights are stored")
    ap.add_argument("--keep-previous-as", default="", metavar="NAME",
                    help="rename DEST's run records to NAME_* first (the card's stage history)")
    ap.add_argument("--stage", default="", metavar="LABEL",
                    help="keep DEST's manifest rows and add the run's labelled LABEL (a model trained in stages)")
    args = ap.parse_args(argv)
    from training.data.decontam import ContaminationError

    try:
        report = ship(args.src, args.dest, dtype=args.dtype, keep_previous_as=args.keep_previous_as,
                      stage_label=args.stage)
    except (ShipError, ContaminationError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log.info("shipped %s -> %s: %s", args.src, args.dest, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
