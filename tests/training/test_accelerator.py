"""The accelerator kit end to end on a tiny GPT-2: an accelerator run rehearsed on this machine (the corpus up in
several parts under a small upload limit, training, the model back in several parts over two calls),
then a second run that continues the first model, and a bring-back cut off before its last call."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fixtures_runner import pack_tiny_gpt2_run

from training.accelerator import build_parser, build_plan
from training.data.decontam import ContaminationError
from training.data.tokenfile import manifest_sha, write_ids
from training.kit.archive import BundleError
from training.kit.collect import collect, finish
from training.kit.plan import Limits, Plan, PlanError, Timing
from training.kit.rehearse import run_calls
from training.ship import ShipError

TRAIN = """
per_device_train_batch_size = 4
learning_rate = 1e-2
warmup_ratio = 0.1
logging_steps = 1
max_steps = 25
"""
# Small enough that the corpus goes up in several parts and the model comes back over two calls.
TIMING = Timing(upload_margin=1000, min_part_bytes=1000, return_part_bytes=30_000)


def _limits(part: int) -> Limits:
    return Limits(upload_bytes=64 * 1024 + 1000 + part + 2000, return_files=4)  # 2 parts + index + log a call


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def rehearsal(npm_packages_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A repository (tiny, git), a tiny FIM tokenizer, the fixture packages packed, the recipe."""
    root = tmp_path_factory.mktemp("repo")
    _git(root, "init", "-q")
    (root / ".gitignore").write_text("/corpus-data/\n/runs/\n")
    (root / "README.md").write_text("a repository whose tree travels with every call\n")
    _git(root, "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tree")
    data = tmp_path_factory.mktemp("data")
    recipe, tokens = pack_tiny_gpt2_run(npm_packages_dir, data, "tiny-run", TRAIN)
    return {"root": root, "recipe": recipe, "tokens": tokens, "work": tmp_path_factory.mktemp("device")}


def _plan(rehearsal: dict[str, Any], *extra: str, part: int = 5_000) -> Plan:
    args = build_parser().parse_args(["plan", str(rehearsal["recipe"]), "--tokens", str(rehearsal["tokens"]),
                                      "--preset", "1", *extra])
    import sys

    work: Path = rehearsal["work"]
    return build_plan(args, rehearsal["root"], python=sys.executable, store=str(work / "store" / args.name),
                      limits=_limits(part), timing=TIMING)


def _rehearse(rehearsal: dict[str, Any], plan: Plan, name: str, cut_after: int | None = None) -> list[Path]:
    work: Path = rehearsal["work"] / name
    return run_calls(plan, root=rehearsal["root"], device=work / "device", returned=work / "returned",
                     cut_after=cut_after)


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def first(rehearsal: dict[str, Any]) -> dict[str, Any]:
    """The first rehearsal, rehearsed whole: plan, every call, collect, finish (ship + held-out loss)."""
    plan = _plan(rehearsal, "--name", "first")
    folders = _rehearse(rehearsal, plan, "first")
    backs = [f for f in folders if (f / "index.json").is_file()]
    state = collect(plan, backs, rehearsal["root"])
    shipped = rehearsal["work"] / "shipped"
    report = finish(plan, rehearsal["root"], ship_to=shipped, baseline=None)
    return {"plan": plan, "folders": folders, "state": state, "report": report, "shipped": shipped}


def test_the_plan_fits_every_call_under_the_limits(rehearsal: dict[str, Any], first: dict[str, Any]) -> None:
    plan: Plan = first["plan"]
    parts = plan.payload["parts"]
    assert len(parts) >= 2  # the corpus did not fit one call beside the tree
    assert all(c.upload_bytes <= plan.limits.upload_bytes for c in plan.calls)
    up = [c for c in plan.calls if "receive" in c.command or " train " in c.command]
    assert len(up) == len(parts) and " train " in up[-1].command and "--stop-after" in up[-1].command
    assert [c.carry[1].rsplit("/", 1)[1] for c in up] == [p["name"] for p in parts]
    assert any("send-back" in c.command for c in plan.calls)  # the model comes back over two calls at least
    assert plan.init is None  # nothing of this shape was shipped before: from scratch


def test_a_rehearsed_lease_brings_back_the_model_byte_exact(rehearsal: dict[str, Any], first: dict[str, Any]) -> None:
    (bundle,) = first["state"].values()
    assert bundle["missing"] == [] and len(bundle["here"]) >= 3
    device_run = rehearsal["work"] / "first" / "device" / first["plan"].run_dir
    model = rehearsal["root"] / first["plan"].run_dir / "model"
    published = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                 for p in device_run.iterdir() if p.is_file() and not p.name.startswith(".")}
    assert _digest(model) == published  # every file as the device wrote it
    metrics = json.loads((first["shipped"] / "metrics.json").read_text())
    assert metrics["steps"] == 25 and metrics["final"] is True
    assert (first["shipped"] / "model.safetensors").is_file() and (first["shipped"] / "ATTRIBUTION.md").is_file()
    loss = first["report"]["eval"]["new"]
    assert loss["blocks"] > 0 and 0 < loss["loss"] < 10 and loss["nats_per_char"] > 0


def test_a_second_lease_continues_the_loss_curve(rehearsal: dict[str, Any], first: dict[str, Any]) -> None:
    model = rehearsal["root"] / first["plan"].run_dir / "model"
    plan = _plan(rehearsal, "--name", "second", "--init", str(model), part=60_000)
    assert plan.init and plan.init.endswith("/init")  # the weights do not travel with the tree: bundled
    folders = _rehearse(rehearsal, plan, "second")
    collect(plan, [f for f in folders if (f / "index.json").is_file()], rehearsal["root"])
    report = finish(plan, rehearsal["root"], ship_to=None, baseline=None, evaluate=False)
    before = json.loads((model / "log_history.json").read_text())
    after = json.loads((Path(report["model"]) / "log_history.json").read_text())
    assert after[: len(before)] == before  # the first run's curve, then the second's
    new = [h for h in after[len(before):] if "loss" in h]
    assert [h["step"] for h in new] == list(range(26, 51))
    old = [h["loss"] for h in before if "loss" in h]
    assert new[0]["loss"] < (old[0] + old[-1]) / 2  # it starts where the first rehearsal ended, not from scratch
    metrics = report["metrics"]
    assert metrics["steps"] == 50 and metrics["run_steps"] == 25
    assert metrics["continued_from"]["steps"] == 25


def test_a_cut_off_bring_back_leaves_the_shipped_model_untouched(rehearsal: dict[str, Any], first: dict[str, Any],
                                                                 tmp_path: Path) -> None:
    plan: Plan = first["plan"]
    train_call = next(c.n for c in plan.calls if " train " in c.command)
    root = tmp_path / "here"
    root.mkdir()
    shipped_before = _digest(first["shipped"])
    # the machine was taken back after the training call: its parts came back, the send-back's did not
    state = collect(plan, [first["folders"][train_call - 1]], root)
    assert next(iter(state.values()))["missing"]
    with pytest.raises(BundleError, match="no complete model"):
        finish(plan, root, ship_to=first["shipped"], baseline=None)
    assert _digest(first["shipped"]) == shipped_before
    assert not (root / plan.run_dir / "model").exists()
    # a damaged part is refused as it arrives, and is not kept
    back = next(f for f in first["folders"][train_call:] if any(f.glob("back-*")))
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for f in back.iterdir():
        data = f.read_bytes()
        (damaged / f.name).write_bytes(data if f.name == "index.json" or not f.name.startswith("back-")
                                       else data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(BundleError, match="sha256"):
        collect(plan, [damaged], root)
    assert _digest(first["shipped"]) == shipped_before


def test_no_room_beside_the_tree_is_a_clear_error(rehearsal: dict[str, Any]) -> None:
    args = build_parser().parse_args(["plan", str(rehearsal["recipe"]), "--tokens", str(rehearsal["tokens"]), "--dry-run"])
    with pytest.raises(PlanError, match="leaves no room"):
        build_plan(args, rehearsal["root"], limits=Limits(upload_bytes=65 * 1024), timing=TIMING)


def test_a_shape_that_cannot_ship_is_refused_before_anything_is_bundled(
        rehearsal: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    import os

    from training.accelerator import main

    cwd = Path.cwd()
    os.chdir(rehearsal["root"])
    try:  # the tiny model's dir weighs ~0.6 MB (card and records are estimated): over a 0.1 MB cap
        assert main(["plan", str(rehearsal["recipe"]), "--tokens", str(rehearsal["tokens"]), "--name", "capped",
                     "--ship-cap-mb", "0.1"]) == 2
    finally:
        os.chdir(cwd)
    assert "cannot ship" in capsys.readouterr().err
    assert not (rehearsal["root"] / Plan.local_dir_for("capped")).exists()


@pytest.mark.parametrize(("package", "error"), [("lodash", ContaminationError), ("text-table", ShipError)])
def test_a_corpus_with_a_reserved_or_dev_set_package_is_refused_before_it_goes_up(
        rehearsal: dict[str, Any], tmp_path: Path, package: str, error: type[Exception]) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(Path(str(rehearsal["recipe"])).parent / "tok"))
    rows = [{"source": "npm", "package": package, "version": "1.0.0", "license": "MIT", "path": "index.js",
             "sha256": "0" * 64}]
    write_ids([[5, 6, 7] * 50], tokenizer, tmp_path / "bad", manifest_sha=manifest_sha(r["sha256"] for r in rows),
              documents=rows)
    args = build_parser().parse_args(["plan", str(rehearsal["recipe"]), "--tokens", str(tmp_path / "bad"),
                                      "--name", f"bad-{package}"])
    with pytest.raises(error):
        build_plan(args, rehearsal["root"], limits=_limits(5_000), timing=TIMING)
    assert not (rehearsal["root"] / Plan.local_dir_for(f"bad-{package}")).exists()  # nothing was bundled


def test_the_dry_run_prints_every_call_and_writes_nothing(rehearsal: dict[str, Any],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import os

    from training.accelerator import main

    cwd = Path.cwd()
    os.chdir(rehearsal["root"])  # the command line plans for the repository it runs in
    try:
        assert main(["plan", str(rehearsal["recipe"]), "--tokens", str(rehearsal["tokens"]), "--name", "dry", "--dry-run",
                     "--budget-s", "900"]) == 0
    finally:
        os.chdir(cwd)
    printed = capsys.readouterr().out
    assert "parts up: 1" in printed and "device train corpus-data/accel/dry/plan.json --stop-after" in printed
    assert "finish corpus-data/accel/dry/plan.json" in printed and "estimated" in printed
    assert not (rehearsal["root"] / Plan.local_dir_for("dry")).exists()


def test_a_cut_off_training_call_is_recovered_by_send_back(rehearsal: dict[str, Any], first: dict[str, Any],
                                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No parts came back with the training call: `send-back 1-N` bundles the last published checkpoint."""
    from dataclasses import replace

    from training.kit.collect import assemble_model
    from training.kit.device import send_back

    plan = replace(first["plan"], store=str(tmp_path / "fresh-store"))  # no bundle made yet on this machine
    monkeypatch.chdir(rehearsal["work"] / "first" / "device")
    out = tmp_path / "out"
    sent = send_back(plan, first=1, last=99, out=out)
    assert sent and (out / "index.json").is_file()
    root = tmp_path / "here"
    collect(plan, [out], root)
    model = assemble_model(plan, root)
    assert _digest(model) == {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                              for p in (Path(plan.run_dir)).iterdir() if p.is_file() and not p.name.startswith(".")}
