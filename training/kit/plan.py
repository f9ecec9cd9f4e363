"""The plan of a training run on a remote accelerator: what crosses in which call, how long the model
trains, how it comes back.

Every limit of the remote machine lives in `Limits` (from the device tool's documentation) and every
guess about time in `Timing` (defaults from stage 6: 9 min 15 s of device time for 8 min of training).
`make_plan` turns them, the size of what travels with the repository and the bundle's parts into a
list of `run` calls; `render` prints it. The plan is written as JSON beside the parts and travels
with every call: the device side reads its paths and hashes from it.
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MIB = 1 << 20
PLAN_FILE = "plan.json"


@dataclass
class Limits:
    upload_bytes: int = 64 * MIB  # the working tree plus the carried paths, per call
    carry_paths: int = 8
    return_files: int = 8  # files under $OUT per call
    return_file_bytes: int = 16 * MIB
    return_bytes: int = 64 * MIB
    command_s: int = 600  # one command's run
    device_s: int = 900  # the whole device time, start, idle waits and transfers included
    warm_s: int = 30  # a machine idle this long is given back, with every file on it


@dataclass
class Timing:
    start_s: float = 90.0  # a bare machine's start, paid once (stage 6: ~75 s start and transfers)
    call_s: float = 25.0  # each call's transfers and process start
    gap_s: float = 15.0  # between calls: the reply is read and the next call sent (the machine is held)
    setup_s: float = 20.0  # join + extract the bundle, load torch, build the model
    setup_s_per_mtoken: float = 0.25  # extraction, blocks and FIM per million tokens (blocks alone: 0.15 s here)
    finish_s: float = 45.0  # final eval, fp16 save and the return bundle after the deadline
    safety_s: float = 60.0  # device time never planned
    upload_margin: int = 2 * MIB  # the tree may grow between planning and the call
    min_part_bytes: int = MIB  # below this a run would be all transfers
    return_part_bytes: int = 15 * MIB + MIB // 2  # 4 parts + index + log stay under 64 MiB


@dataclass
class Call:
    n: int
    purpose: str
    command: str
    carry: list[str]
    timeout_s: int
    returns: list[str] = field(default_factory=list)
    upload_bytes: int = 0


@dataclass
class Plan:
    name: str
    recipe: str
    overrides: list[str]
    tokens: str  # the token file stem on the device, relative to its working copy
    init: str | None  # continue these weights (same shape), or None: from scratch
    tokens_here: str  # the token file stem here (for the evaluation after training)
    recipe_here: str  # the recipe here (a name, or a path that may differ from the device's)
    local_dir: str  # where the parts and this plan live here (ignored by git, carried)
    run_dir: str  # the training output, on the device and here
    store: str  # on the device: parts are kept here between calls (outside the synced tree)
    python: str
    tree_bytes: int
    upload_part_bytes: int
    payload: dict[str, Any]  # the bundle index (parts, files, sizes), or an estimate on a dry run
    model: dict[str, Any]  # parameters, shape, expected return bytes and parts
    budget: dict[str, Any]  # the device-time budget, line by line
    calls: list[Call]
    limits: Limits
    timing: Timing
    estimated: bool = False  # sizes are estimates (no token file or no bundle yet)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"

    @classmethod
    def read(cls, path: Path) -> Plan:
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw["calls"] = [Call(**c) for c in raw["calls"]]
        raw["limits"] = Limits(**raw["limits"])
        raw["timing"] = Timing(**raw["timing"])
        return cls(**raw)

    @property
    def plan_path(self) -> str:
        return f"{self.local_dir}/{PLAN_FILE}"

    @staticmethod
    def local_dir_for(name: str) -> str:
        return f"corpus-data/accel/{name}"


class PlanError(ValueError):
    """The plan cannot work as asked (no room beside the tree, no time left to train)."""


def travelling_bytes(root: Path) -> int:
    """Bytes of what travels with every call: tracked files and untracked files git does not ignore."""
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "-co", "--exclude-standard"],
                             check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise PlanError(f"{root} is not a git checkout: the tree that travels cannot be measured ({exc})") from exc
    total = 0
    for name in filter(None, out.decode("utf-8", "surrogateescape").split("\0")):
        path = root / name
        if path.is_symlink() or path.is_file():
            total += path.lstat().st_size
    return total


def travels(root: Path, rel: str) -> bool:
    """Whether the model dir `rel` goes with every call already (its config.json is in the tree)."""
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-co", "--exclude-standard", "--", f"{rel}/config.json"],
                         capture_output=True, text=True)
    return out.returncode == 0 and bool(out.stdout.strip())


def _env(plan_python: str) -> str:
    return f"PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 {plan_python} -m training.accelerator device"


def make_plan(*, name: str, recipe: str, overrides: list[str], tokens: str, init: str | None,
              tokens_here: str, recipe_here: str, payload: dict[str, Any], model: dict[str, Any], tree_bytes: int, upload_part_bytes: int,
              limits: Limits, timing: Timing, python: str = "python3", store: str = "",
              estimated: bool = False) -> Plan:
    """The calls of a plan: the parts up (the last call also trains), then the model back."""
    local_dir = Plan.local_dir_for(name)
    run_dir = f"runs/accel-{name}"
    plan_path = f"{local_dir}/{PLAN_FILE}"
    parts = payload["parts"]
    if not parts:
        raise PlanError("the bundle has no parts")
    device = _env(python)
    calls: list[Call] = []
    for i, part in enumerate(parts, start=1):
        last = i == len(parts)
        calls.append(Call(
            n=i, purpose=("part %d of %d up, then join, check and train" if last else "part %d of %d up and kept")
            % (i, len(parts)),
            command=f"{device} {'train' if last else 'receive'} {plan_path}" + (" --stop-after STOP" if last else ""),
            carry=[plan_path, f"{local_dir}/{part['name']}"],
            timeout_s=limits.command_s if last else 120, upload_bytes=tree_bytes + part["bytes"]))
    per_call = max(1, min(limits.return_files - 2, (limits.return_bytes - MIB) // timing.return_part_bytes))
    n_return = max(1, math.ceil(model["return_bytes"] / timing.return_part_bytes))
    calls[-1].returns = [f"back-{j:02d}" for j in range(1, min(per_call, n_return) + 1)]
    first = per_call + 1
    while first <= n_return:
        last_part = min(first + per_call - 1, n_return)
        calls.append(Call(
            n=len(calls) + 1, purpose=f"model parts {first}-{last_part} of {n_return} back",
            command=f"{device} send-back {plan_path} --parts {first}-{last_part}", carry=[plan_path],
            timeout_s=120, returns=[f"back-{j:02d}" for j in range(first, last_part + 1)], upload_bytes=tree_bytes))
        first = last_part + 1

    setup = timing.setup_s + timing.setup_s_per_mtoken * payload["tokens"] / 1e6
    overhead = timing.start_s + len(calls) * timing.call_s + (len(calls) - 1) * timing.gap_s
    train_by_budget = limits.device_s - overhead - setup - timing.finish_s - timing.safety_s
    train_by_command = limits.command_s - setup - timing.finish_s - 15.0
    train_s = min(train_by_budget, train_by_command)
    if train_s < 60:
        raise PlanError(f"only {train_s:.0f} s would be left to train (device {limits.device_s} s, {len(calls)} calls): "
                        "shrink the tree or the corpus, or plan with more device time")
    stop_after = int(setup + train_s)
    calls[len(parts) - 1].command = calls[len(parts) - 1].command.replace("STOP", str(stop_after))
    budget = {
        "device_s": limits.device_s, "start_s": timing.start_s, "calls": len(calls),
        "transfers_and_gaps_s": round(overhead - timing.start_s, 1), "setup_s": round(setup, 1),
        "train_s": round(train_s, 1), "finish_s": timing.finish_s, "safety_s": timing.safety_s,
        "stop_after_s": stop_after, "binding": "device time" if train_by_budget < train_by_command else "command limit",
        "return_parts": n_return, "return_parts_per_call": per_call,
    }
    if model.get("flops_per_token"):
        rate = model.get("flops_per_s", 0.0)
        budget["expected_tokens"] = int(train_s * rate / model["flops_per_token"]) if rate else None
        budget["expected_epochs"] = round(budget["expected_tokens"] / payload["tokens"], 2) \
            if budget["expected_tokens"] and payload["tokens"] else None
    return Plan(name=name, recipe=recipe, overrides=overrides, tokens=tokens, init=init, tokens_here=tokens_here,
                recipe_here=recipe_here, local_dir=local_dir,
                run_dir=run_dir, store=store or f"/tmp/codeparrot-accel/{name}", python=python,
                tree_bytes=tree_bytes, upload_part_bytes=upload_part_bytes, payload=payload, model=model,
                budget=budget, calls=calls, limits=limits, timing=timing, estimated=estimated)


def _mib(n: float) -> str:
    return f"{n / MIB:.1f} MiB"


def render(plan: Plan) -> str:
    """The plan as a reader checks it before the first call: sizes, the budget, then every call."""
    p, b, m = plan.payload, plan.budget, plan.model
    est = " (estimated: no bundle built yet)" if plan.estimated else ""
    lines = [
        f"accelerator plan {plan.name}: recipe {plan.recipe}"
        + (f" {' '.join(plan.overrides)}" if plan.overrides else "")
        + (f", continuing {plan.init}" if plan.init else ", from scratch"),
        f"corpus: {plan.tokens}: {p['tokens']:,} tokens, {_mib(p['raw_bytes'])} raw -> "
        f"{_mib(p['archive_bytes'])} xz{est}",
        f"what travels with every call: {_mib(plan.tree_bytes)} of the working tree; room per call "
        f"{_mib(plan.upload_part_bytes)} (limit {_mib(plan.limits.upload_bytes)}, margin {_mib(plan.timing.upload_margin)})",
        f"parts up: {len(p['parts'])} ("
        + ", ".join(f"{x['name']} {_mib(x['bytes'])}" + (f" {x['sha256'][:12]}" if x.get('sha256') else "")
                    for x in p["parts"]) + ")",
        f"model: {m['parameters'] / 1e6:.1f} M parameters ({m['shape']}), fp16 {_mib(m['weights_bytes'])}; "
        f"back in {b['return_parts']} part(s) of <= {_mib(plan.timing.return_part_bytes)}, "
        f"{b['return_parts_per_call']} per call"
        + (f"; shipped dir ~{m['ship_bytes'] / 1e6:.1f} MB" if m.get("ship_bytes") else ""),
        f"device time {b['device_s']} s: start {b['start_s']:.0f} + {b['calls']} calls' transfers and gaps "
        f"{b['transfers_and_gaps_s']:.0f} + set-up {b['setup_s']:.0f} + TRAIN {b['train_s']:.0f} "
        f"({b['train_s'] / 60:.1f} min, bound by the {b['binding']}) + finish {b['finish_s']:.0f} "
        f"+ safety {b['safety_s']:.0f}",
    ]
    if b.get("expected_tokens"):
        lines.append(f"expected: ~{b['expected_tokens'] / 1e6:.0f} M tokens ({b['expected_epochs']} epochs) at "
                     f"{m['flops_per_s'] / 1e12:.0f} TFLOP/s (stage 6's measured rate; the first minute's log tells)")
    lines.append(f"the device keeps parts in {plan.store} while it stays warm ({plan.limits.warm_s} s between calls): "
                 "send each call as soon as the last one answers")
    lines.append("")
    for c in plan.calls:
        lines.append(f"call {c.n}: {c.purpose}  [{_mib(c.upload_bytes)} up, timeout_s={c.timeout_s}]")
        lines.append(f"  run(command={c.command!r},")
        lines.append(f"      carry={c.carry!r}, timeout_s={c.timeout_s})")
        if c.returns:
            lines.append(f"  returns {', '.join(c.returns)} + index.json: then here "
                         f"`python -m training.accelerator collect {plan.plan_path} --from FILES_AT`")
    lines.append("")
    lines.append(f"then: python -m training.accelerator finish {plan.plan_path} --ship-to DEST "
                 "(ships only a whole, verified model; evaluates it against the current one)")
    return "\n".join(lines)
