"""What runs on the accelerator machine, one subcommand per kind of call.

- `receive PLAN`: the parts carried with this call are checked and moved into the plan's store,
  outside the synced working tree, where they stay while the machine stays warm.
- `train PLAN --stop-after S`: receive, then join and check the bundle into the working copy, then
  `training.pretrain` until S seconds after this command started (the set-up comes out of the
  training time, not out of the command limit), checkpoints published every 2 minutes, weights
  saved in fp16; then the run dir is bundled and the first parts go back in $OUT.
- `send-back PLAN --parts A-B`: parts A..B of that bundle in $OUT (bundling the last published
  checkpoint first when the training call was cut off before it could).

Each prints what the store holds, so a reader of the reply knows whether a machine was lost.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from training.kit.archive import BundleError, Entry, Index, Part, check_part, extract_bundle, write_bundle
from training.kit.plan import Plan

log = logging.getLogger("training.kit.device")
RETURN_PRESET = 0  # xz's fastest: the fp16 weights barely shrink; the manifest does, 5x
SAVE_MINUTES = 2.0  # a checkpoint to bring back if the call is cut off
EVAL_MINUTES = 1.0  # the held-out loss on the curve


def _parts(plan: Plan) -> list[Part]:
    return [Part(p["name"], int(p["bytes"]), str(p["sha256"])) for p in plan.payload["parts"]]


def receive(plan: Plan) -> dict[str, list[str]]:
    """Move the carried parts that check into the store; report what the store holds."""
    store = Path(plan.store)
    store.mkdir(parents=True, exist_ok=True)
    for part in _parts(plan):
        carried = Path(plan.local_dir) / part.name
        if not carried.is_file():
            continue
        try:
            check_part(carried, part)
        except BundleError as exc:
            log.error("refused: %s", exc)
            carried.unlink()
            continue
        shutil.move(str(carried), str(store / part.name))
        log.info("kept %s (%d bytes) in %s", part.name, part.bytes, store)
    held: list[str] = []
    missing: list[str] = []
    for part in _parts(plan):
        path = store / part.name
        ok = path.is_file() and path.stat().st_size == part.bytes
        (held if ok else missing).append(part.name)
    log.info("store %s holds %s; missing %s", store, held or "nothing", missing or "nothing")
    return {"held": held, "missing": missing}


def assemble(plan: Plan) -> None:
    """Join, check and extract the bundle into the working copy (once: a marker records it)."""
    index = Index(parts=_parts(plan), files=[Entry(**f) for f in plan.payload["files"]],
                  archive_bytes=int(plan.payload["archive_bytes"]), archive_sha256=str(plan.payload["archive_sha256"]),
                  preset=int(plan.payload["preset"]))
    marker = Path(plan.store) / f"extracted-{index.key}"
    if marker.is_file() and all(Path(e.path).is_file() and Path(e.path).stat().st_size == e.bytes
                                for e in index.files):
        log.info("bundle %s already extracted", index.key)
        return
    t = time.perf_counter()
    extract_bundle(Path(plan.store), index, Path("."))
    marker.write_text("ok\n")
    log.info("bundle %s joined, checked and extracted in %.1f s: %s", index.key, time.perf_counter() - t,
             ", ".join(e.path for e in index.files))


def run_config(plan: Plan) -> Any:
    from training.config import apply_overrides, load_recipe, validate

    cfg = load_recipe(plan.recipe)
    init = ["model.from_scratch=false", f"model.name_or_path={plan.init}"] if plan.init else []
    cfg = apply_overrides(cfg, [*plan.overrides, *init, f"data.tokens={plan.tokens}", f"train.output_dir={plan.run_dir}"])
    return validate(cfg)


def train(plan: Plan, *, stop_after: float, out: Path, started: float) -> dict[str, Any]:
    """The training call: receive, assemble, train until `started + stop_after`, first parts back."""
    state = receive(plan)
    if state["missing"]:
        raise BundleError(f"the store lacks {', '.join(state['missing'])}: send those parts again (the machine was "
                          "given back between calls, or a part was refused)")
    assemble(plan)
    from training.pretrain import run

    cfg = run_config(plan)
    try:
        metrics = run(cfg, minutes=0.0, until=started + stop_after, save_minutes=SAVE_MINUTES,
                      eval_minutes=EVAL_MINUTES, save_dtype="float16")
        log.info("trained: %s", json.dumps(metrics))
        fpt = plan.model.get("flops_per_token")
        if fpt and metrics.get("tokens_per_second"):  # what the next plan's throughput guess should be
            log.info("achieved %.0f TFLOP/s of training FLOPs (%.2fx the plan's guess)",
                     metrics["tokens_per_second"] * fpt / 1e12,
                     metrics["tokens_per_second"] * fpt / plan.model["flops_per_s"])
    finally:  # whatever was published last goes back, also after an error in the loop
        if (Path(plan.run_dir) / "config.json").is_file():
            send_back(plan, first=1, last=_per_call(plan), out=out)
    return metrics


def _per_call(plan: Plan) -> int:
    return int(plan.budget["return_parts_per_call"])


def _published(run_dir: Path) -> list[Path]:
    """The last published model and its records (no staging, manifest cache or checkpoints)."""
    return sorted(p for p in run_dir.iterdir() if p.is_file() and not p.name.startswith("."))


def _fingerprint(files: list[Path]) -> str:
    return json.dumps([[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files])


def bundle_run(plan: Plan) -> tuple[Path, Index]:
    """The run dir's published files as a return bundle in the store (reused while they are unchanged)."""
    run_dir = Path(plan.run_dir)
    files = _published(run_dir)
    if not any(f.name == "config.json" for f in files):
        raise BundleError(f"{run_dir} holds no published model yet (training never reached a checkpoint)")
    folder = Path(plan.store) / "back"
    index_path = folder / "index.json"
    print_ = _fingerprint(files)
    if index_path.is_file():
        index = Index.read(index_path)
        if index.extra.get("fingerprint") == print_:
            return folder, index
    metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else {}
    t = time.perf_counter()
    index = write_bundle([(f, f.name) for f in files], folder, part_bytes=plan.timing.return_part_bytes,
                         preset=RETURN_PRESET, prefix="back-",
                         extra={"plan": plan.name, "fingerprint": print_, "metrics": metrics})
    log.info("run bundled in %.1f s: %d parts, %d bytes, sha256 %s", time.perf_counter() - t, len(index.parts),
             index.archive_bytes, index.archive_sha256)
    return folder, index


def send_back(plan: Plan, *, first: int, last: int, out: Path) -> list[str]:
    """Copy parts first..last of the return bundle (and its index) into `out`."""
    folder, index = bundle_run(plan)
    out.mkdir(parents=True, exist_ok=True)
    if first > len(index.parts):
        log.info("all %d parts of bundle %s were sent already: skip the plan's remaining send-back calls",
                 len(index.parts), index.key)
    sent = []
    for part in index.parts[first - 1 : last]:
        shutil.copyfile(folder / part.name, out / part.name)
        sent.append(part.name)
    shutil.copyfile(folder / "index.json", out / "index.json")
    left = [p.name for p in index.parts[last:]]
    log.info("sent %s of %d parts (bundle %s); still on the device: %s", ", ".join(sent) or "none",
             len(index.parts), index.key, ", ".join(left) or "nothing")
    return sent


def out_dir(explicit: str | None) -> Path:
    value = explicit or os.environ.get("OUT")
    if not value:
        raise BundleError("no $OUT: pass --out DIR (the files that go back)")
    return Path(value)

