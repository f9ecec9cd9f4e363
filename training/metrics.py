"""Scores of line completions: exact match, edit similarity, the trivial baseline, and the paired
statistics that compare two systems on the same rows (sign test, bootstrap interval)."""

from __future__ import annotations

import math
from typing import Any


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insert/delete/substitute, cost 1). Hand-written: the stdlib has none, and
    difflib's ratio is a different measure (matching blocks), not the edit similarity code
    completion papers report. Lines are short, so the O(len(a)·len(b)) DP is cheap."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def edit_similarity(prediction: str, target: str) -> float:
    """1 - levenshtein / max length, on stripped strings (1.0 for two empty strings)."""
    p, t = prediction.strip(), target.strip()
    longest = max(len(p), len(t))
    return 1.0 if longest == 0 else 1.0 - levenshtein(p, t) / longest


def exact_match(prediction: str, target: str) -> bool:
    return prediction.strip() == target.strip()


def baseline_prediction(prefix: str) -> str:
    """Trivial baseline: repeat the previous non-empty line (stripped)."""
    lines = prefix.split("\n")[:-1]  # the last piece is the partly typed current line
    for line in reversed(lines):
        if line.strip():
            return line.strip()
    return ""


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test: the chance of a split at least this uneven between `wins` and
    `losses` (the rows where exactly one of two predictors is right) if both were equally good."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_interval(diffs: list[float], *, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval of the mean of per-row differences (seeded: the same rows give the
    same interval)."""
    import numpy as np

    values = np.asarray(diffs, dtype=np.float64)
    if len(values) == 0:
        return (0.0, 0.0)
    picks = np.random.default_rng(seed).integers(0, len(values), size=(resamples, len(values)))
    means = values[picks].mean(axis=1)
    return (float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975)))


Scores = list[tuple[bool, float]]  # per row: exact match, edit similarity


def row_scores(rows: list[dict[str, Any]], predictions: dict[str, str]) -> Scores:
    """Each row's exact match and edit similarity (a missing prediction counts as "")."""
    out: Scores = []
    for r in rows:
        prediction, target = predictions.get(str(r["id"]), ""), str(r["target"])
        out.append((exact_match(prediction, target), edit_similarity(prediction, target)))
    return out


def versus(ours: Scores, other: Scores) -> dict[str, Any]:
    """Ours against another predictor on the same rows: exact matches only one of them has (and
    the sign test's p for that split), and the 95 % interval of the edit-similarity gain. Two
    figures 1 point apart on 200 rows may be 2 rows of luck; this says whether they are."""
    wins = sum(a and not b for (a, _), (b, _) in zip(ours, other, strict=True))
    losses = sum(b and not a for (a, _), (b, _) in zip(ours, other, strict=True))
    lo, hi = paired_interval([a - b for (_, a), (_, b) in zip(ours, other, strict=True)])
    return {"exact_only_ours": wins, "exact_only_other": losses, "sign_test_p": sign_test(wins, losses),
            "edit_similarity_gain_ci95": [lo, hi]}


def score(
    rows: list[dict[str, Any]],
    predictions: dict[str, str],
    copies: dict[str, str] | None = None,
    available: dict[str, bool] | None = None,
) -> dict[str, Any]:
    """Exact match and edit similarity of the predictions and the baselines. With `available`
    (row id -> its line could be copied from somewhere, `line_available`): the share of such rows
    (the ceiling of any copying predictor) and the model's exact matches within and outside them."""
    scored = [r for r in rows if "target" in r and str(r["id"]) in predictions]
    if not scored:
        return {"scored": 0}
    n = len(scored)

    def summary(per_row: Scores) -> dict[str, float]:
        return {"exact_match": sum(em for em, _ in per_row) / n, "edit_similarity": sum(es for _, es in per_row) / n}

    ours = row_scores(scored, predictions)
    previous = row_scores(scored, {str(r["id"]): baseline_prediction(str(r["prefix"])) for r in scored})
    result: dict[str, Any] = {}
    if available is not None:
        inside = [em for r, (em, _) in zip(scored, ours, strict=True) if available.get(str(r["id"]))]
        outside = [em for r, (em, _) in zip(scored, ours, strict=True) if not available.get(str(r["id"]))]
        result["copy_ceiling"] = {"rows_available": len(inside) / n, "model_exact_inside": sum(inside) / max(1, len(inside)),
                                  "model_exact_outside": sum(outside) / max(1, len(outside))}
    result |= {"model": summary(ours), "baseline_previous_line": summary(previous)}
    if copies is not None:
        copied = row_scores(scored, copies)
        result |= {"baseline_copy": summary(copied), "model_vs_copy": versus(ours, copied)}
    return {"scored": n, **result}
