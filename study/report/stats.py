"""The comparison's statistics, pure functions of validation labels and probabilities (no files, no plots).

Stratified bootstrap confidence intervals of macro-F1 and ROC AUC, a paired bootstrap and McNemar's exact
test between two models scored on the same validation rows, and Holm's adjustment for several comparisons.
Which studies to compare and how to show it live in compare.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METRICS = ("macro_f1", "auc")
_CHUNK = 256  # bootstrap resamples scored at once (bounds memory: _CHUNK x validation rows)


@dataclass(frozen=True)
class Interval:
    point: float  # the metric on the whole validation set
    low: float
    high: float
    level: float  # e.g. 0.95


def bootstrap_indices(y: np.ndarray, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, N) row indices, resampled with replacement within each class: every class keeps its count, so
    every class is present and the AUC is defined in every resample."""
    if n_boot < 1:
        raise ValueError(f"`n_boot` must be >= 1, but got {n_boot}.")
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    idx = np.empty((n_boot, len(y)), dtype=np.int64)
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        idx[:, rows] = rows[rng.integers(0, len(rows), size=(n_boot, len(rows)))]
    return idx


def macro_f1_resampled(y: np.ndarray, pred: np.ndarray, n_classes: int, idx: np.ndarray) -> np.ndarray:
    """Macro-F1 over all `n_classes` (0 for a class never true nor predicted) of each resample; (B,)."""
    yr, pr = y[idx], pred[idx]  # (B, N)
    f1 = np.zeros((idx.shape[0], n_classes))
    for c in range(n_classes):
        tp = ((yr == c) & (pr == c)).sum(axis=1)
        denom = (yr == c).sum(axis=1) + (pr == c).sum(axis=1)
        f1[:, c] = np.divide(2 * tp, denom, out=np.zeros(len(tp)), where=denom > 0)
    return f1.mean(axis=1)


def _binary_auc(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC of each row (ties count half); NaN where a row has no positive or no negative."""
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=1)
    n_pos = positive.sum(axis=1)
    n_neg = positive.shape[1] - n_pos
    u = (ranks * positive).sum(axis=1) - n_pos * (n_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)


def macro_auc_resampled(y: np.ndarray, probs: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Macro one-vs-rest ROC AUC of each resample, as trainables.metrics.macro_auc computes it; (B,)."""
    yr = y[idx]
    if probs.shape[1] == 2:
        return _binary_auc(probs[idx, 1], yr == 1)
    return np.mean([_binary_auc(probs[idx, c], yr == c) for c in range(probs.shape[1])], axis=0)


def metric_resampled(metric: str, y: np.ndarray, probs: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """`metric` ("macro_f1" or "auc") of each resample in `idx`, scored in chunks; (B,)."""
    if metric not in METRICS:
        raise ValueError(f"`metric` must be one of {METRICS}, but got {metric!r}.")
    chunks = [idx[start : start + _CHUNK] for start in range(0, len(idx), _CHUNK)]
    if metric == "macro_f1":
        return np.concatenate([macro_f1_resampled(y, probs.argmax(axis=1), probs.shape[1], c) for c in chunks])
    return np.concatenate([macro_auc_resampled(y, probs, c) for c in chunks])


def bootstrap_ci(
    y: np.ndarray, probs: np.ndarray, metric: str, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> Interval:
    """Percentile bootstrap interval of `metric` from the validation labels (N,) and probabilities (N, C)."""
    if not 0 < level < 1:
        raise ValueError(f"`level` must be in (0, 1), but got {level}.")
    y = np.asarray(y)
    full = np.arange(len(y))[None, :]
    point = float(metric_resampled(metric, y, probs, full)[0])
    values = metric_resampled(metric, y, probs, bootstrap_indices(y, n_boot, seed))
    values = values[np.isfinite(values)]
    if not len(values):
        return Interval(point, float("nan"), float("nan"), level)
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return Interval(point, float(lo), float(hi), level)


@dataclass(frozen=True)
class PairedBootstrap:
    metric: str
    difference: float  # metric(A) - metric(B) on the whole validation set
    low: float  # interval of the difference
    high: float
    p_value: float  # two-sided: how often the resampled difference falls on the other side of 0
    n_boot: int


def paired_bootstrap(
    y: np.ndarray,
    probs_a: np.ndarray,
    probs_b: np.ndarray,
    metric: str,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> PairedBootstrap:
    """Paired bootstrap of metric(A) - metric(B): both models are scored on the same resampled rows.

    p = 2 * min(P(d <= 0), P(d >= 0)) over the resamples (with +1 smoothing, at most 1).
    """
    y = np.asarray(y)
    if probs_a.shape != probs_b.shape or len(y) != len(probs_a):
        raise ValueError(
            f"paired predictions must have the same shape, but got {probs_a.shape} and {probs_b.shape} "
            f"for {len(y)} labels."
        )
    full = np.arange(len(y))[None, :]
    diff = float(metric_resampled(metric, y, probs_a, full)[0] - metric_resampled(metric, y, probs_b, full)[0])
    idx = bootstrap_indices(y, n_boot, seed)
    d = metric_resampled(metric, y, probs_a, idx) - metric_resampled(metric, y, probs_b, idx)
    d = d[np.isfinite(d)]
    lo, hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2])
    below, above = (np.sum(d <= 0) + 1) / (len(d) + 1), (np.sum(d >= 0) + 1) / (len(d) + 1)
    return PairedBootstrap(metric, diff, float(lo), float(hi), float(min(1.0, 2 * min(below, above))), len(d))


@dataclass(frozen=True)
class McNemar:
    only_a: int  # rows A classifies right and B wrong
    only_b: int  # rows B classifies right and A wrong
    p_value: float  # exact two-sided binomial test of only_a against only_b


def mcnemar(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> McNemar:
    """McNemar's exact test on the rows where exactly one of the two models is right."""
    from scipy.stats import binomtest

    right_a, right_b = np.asarray(pred_a) == np.asarray(y), np.asarray(pred_b) == np.asarray(y)
    only_a, only_b = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    p = 1.0 if only_a + only_b == 0 else float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    return McNemar(only_a, only_b, p)
