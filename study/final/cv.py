"""Stratified k-fold cross-validation: the one rule that scores a fold, and the summary over folds.

The rule, used by the final stage, `study.evaluate` and `study.ablate` alike (`score_fold`): a fold's model
trains on its training part less an inner validation split (1/`INNER_PARTS` of it, stratified), whose macro-F1
after each epoch chooses the epoch; the held-out fold is then scored once, at that epoch. The held-out rows
choose nothing, so the estimate is not the best of several looks at them. The old rule (each fold's best epoch
on its own held-out rows) is kept beside it as `held_out_best_macro_f1`, for what it is: optimistic.

Every fold trains its own word vectors on that fold's training texts plus the unlabelled texts, never on the
held-out fold. Not here: the folds themselves (trainables/folds.py: identical texts stay together in every
split), running them (the one runner, stage.py `run_cv`, as Ray tasks), the training loop (trainables/train.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from trainables.folds import INNER_PARTS, Fold
from trainables.metrics import METRIC, classification_metrics, log_loss

if TYPE_CHECKING:  # torch and gensim load where a fold runs, not where its rule is read (the report)
    from trainables.hparams import HParams
    from trainables.prepare import EncodedData

SCORED_BY = (
    f"each fold's epoch chosen on an inner validation split (1/{INNER_PARTS} of the fold's training part, "
    "stratified); the held-out fold scored once, at that epoch"
)
SUMMARY_METRICS = ("macro_f1", "auc", "accuracy")


@dataclass(frozen=True)
class FoldResult:
    """What one fold gave: its sizes, the chosen and last epochs and their held-out metrics."""

    fold: int  # 1-based
    n_train: int
    n_valid: int
    best_epoch: int  # 1-based epoch chosen on the inner validation split
    epochs: int  # epochs run
    best: dict[str, Any]  # held-out metrics at the chosen epoch (val_ prefix dropped)
    last: dict[str, Any]  # held-out metrics of the last epoch
    held_out_best_macro_f1: float  # the old rule: the held-out fold's best epoch (optimistic)
    time_s: float  # the fold's task: training and scoring (its encoding is a task of its own)


def _metrics(record: dict[str, Any], classes: tuple[str, ...]) -> dict[str, Any]:
    """The validation metrics of one epoch record, without the `val_` prefix; per-class ones by class."""
    return {
        **{k: record[f"val_{k}"] for k in (*SUMMARY_METRICS, "loss")},
        "recall_per_class": dict(zip(classes, record["val_recall_per_class"], strict=True)),
        "f1_per_class": dict(zip(classes, record["val_f1_per_class"], strict=True)),
    }


def score_fold(hp: HParams, data: EncodedData, fold: Fold) -> dict[str, Any]:
    """The one rule: train on the inner training rows, choose the epoch on the inner validation rows, score the
    held-out rows (`data`'s validation part) at that epoch.

    The held-out rows' labels are read only after training, to score the model of each epoch; they change
    neither the training nor the chosen epoch.

    Args:
        data: the fold encoded: its training part (inner split included) and its held-out part as validation.
        fold: the fold, for its inner split.

    Returns:
        `best_epoch` (chosen on the inner split), `epochs`, `best` and `last` (held-out metrics at the chosen
        and the last epoch), `curve` (held-out macro-F1 per epoch), `inner_curve` (inner validation macro-F1 per
        epoch) and `held_out_best_macro_f1` (the old rule: the best of `curve`).
    """
    from trainables.train import fit

    it, iv = fold.inner_train, fold.inner_valid
    inner = replace(
        data,
        x_train=data.x_train[it],
        len_train=data.len_train[it],
        y_train=data.y_train[it],
        x_valid=data.x_train[iv],
        len_valid=data.len_train[iv],
        y_valid=data.y_train[iv],
    )
    held_out_probs: list[np.ndarray] = []  # (N_held, C) per epoch
    history = fit(hp, inner, lambda r: held_out_probs.append(r.predict(data.x_valid, data.len_valid)))
    chosen = max(history, key=lambda r: (r[METRIC], -r["epoch"]))  # the earliest of equal inner scores
    scored = [
        {"val_loss": log_loss(data.y_valid, probs), **classification_metrics(data.y_valid, probs, "val_")}
        for probs in held_out_probs
    ]
    curve = [float(s[METRIC]) for s in scored]
    return {
        "best_epoch": int(chosen["epoch"]),
        "epochs": len(history),
        "best": _metrics(scored[int(chosen["epoch"]) - 1], data.classes),
        "last": _metrics(scored[-1], data.classes),
        "curve": curve,
        "inner_curve": [float(r[METRIC]) for r in history],
        "held_out_best_macro_f1": max(curve),
        "n_train": len(it),
        "n_held_out": len(data.y_valid),
    }


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    if np.isnan(a).all():
        return math.nan, math.nan
    return float(np.nanmean(a)), float(np.nanstd(a))


def summarise(results: Sequence[FoldResult], classes: tuple[str, ...]) -> dict[str, Any]:
    """Mean and (population) std over folds of the chosen epoch's metrics, the last epoch's as `last_*`, and the
    old rule's (each fold's best epoch on its held-out rows) as `held_out_best_macro_f1_mean`."""
    out: dict[str, Any] = {"folds": len(results), "scored_by": SCORED_BY}
    for which, prefix in (("best", ""), ("last", "last_")):
        for name in SUMMARY_METRICS:
            mean, std = _mean_std([getattr(r, which)[name] for r in results])
            out[f"{prefix}{name}_mean"], out[f"{prefix}{name}_std"] = mean, std
        per_class = {c: _mean_std([getattr(r, which)["recall_per_class"][c] for r in results]) for c in classes}
        out[f"{prefix}recall_per_class_mean"] = {c: m for c, (m, _) in per_class.items()}
        out[f"{prefix}recall_per_class_std"] = {c: s for c, (_, s) in per_class.items()}
    out["held_out_best_macro_f1_mean"] = _mean_std([r.held_out_best_macro_f1 for r in results])[0]
    out["best_epoch_mean"] = float(np.mean([r.best_epoch for r in results]))
    out["epochs"] = max(r.epochs for r in results)
    out["time_s"] = float(sum(r.time_s for r in results))
    out["per_fold"] = [asdict(r) for r in results]
    return out
