"""Statistics of k-fold scores: a CV mean with its interval, and two models compared on the same folds.

The folds of one cross-validation share most of their training rows, so their scores are not independent and
the plain t-interval over folds is too narrow. Both functions use Nadeau and Bengio's corrected variance,
(1/J + n_test/n_train) * s², with J the number of scores (folds × repeats) and n_test/n_train = 1/(K-1) for
K-fold CV (Nadeau & Bengio 2003, "Inference for the generalization error"; Bouckaert & Frank 2004).
Not here: running the folds (study/final/stage.py), drawing them (study/report/).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
VERDICTS = ("better", "not distinguishable", "worse")


@dataclass(frozen=True)
class Estimate:
    mean: float
    std: float  # sample standard deviation over the scores (ddof=1)
    low: float  # the interval at `level`, from the corrected variance
    high: float
    n: int  # scores (folds × repeats)
    level: float


@dataclass(frozen=True)
class Paired:
    difference: float  # mean of a - b over the shared folds
    low: float  # its interval at `level`
    high: float
    p_value: float  # two-sided, corrected resampled t-test
    verdict: str  # a against b: one of VERDICTS at significance 1 - level
    n: int
    level: float


def _corrected_t(values: np.ndarray, folds: int, level: float) -> tuple[float, float, float, float]:
    """(mean, half-width of the interval, p-value of mean == 0, std) under the corrected variance."""
    n = len(values)
    mean = float(values.mean())
    if n < 2:
        return mean, math.nan, math.nan, math.nan
    std = float(values.std(ddof=1))
    se = math.sqrt((1 / n + 1 / max(folds - 1, 1)) * std**2)
    if se == 0:
        return mean, 0.0, (1.0 if mean == 0 else 0.0), std
    half = float(stats.t.ppf(0.5 + level / 2, df=n - 1)) * se
    p = float(2 * stats.t.sf(abs(mean) / se, df=n - 1))
    return mean, half, p, std


def cv_estimate(scores: Sequence[float], folds: int, level: float = LEVEL) -> Estimate:
    """The mean of k-fold scores with its corrected interval, cut to [0, 1] (where macro-F1, AUC and accuracy lie).

    Args:
        scores: one score per fold (and repeat); NaN scores are left out.
        folds: K of the K-fold split the scores come from.
        level: the interval's coverage.
    """
    a = np.asarray(scores, dtype=float)
    a = a[np.isfinite(a)]
    if len(a) == 0:
        return Estimate(math.nan, math.nan, math.nan, math.nan, 0, level)
    mean, half, _, std = _corrected_t(a, folds, level)
    return Estimate(mean, std, max(mean - half, 0.0), min(mean + half, 1.0), len(a), level)


def paired(a: Sequence[float], b: Sequence[float], folds: int, level: float = LEVEL) -> Paired:
    """Model a against model b, fold by fold (the same folds, in the same order).

    Raises:
        ValueError: `a` and `b` differ in length.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired scores must have one value per shared fold, but got {len(x)} and {len(y)}.")
    d = x - y
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return Paired(math.nan, math.nan, math.nan, math.nan, "not distinguishable", 0, level)
    mean, half, p, _ = _corrected_t(d, folds, level)
    significant = math.isfinite(p) and p < 1 - level
    verdict = ("better" if mean > 0 else "worse") if significant else "not distinguishable"
    return Paired(mean, mean - half, mean + half, p, verdict, len(d), level)


def verdict_line(a: str, b: str, result: Paired, metric: str = "macro-F1") -> str:
    """One sentence in plain words, e.g. "GRU against TF-IDF (char): +0.012 macro-F1 [-0.004, +0.028], ..."."""
    if not math.isfinite(result.difference):
        return f"{a} against {b}: no shared folds to compare."
    interval = f" [{result.low:+.3f}, {result.high:+.3f}]" if math.isfinite(result.low) else " (one fold: no interval)"
    p = f"p = {result.p_value:.3f}" if math.isfinite(result.p_value) else "no test"
    return (
        f"{a} against {b}: {result.difference:+.3f} {metric}{interval} over {result.n} folds ({p}): {result.verdict}."
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of p-values for several comparisons (same order as given)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p))))
    out = np.empty_like(p)
    out[order] = np.minimum(adjusted, 1.0)
    return out.tolist()
