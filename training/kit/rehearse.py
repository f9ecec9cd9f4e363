"""A remote training run rehearsed on this machine: every call of a plan run as the device tool would run it.

A folder stands for the device's working copy: it gets what travels with every call (tracked and
untracked-not-ignored files) once, then each call's carried paths (replacing what is there), an
empty $OUT, and the call's exact command under its timeout. The limits are enforced as the tool
does (what goes up, how many paths are carried, how many files and bytes come back, how deep and
how named), so a plan that passes here fails there only on time. `cut_after` stops after that many
calls, as a machine taken back before the plan's end would.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from training.kit.plan import Call, Plan

NAME = re.compile(r"^[A-Za-z0-9._-]+$")
COMMAND_CHARS = 2000


class LimitError(RuntimeError):
    """A call breaks one of the device tool's limits."""


def _travelling(root: Path) -> list[str]:
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "-co", "--exclude-standard"],
                         check=True, capture_output=True).stdout.decode("utf-8", "surrogateescape")
    return [n for n in out.split("\0") if n and (root / n).is_file()]


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def seed_device(root: Path, device: Path) -> int:
    """Copy what travels with every call into `device`; returns its bytes."""
    total = 0
    for name in _travelling(root):
        target = device / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / name, target)
        total += target.stat().st_size
    return total


def check_upload(call: Call, root: Path, tree_bytes: int, plan: Plan) -> int:
    if len(call.command) > COMMAND_CHARS:
        raise LimitError(f"call {call.n}: the command has {len(call.command)} characters (at most {COMMAND_CHARS})")
    if len(call.carry) > plan.limits.carry_paths:
        raise LimitError(f"call {call.n}: {len(call.carry)} carried paths (at most {plan.limits.carry_paths})")
    total = tree_bytes + sum(_size(root / c) for c in call.carry)
    if total > plan.limits.upload_bytes:
        raise LimitError(f"call {call.n}: {total} bytes would travel (at most {plan.limits.upload_bytes})")
    return total


def check_return(call: Call, out: Path, plan: Plan) -> list[Path]:
    files = sorted(p for p in out.rglob("*") if p.is_file())
    lim = plan.limits
    if len(files) > lim.return_files:
        raise LimitError(f"call {call.n}: {len(files)} files in $OUT (at most {lim.return_files})")
    for f in files:
        rel = f.relative_to(out)
        if len(rel.parts) > 3 or not all(NAME.match(x) for x in rel.parts):
            raise LimitError(f"call {call.n}: {rel} would not come back (too deep or an odd name)")
        if f.stat().st_size > lim.return_file_bytes:
            raise LimitError(f"call {call.n}: {rel} has {f.stat().st_size} bytes (at most {lim.return_file_bytes})")
    if sum(f.stat().st_size for f in files) > lim.return_bytes:
        raise LimitError(f"call {call.n}: more than {lim.return_bytes} bytes in $OUT")
    return files


def run_calls(plan: Plan, *, root: Path, device: Path, returned: Path, cut_after: int | None = None,
              log: list[str] | None = None) -> list[Path]:
    """Run the plan's calls in `device`; returns the folders of what came back, one per call."""
    notes = log if log is not None else []
    device.mkdir(parents=True, exist_ok=True)
    tree = seed_device(root, device)
    folders = []
    for call in plan.calls[: cut_after if cut_after is not None else len(plan.calls)]:
        up = check_upload(call, root, tree, plan)
        for rel in call.carry:
            src, dst = root / rel, device / rel
            if dst.is_dir():
                shutil.rmtree(dst)
            dst.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if src.is_dir() else shutil.copyfile)(src, dst)
        out = returned / f"call-{call.n:02d}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        proc = subprocess.run(["bash", "-c", call.command], cwd=device, env={**os.environ, "OUT": str(out)},
                              timeout=call.timeout_s, capture_output=True, text=True)
        files = check_return(call, out, plan)
        notes.append(f"call {call.n}: {up} bytes up, rc {proc.returncode}, back: "
                     + ", ".join(f"{f.name} ({f.stat().st_size})" for f in files))
        if proc.returncode != 0:
            raise RuntimeError(f"call {call.n} failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
        folders.append(out)
    return folders
