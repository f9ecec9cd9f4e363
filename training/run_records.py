"""The records a training run writes beside its weights, and what a later run reads back of them.

`training.finetune` and `training.pretrain` both stage them (`training.publish`) next to the model:
`training_config.json`, `recipe.toml`, `metrics.json`, `log_history.json` and `loss.png`. A pretrain
run that continues an earlier one carries on the step and token counts and the loss curve of that
run's `metrics.json` and `log_history.json` (`prior_run`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from training.config import RunConfig, to_dict


def write_records(
    cfg: RunConfig, stage: Path, metrics: dict[str, Any], history: list[dict[str, Any]]
) -> None:
    """The run's config, recipe, metrics, log history and loss curve, into the staging dir."""
    from training.plotting import plot_loss

    (stage / "training_config.json").write_text(json.dumps(to_dict(cfg), indent=2, default=str) + "\n")
    if cfg.recipe_path:
        shutil.copyfile(cfg.recipe_path, stage / "recipe.toml")
    (stage / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (stage / "log_history.json").write_text(json.dumps(history, indent=1) + "\n")
    plot_loss(history, stage / "loss.png", title=f"{cfg.name}: loss")


def prior_run(cfg: RunConfig) -> dict[str, Any]:
    """What the run being continued did (`model.name_or_path`'s metrics and loss curve), or zeros
    for a run from scratch or from weights that `training.pretrain` did not write."""
    none: dict[str, Any] = {"steps": 0, "tokens_seen": 0, "history": [], "source": None}
    if cfg.model.from_scratch or not cfg.model.name_or_path:
        return none
    src = Path(cfg.model.name_or_path)
    try:
        metrics = json.loads((src / "metrics.json").read_text(encoding="utf-8"))
        history = json.loads((src / "log_history.json").read_text(encoding="utf-8"))
        steps, tokens = int(metrics["steps"]), int(metrics["tokens_seen"])
    except (OSError, ValueError, KeyError, TypeError):
        return none
    source = {"path": str(src), "steps": steps, "tokens_seen": tokens, "eval_loss": metrics.get("eval_loss")}
    return {
        "steps": steps,
        "tokens_seen": tokens,
        "history": history if isinstance(history, list) else [],
        "source": source,
    }
