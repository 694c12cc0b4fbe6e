"""CV means and paired fold comparisons under Nadeau and Bengio's corrected variance."""

import math

import numpy as np
import pytest
from scipy import stats

from study.final.stats import cv_estimate, paired, verdict_line

SCORES = [0.40, 0.42, 0.38, 0.41, 0.39]


def test_interval_uses_the_corrected_variance():
    est = cv_estimate(SCORES, folds=5)
    s = np.std(SCORES, ddof=1)
    half = stats.t.ppf(0.975, 4) * math.sqrt((1 / 5 + 1 / 4) * s**2)
    assert est.mean == pytest.approx(0.40) and est.std == pytest.approx(s)
    assert (est.low, est.high) == pytest.approx((0.40 - half, 0.40 + half))
    naive = stats.t.ppf(0.975, 4) * s / math.sqrt(5)
    assert est.high - est.low > 2 * naive  # wider than the plain t-interval, which ignores shared training rows


def test_interval_stays_within_the_metric_range():
    est = cv_estimate([0.2, 0.9], folds=2)
    assert est.low == 0.0 and est.high == 1.0


def test_nan_scores_are_left_out_and_one_score_has_no_interval():
    assert cv_estimate([0.4, math.nan, 0.42], folds=3).n == 2
    one = cv_estimate([0.4], folds=5)
    assert one.mean == 0.4 and math.isnan(one.low)


@pytest.mark.parametrize(
    "shift, verdict",
    [(0.05, "better"), (-0.05, "worse"), (0.0, "not distinguishable"), (0.004, "not distinguishable")],
)
def test_paired_verdicts(shift, verdict):
    noise = np.array([0.01, -0.01, 0.005, -0.005, 0.0])
    result = paired(np.array(SCORES) + shift + noise, SCORES, folds=5)
    assert result.verdict == verdict
    assert result.difference == pytest.approx(shift, abs=1e-12)
    assert result.low <= result.difference <= result.high


def test_paired_needs_the_same_folds():
    with pytest.raises(ValueError, match="one value per shared fold"):
        paired([0.1, 0.2], [0.1], folds=2)


def test_verdict_line_reads_in_plain_words():
    line = verdict_line("GRU", "TF-IDF (char)", paired([0.5, 0.52, 0.51], [0.4, 0.41, 0.42], folds=3))
    assert line.startswith("GRU against TF-IDF (char): +0.100 macro-F1 [") and line.endswith("better.")
