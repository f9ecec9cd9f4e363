"""Here, after the calls: the returned parts are checked, joined into a model dir, shipped, evaluated.

`collect` copies the parts of each reply (the folder the device tool puts them in) into
RUN_DIR/incoming/KEY/, KEY being the bundle's sha256 (parts of two bundles never mix: a later
checkpoint is a new bundle). `assemble_model` turns a complete bundle into RUN_DIR/model only when
every part, the stream and every file check; an incomplete one raises `BundleError` and changes
nothing. `finish` ships that dir with `training.ship` (itself atomic) and measures the held-out
loss of the new model and of a baseline on the same blocks of the same token file.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from training.kit.archive import BundleError, Index, check_part, extract_bundle
from training.kit.plan import Plan

log = logging.getLogger("training.kit.collect")


def _incoming(plan: Plan, root: Path) -> Path:
    return root / plan.run_dir / "incoming"


def collect(plan: Plan, sources: list[Path], root: Path) -> dict[str, Any]:
    """Copy the checked parts of each source folder into the run's incoming dir; report the state."""
    for src in sources:
        index_path = src / "index.json"
        if not index_path.is_file():
            raise BundleError(f"{src} holds no index.json: not a reply of a training or send-back call")
        index = Index.read(index_path)
        dest = _incoming(plan, root) / index.key
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "index.json").write_text(index.to_json(), encoding="utf-8")
        for part in index.parts:
            path = src / part.name
            if not path.is_file():
                continue
            check_part(path, part)  # a damaged part is refused here, before it is kept
            tmp = dest / f".{part.name}.tmp"
            shutil.copyfile(path, tmp)
            tmp.replace(dest / part.name)
    return status(plan, root)


def status(plan: Plan, root: Path) -> dict[str, Any]:
    """Per bundle: which parts are here and which are missing."""
    bundles: dict[str, Any] = {}
    incoming = _incoming(plan, root)
    for folder in sorted(incoming.iterdir()) if incoming.is_dir() else []:
        if not (folder / "index.json").is_file():
            continue
        index = Index.read(folder / "index.json")
        here = [p.name for p in index.parts
                if (folder / p.name).is_file() and (folder / p.name).stat().st_size == p.bytes]
        bundles[index.key] = {"parts": len(index.parts), "here": here,
                              "missing": [p.name for p in index.parts if p.name not in here],
                              "steps": index.extra.get("metrics", {}).get("steps"),
                              "final": index.extra.get("metrics", {}).get("final"),
                              "mtime": (folder / "index.json").stat().st_mtime}
    return bundles


def assemble_model(plan: Plan, root: Path) -> Path:
    """RUN_DIR/model from the newest complete bundle; raises BundleError (and changes nothing) if none is."""
    bundles = status(plan, root)
    complete = [k for k, b in bundles.items() if not b["missing"]]
    if not complete:
        missing = {k: b["missing"] for k, b in bundles.items()}
        raise BundleError(f"no complete model has come back ({missing or 'no parts at all'}): "
                          "fetch the missing parts with the plan's send-back calls; nothing was changed")
    key = max(complete, key=lambda k: (bool(bundles[k]["final"]), bundles[k]["steps"] or 0, bundles[k]["mtime"]))
    folder = _incoming(plan, root) / key
    index = Index.read(folder / "index.json")
    run_dir = root / plan.run_dir
    fresh = run_dir / f".model-{key}"
    shutil.rmtree(fresh, ignore_errors=True)
    extract_bundle(folder, index, fresh, staging=run_dir / f".incoming-{key}")
    target = run_dir / "model"
    old = run_dir / ".model-old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    fresh.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    log.info("model of bundle %s (step %s) checked and assembled in %s", key, bundles[key]["steps"], target)
    return target


def held_out_loss(model_dir: Path, plan: Plan, summary: Path) -> dict[str, Any]:
    """`training.evaluate perplexity` on the plan's token file, held-out split, the plan's recipe."""
    from training.config import RECIPES_DIR
    from training.evaluate import main as evaluate

    here = plan.recipe_here
    recipe = here if here.endswith(".toml") else str(RECIPES_DIR / f"{here}.toml")
    data_overrides = [o for o in plan.overrides if o.startswith("data.")]
    args = ["perplexity", "--model", str(model_dir), "--recipe", recipe, "--device", "auto",
            *[x for o in [*data_overrides, f"data.tokens={plan.tokens_here}"] for x in ("--set", o)],
            "--split", "eval", "--summary", str(summary)]
    if evaluate(args) != 0:
        raise RuntimeError(f"evaluation of {model_dir} failed")
    result: dict[str, Any] = json.loads(summary.read_text(encoding="utf-8"))
    return result


def finish(plan: Plan, root: Path, *, ship_to: Path | None, baseline: Path | None,
           evaluate: bool = True) -> dict[str, Any]:
    """Assemble the returned model, ship it to `ship_to` (if given), evaluate it against `baseline`."""
    model_dir = assemble_model(plan, root)
    run_dir = root / plan.run_dir
    report: dict[str, Any] = {"model": str(model_dir),
                              "metrics": json.loads((model_dir / "metrics.json").read_text(encoding="utf-8"))}
    if ship_to is not None:
        from training.ship import ship

        report["ship"] = ship(model_dir, ship_to)  # raises ShipError and leaves ship_to as it was
        report["shipped_to"] = str(ship_to)
    if evaluate:
        scored = ship_to if ship_to is not None else model_dir
        report["eval"] = {"new": held_out_loss(scored, plan, run_dir / "eval-new.json")}
        if baseline is not None and baseline.is_dir():
            report["eval"]["baseline"] = held_out_loss(baseline, plan, run_dir / "eval-baseline.json")
    (run_dir / "finish.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return report
