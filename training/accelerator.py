"""The accelerator kit's command line: plan a remote run, run its device side, collect, finish, rehearse.

    python -m training.accelerator plan scratch-js-8x448 --tokens corpus-data/tokens-v3 [--budget-s 900] [--dry-run]
    python -m training.accelerator device receive|train|send-back PLAN ...   (on the remote machine)
    python -m training.accelerator collect PLAN --from FOLDER [--from FOLDER ...]
    python -m training.accelerator finish PLAN --ship-to DEST [--baseline server/models/default]
    python -m training.accelerator rehearse RECIPE --tokens STEM --ship-to SCRATCH ...   (the whole run, here)

`plan` bundles the token file (and the starting weights when they do not travel with the
repository) into parts that fit beside the working tree, writes corpus-data/accel/NAME/plan.json and
prints every `run` call; `--dry-run` prints the same plan from estimated sizes and writes nothing. A
shape whose shipped model dir would weigh more than `--ship-cap-mb` (60 MB) is refused first.
By default a run continues the shipped model (`--init auto`) when it has the recipe's shape.
docs/accelerator.md is the walk-through.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

from training.kit.plan import MIB, Limits, Plan, PlanError, Timing
from training.kit.sizing import SHIP_CAP_BYTES

STARTED = time.time()  # the device command's clock starts with the process
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = "server/models/default"
PLAN_RESERVE = 64 * 1024  # plan.json travels beside each part
log = logging.getLogger("training.accelerator")


def _rel(path: Path, root: Path) -> str | None:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def build_plan(args: argparse.Namespace, root: Path, *, python: str = "python3", store: str = "",
               limits: Limits | None = None, timing: Timing | None = None) -> Plan:
    """Everything `plan` does: sizes, the bundle (unless a dry run), the calls; plan.json written."""
    from training.config import apply_overrides, load_recipe
    from training.data.tokenfile import open_tokens, paths
    from training.kit.archive import write_bundle
    from training.kit.plan import PLAN_FILE, make_plan, travelling_bytes, travels
    from training.kit.sizing import check_ship_cap, estimate_payload, model_info, same_shape

    limits, timing = limits or Limits(device_s=args.budget_s), timing or Timing()
    cfg = apply_overrides(load_recipe(args.recipe), list(args.set))
    stem = Path(args.tokens)
    bin_path, json_path = paths(stem if stem.is_absolute() else root / stem)
    name = args.name or f"{cfg.name}-{bin_path.stem}"
    local = root / Plan.local_dir_for(name)
    token_file = open_tokens(bin_path) if json_path.is_file() else None  # the sidecar is parsed once
    n_docs = len(token_file) if token_file is not None else (args.expect_tokens or 0) // 1040
    model = model_info(cfg, n_docs)
    check_ship_cap(model["ship_bytes"], model["weights_bytes"], round(args.ship_cap_mb * 1e6), model["shape"])
    files: list[tuple[Path, str]] = []
    tokens_rel = _rel(bin_path, root)
    tokens = tokens_rel[: -len(".bin")] if tokens_rel else f"{Plan.local_dir_for(name)}/data/{bin_path.stem}"
    files += [(bin_path, f"{tokens}.bin"), (json_path, f"{tokens}.json")]
    recipe = args.recipe
    if Path(args.recipe).suffix == ".toml" and _rel(Path(args.recipe), root) is None:
        recipe = f"{Plan.local_dir_for(name)}/recipe.toml"  # a recipe outside the tree travels in the bundle
        files.append((Path(args.recipe), recipe))
    init = None
    if args.init != "none":
        init_dir = root / DEFAULT_MODEL if args.init == "auto" else Path(args.init)
        if same_shape(init_dir, model["config"]):
            init = _rel(init_dir, root)
            if init is None or not travels(root, init):
                init = f"{Plan.local_dir_for(name)}/init"
                files += [(f, f"{init}/{f.name}") for f in sorted(init_dir.iterdir())
                          if f.is_file() and not f.name.startswith(("data_manifest", "."))]
        elif args.init != "auto":
            raise PlanError(f"{init_dir} does not hold weights of the shape {model['shape']}: cannot continue them")
    if token_file is not None:  # refused here, not on the device: no reserved or dev-set package goes up
        from training.ship import check_manifest_rows, devset_packages

        check_manifest_rows(token_file.meta.get("documents") or [], devset_packages())
    tree = travelling_bytes(root)
    room = limits.upload_bytes - tree - timing.upload_margin - PLAN_RESERVE
    if room < timing.min_part_bytes:
        raise PlanError(f"the working tree ({tree / MIB:.1f} MiB) leaves no room under the {limits.upload_bytes / MIB:.0f} "
                        "MiB a call takes: shrink what is tracked")
    if args.dry_run:
        est = estimate_payload(bin_path, json_path, preset=args.preset, tokens=args.expect_tokens)
        extra = sum(f.stat().st_size for f, _ in files[2:])
        archive = est["archive_bytes"] + extra
        n = math.ceil(archive / room)
        parts = [{"name": f"part-{i:02d}", "bytes": min(room, archive - (i - 1) * room), "sha256": ""}
                 for i in range(1, n + 1)]
        payload = {"parts": parts, "files": [], "archive_bytes": archive, "archive_sha256": "", "preset": args.preset,
                   "tokens": est["tokens"], "raw_bytes": est["raw_bytes"] + extra, "measured_on": est["measured_on"]}
    else:
        from dataclasses import asdict

        if token_file is None:
            raise FileNotFoundError(f"{json_path} missing: the token file was never finished (run `pack`)")
        index = write_bundle(files, local, part_bytes=room, preset=args.preset)
        payload = {**asdict(index), "tokens": int(token_file.meta["n_tokens"]), "raw_bytes": sum(f.stat().st_size for f, _ in files)}
    plan = make_plan(name=name, recipe=recipe, overrides=list(args.set), tokens=tokens, init=init,
                     tokens_here=str(bin_path.with_suffix("")), recipe_here=args.recipe, payload=payload, model=model,
                     tree_bytes=tree, upload_part_bytes=room, limits=limits, timing=timing, python=python,
                     store=store, estimated=args.dry_run)
    if not args.dry_run:
        (local / PLAN_FILE).write_text(plan.to_json(), encoding="utf-8")
    return plan


def _plan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("recipe", help="recipe name (training/recipes) or path to a TOML")
    p.add_argument("--tokens", required=True, help="the packed token file stem (e.g. corpus-data/tokens-v3)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key")
    p.add_argument("--name", default="", help="the run's name (default: RECIPE-TOKENS)")
    p.add_argument("--init", default="auto", help="auto: continue the shipped model when it has the recipe's shape; "
                   "none: from scratch; DIR: continue DIR (must have the shape)")
    p.add_argument("--budget-s", type=int, default=900, help="device seconds left (the tool's status: budget_left_s)")
    p.add_argument("--preset", type=int, default=9, help="xz preset of the bundle (9: smallest, slowest here)")
    p.add_argument("--expect-tokens", type=int, default=None,
                   help="plan from this many tokens when the token file is not here (with --dry-run)")
    p.add_argument("--dry-run", action="store_true", help="print the plan from estimated sizes; write nothing")
    p.add_argument("--ship-cap-mb", type=float, default=SHIP_CAP_BYTES / 1e6,
                   help="refuse a shape whose shipped model dir (fp16 weights, manifest as xz, tokenizer, card, "
                   "records) would weigh more than this many MB (10^6 bytes); 0: no cap, for a run that will not ship")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m training.accelerator", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    _plan_args(sub.add_parser("plan", help="bundle the corpus into parts and print every call of the run"))
    dev = sub.add_parser("device", help="the device side of a call (runs on the remote machine)")
    dev.add_argument("step", choices=("receive", "train", "send-back"))
    dev.add_argument("plan", type=Path)
    dev.add_argument("--stop-after", type=float, default=0.0, help="train: seconds after the command's start")
    dev.add_argument("--parts", default="1-4", help="send-back: which parts (A-B)")
    dev.add_argument("--out", default=None, help="the folder that goes back (default $OUT)")
    col = sub.add_parser("collect", help="keep the checked parts of replies here")
    col.add_argument("plan", type=Path)
    col.add_argument("--from", dest="sources", type=Path, action="append", default=[], help="a reply's files folder")
    fin = sub.add_parser("finish", help="assemble the returned model; ship and evaluate it")
    fin.add_argument("plan", type=Path)
    fin.add_argument("--ship-to", type=Path, default=None, help="ship the model here (training.ship, atomic)")
    fin.add_argument("--baseline", type=Path, default=REPO_ROOT / DEFAULT_MODEL, help="model to compare against")
    fin.add_argument("--no-eval", action="store_true")
    reh = sub.add_parser("rehearse", help="the whole run on this machine: plan, every call, collect, finish")
    _plan_args(reh)
    reh.add_argument("--workdir", type=Path, required=True, help="stands for the device (working copy, store, replies)")
    reh.add_argument("--ship-to", type=Path, required=True, help="a scratch dir to ship to (never the default model)")
    reh.add_argument("--cut-after", type=int, default=None, help="stop after this many calls (a lost machine)")
    reh.add_argument("--upload-mib", type=float, default=64.0, help="the per-call upload limit to rehearse with")
    return ap


def _device(args: argparse.Namespace) -> int:
    from training.kit import device

    out = device.out_dir(args.out)
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "device-log.txt")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    plan = Plan.read(args.plan)
    if args.step == "receive":
        state = device.receive(plan)
        print(json.dumps(state), file=sys.stderr)
    elif args.step == "train":
        device.train(plan, stop_after=args.stop_after, out=out, started=STARTED)
    else:
        first, _, last = args.parts.partition("-")
        device.send_back(plan, first=int(first), last=int(last or first), out=out)
    return 0


def _rehearse(args: argparse.Namespace, root: Path) -> int:
    from training.kit.collect import collect, finish
    from training.kit.plan import render
    from training.kit.rehearse import run_calls

    work = args.workdir.resolve()
    limits = Limits(device_s=args.budget_s, upload_bytes=int(args.upload_mib * MIB))
    plan = build_plan(args, root, python=sys.executable, store=str(work / "store"), limits=limits)
    print(render(plan))
    notes: list[str] = []
    folders = run_calls(plan, root=root, device=work / "device", returned=work / "returned", cut_after=args.cut_after,
                        log=notes)
    for note in notes:
        print(note)
    backs = [f for f in folders if (f / "index.json").is_file()]
    print(json.dumps(collect(plan, backs, root) if backs else {}, indent=1))
    report = finish(plan, root, ship_to=args.ship_to, baseline=REPO_ROOT / DEFAULT_MODEL)
    print(json.dumps(report, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    from training.config import ConfigError
    from training.data.decontam import ContaminationError
    from training.data.records import DataError
    from training.kit.archive import BundleError
    from training.ship import ShipError

    root = Path.cwd()
    try:
        if args.cmd == "plan":
            from training.kit.plan import render

            print(render(build_plan(args, root)))
        elif args.cmd == "device":
            return _device(args)
        elif args.cmd == "collect":
            from training.kit.collect import collect

            print(json.dumps(collect(Plan.read(args.plan), args.sources, root), indent=1))
        elif args.cmd == "finish":
            from training.kit.collect import finish

            report = finish(Plan.read(args.plan), root, ship_to=args.ship_to, baseline=args.baseline,
                            evaluate=not args.no_eval)
            print(json.dumps(report, indent=1))
        else:
            return _rehearse(args, root)
    except (PlanError, BundleError, ShipError, ContaminationError, ConfigError, DataError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3 if isinstance(exc, BundleError) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
