"""Stratified k-fold cross-validation of ONE configuration: the folds, one fold's run, the summary over folds.

Every fold trains its own word vectors on that fold's training texts plus the unlabelled texts, never on the
held-out fold. A fold's score is the validation metrics of its best epoch (by `val_macro_f1`); the last
epoch's metrics are reported too. `evaluate_split` is a pure function of picklable arguments, so a fold can
run anywhere, a Ray task included. The command line lives in evaluate.py; the training loop in
trainables/train.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from study.config import ConfigError, DataSettings
from trainables.data import LabelledData, subset
from trainables.metrics import METRIC
from trainables.prepare import EncodedData, prepare
from trainables.train import HParams, fit

DEFAULT_FOLDS = 5
SCORED_BY = f"best epoch by {METRIC} per fold"
SUMMARY_METRICS = ("macro_f1", "auc", "accuracy")


@dataclass(frozen=True)
class FoldResult:
    """What one fold gave: its sizes, best and last epochs and their validation metrics."""

    fold: int  # 1-based
    n_train: int
    n_valid: int
    best_epoch: int  # 1-based epoch whose validation macro-F1 is highest
    epochs: int  # epochs run
    best: dict[str, Any]  # validation metrics of the best epoch (val_ prefix dropped)
    last: dict[str, Any]  # validation metrics of the last epoch
    time_s: float  # word vectors + encoding + training


def fold_indices(labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded stratified k-fold positions: one (train, held_out) pair of sorted positions per fold.

    Raises:
        ConfigError: `folds` < 2, or some class has fewer rows than `folds`.
    """
    from sklearn.model_selection import StratifiedKFold

    if folds < 2:
        raise ConfigError(f"`folds` must be >= 2 for cross-validation, but got {folds}.")
    counts = np.bincount(labels)
    smallest = int(counts[counts > 0].min())
    if smallest < folds:
        raise ConfigError(
            f"`folds` must be <= the row count of the smallest class ({smallest}), but got {folds}; "
            "use fewer folds or more data."
        )
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros(len(labels)), labels))


def fold_data(data: LabelledData, folds: int, seed: int) -> list[tuple[LabelledData, LabelledData]]:
    """The (train, held_out) LabelledData of every fold; the held-out parts partition `data`."""
    return [(subset(data, tr), subset(data, ho)) for tr, ho in fold_indices(data.labels, folds, seed)]


def encode_fold(
    train: LabelledData,
    held_out: LabelledData,
    unlabelled: Sequence[str],
    settings: DataSettings,
    cache_dir: Path | None,
) -> EncodedData:
    """Word vectors on the fold's training texts plus `unlabelled` (never `held_out`), then encode both parts."""
    return prepare(train, held_out, unlabelled, settings.clean_config(), settings.vector_config(), cache_dir)


def _val_metrics(record: dict[str, Any], classes: tuple[str, ...]) -> dict[str, Any]:
    """The validation metrics of one `fit` epoch record, without the `val_` prefix; per-class ones by class."""
    return {
        **{k: record[f"val_{k}"] for k in (*SUMMARY_METRICS, "loss")},
        "recall_per_class": dict(zip(classes, record["val_recall_per_class"], strict=True)),
        "f1_per_class": dict(zip(classes, record["val_f1_per_class"], strict=True)),
    }


def score_history(history: list[dict[str, Any]], classes: tuple[str, ...]) -> tuple[int, dict, dict]:
    """(best epoch, its validation metrics, the last epoch's validation metrics) of one `fit` run."""
    best = max(history, key=lambda r: (r[METRIC], -r["epoch"]))  # the earliest of equal scores
    return int(best["epoch"]), _val_metrics(best, classes), _val_metrics(history[-1], classes)


def evaluate_split(
    hp: HParams,
    train: LabelledData,
    held_out: LabelledData,
    unlabelled: Sequence[str],
    settings: DataSettings,
    cache_dir: Path | None,
    fold: int = 1,
) -> FoldResult:
    """Word vectors, encoding and `fit` on one (train, held_out) pair, scored on `held_out`.

    Pure apart from its time and the word-vector cache, and every argument pickles: a fold may run in a Ray task.
    """
    t0 = time.perf_counter()
    data = encode_fold(train, held_out, unlabelled, settings, cache_dir)
    history = fit(hp, data)
    best_epoch, best, last = score_history(history, data.classes)
    return FoldResult(fold, len(train), len(held_out), best_epoch, len(history), best, last, time.perf_counter() - t0)


def cross_validate(
    hp: HParams,
    data: LabelledData,
    unlabelled: Sequence[str],
    settings: DataSettings,
    folds: int,
    cache_dir: Path | None = None,
    on_fold: Callable[[FoldResult], None] | None = None,
) -> list[FoldResult]:
    """Stratified k-fold CV (seeded by `settings.data_seed`) of one configuration.

    Args:
        hp: the hyperparameters, the same in every fold.
        data: every labelled row; each fold holds out 1/`folds` of it.
        unlabelled: extra texts (and pretrained vectors) for every fold's word vectors.
        settings: cleaning and word-vector settings.
        folds: k >= 2.
        cache_dir: the word-vector cache; None trains every fold's vectors afresh.
        on_fold: called with each fold's result as it finishes.

    Returns:
        One FoldResult per fold, in fold order.
    """
    results = []
    for i, (train, held_out) in enumerate(fold_data(data, folds, settings.data_seed), start=1):
        result = evaluate_split(hp, train, held_out, unlabelled, settings, cache_dir, fold=i)
        if on_fold is not None:
            on_fold(result)
        results.append(result)
    return results


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    if np.isnan(a).all():
        return math.nan, math.nan
    return float(np.nanmean(a)), float(np.nanstd(a))


def summarise(results: Sequence[FoldResult], classes: tuple[str, ...]) -> dict[str, Any]:
    """Mean and (population) std over folds of the best-epoch metrics, plus the last epoch's as `last_*`."""
    out: dict[str, Any] = {"folds": len(results), "scored_by": SCORED_BY}
    for which, prefix in (("best", ""), ("last", "last_")):
        for name in SUMMARY_METRICS:
            mean, std = _mean_std([getattr(r, which)[name] for r in results])
            out[f"{prefix}{name}_mean"], out[f"{prefix}{name}_std"] = mean, std
        per_class = {c: _mean_std([getattr(r, which)["recall_per_class"][c] for r in results]) for c in classes}
        out[f"{prefix}recall_per_class_mean"] = {c: m for c, (m, _) in per_class.items()}
        out[f"{prefix}recall_per_class_std"] = {c: s for c, (_, s) in per_class.items()}
    out["best_epoch_mean"] = float(np.mean([r.best_epoch for r in results]))
    out["epochs"] = max(r.epochs for r in results)
    out["time_s"] = float(sum(r.time_s for r in results))
    out["per_fold"] = [asdict(r) for r in results]
    return out
