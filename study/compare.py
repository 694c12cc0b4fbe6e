"""`python -m study.compare results/<a> results/<b> ... --out DIR`: studies side by side, with significance tests.

Reads only each study's Parquet and JSON files. Pure statistics first (stratified bootstrap confidence
intervals of macro-F1 and ROC AUC from the validation predictions, a paired bootstrap and McNemar's test
between two models scored on the same validation rows, Holm's adjustment), then their plots, then
`write_comparison`, which writes `DIR/comparison.html` and `DIR/figures/*.png`, and the command line.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from study import report as R
from study import report_html as H
from study.console import setup_console
from study.results import ResultsError

log = logging.getLogger(__name__)

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT = 0, 1, 2
COMPARISON_FILE = "comparison.html"
METRICS = ("macro_f1", "auc")
METRIC_NAMES = {"macro_f1": "macro-F1", "auc": "ROC AUC"}
PAIRED_CHOICES = ("auto", "require", "off")
# Settings that decide which rows with which labels form the validation set (not how the texts are encoded).
SPLIT_KEYS = (
    "train",
    "valid",
    "valid_fraction",
    "data_seed",
    "demo_rows",
    "text_column",
    "label_column",
    "label_map",
    "drop_unmapped",
    "empty_texts",
)
_CHUNK = 256  # bootstrap resamples scored at once (bounds memory: _CHUNK x validation rows)


class CompareError(ValueError):
    """A comparison that cannot be made as asked; the message names the studies and the fix."""


# ------------------------------------------------------------------------------------------ statistics


@dataclass(frozen=True)
class Interval:
    point: float  # the metric on the whole validation set
    low: float
    high: float
    level: float  # e.g. 0.95


def bootstrap_indices(y: np.ndarray, n_boot: int, seed: int = 0) -> np.ndarray:
    """(n_boot, N) row indices, resampled with replacement within each class (class counts stay fixed).

    Keeping every class's count fixed keeps every class present, so the AUC is defined in every resample.
    """
    if n_boot < 1:
        raise CompareError(f"`n_boot` must be >= 1, but got {n_boot}.")
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
        raise CompareError(f"`metric` must be one of {METRICS}, but got {metric!r}.")
    out = []
    for start in range(0, len(idx), _CHUNK):
        chunk = idx[start : start + _CHUNK]
        if metric == "macro_f1":
            out.append(macro_f1_resampled(y, probs.argmax(axis=1), probs.shape[1], chunk))
        else:
            out.append(macro_auc_resampled(y, probs, chunk))
    return np.concatenate(out)


def bootstrap_ci(
    y: np.ndarray, probs: np.ndarray, metric: str, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> Interval:
    """Percentile bootstrap interval of `metric` from the validation labels (N,) and probabilities (N, C)."""
    if not 0 < level < 1:
        raise CompareError(f"`level` must be in (0, 1), but got {level}.")
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
        raise CompareError(
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


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of p-values for several comparisons (same order as given)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    adjusted = np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p))))
    out = np.empty_like(p)
    out[order] = np.minimum(adjusted, 1.0)
    return out.tolist()


# --------------------------------------------------------------------------------- studies and pairs


@dataclass(frozen=True, eq=False)
class BestModel:
    label: str
    results: R.StudyResults
    trial_id: str
    y: np.ndarray  # (N,) validation labels, by row
    probs: np.ndarray  # (N, C) its validation probabilities at its best epoch
    note: str  # "" or why another trial than the best was used


def best_model(results: R.StudyResults, label: str) -> BestModel:
    """The best trial that has saved validation predictions (normally the best trial itself).

    Raises:
        ResultsError: no trial of the study has predictions.
    """
    ranked = R.scored(results.trials)
    with_preds = set(results.predictions["trial_id"])
    for i, tid in enumerate(ranked["trial_id"]):
        if tid in with_preds:
            y, probs = R.trial_predictions(results.predictions, tid)
            note = "" if i == 0 else f"the best trial {ranked['trial_id'].iloc[0]} has no saved predictions; "
            note += f"using trial {tid} (rank {i + 1})" if i else ""
            return BestModel(label, results, str(tid), y, probs, note)
    raise ResultsError(
        f"{str(results.folder)!r} has no validation predictions (predictions.parquet is empty); "
        "rerun the study with `--keep-predictions` >= 1."
    )


@dataclass(frozen=True)
class ValidationMatch:
    same: bool
    reason: str


def validation_match(a: BestModel, b: BestModel) -> ValidationMatch:
    """Whether two studies were scored on the same validation rows, and why (or why not).

    Same rows means: the same labels row by row, and either the same data fingerprint or the same settings
    that decide the split (the fingerprint also covers encoding settings, which change no validation row).
    """
    if a.results.classes != b.results.classes:
        return ValidationMatch(False, f"the classes differ ({list(a.results.classes)} vs {list(b.results.classes)})")
    if len(a.y) != len(b.y):
        return ValidationMatch(False, f"the validation sets have {len(a.y)} and {len(b.y)} rows")
    differ = int((a.y != b.y).sum())
    if differ:
        return ValidationMatch(False, f"the validation labels differ in {differ} of {len(a.y)} rows")
    fa = (a.results.study.get("data") or {}).get("fingerprint")
    fb = (b.results.study.get("data") or {}).get("fingerprint")
    if fa and fa == fb:
        return ValidationMatch(True, f"same data fingerprint {fa}, same {len(a.y)} validation labels")
    sa, sb = a.results.settings, b.results.settings
    split_differs = [k for k in SPLIT_KEYS if sa.get(k) != sb.get(k)]
    if split_differs:
        return ValidationMatch(
            False, f"the data fingerprints differ ({fa} vs {fb}) and so do the split settings {split_differs}"
        )
    encoding = sorted(k for k in set(sa) | set(sb) if k not in SPLIT_KEYS and sa.get(k) != sb.get(k))
    return ValidationMatch(
        True,
        f"same split settings and the same {len(a.y)} validation labels; the fingerprints differ through "
        f"settings that change no validation row ({', '.join(encoding[:6]) or 'encoding'})",
    )


@dataclass(frozen=True)
class PairResult:
    a: str  # label of the first study
    b: str
    match: ValidationMatch
    bootstrap: dict[str, PairedBootstrap]  # metric -> test; empty when the sets differ or tests are off
    mcnemar: McNemar | None
    p_adjusted: float  # Holm-adjusted p of the macro-F1 paired bootstrap (NaN when not tested)


def compare_pairs(
    models: Sequence[BestModel], n_boot: int, seed: int, level: float, paired: str = "auto"
) -> list[PairResult]:
    """Paired tests between every two studies that share a validation set.

    Raises:
        CompareError: `paired` is "require" and some pair does not share a validation set.
    """
    if paired not in PAIRED_CHOICES:
        raise CompareError(f"`paired` must be one of {PAIRED_CHOICES}, but got {paired!r}.")
    pairs = []
    for a, b in itertools.combinations(models, 2):
        match = validation_match(a, b)
        if not match.same and paired == "require":
            raise CompareError(
                f"a paired test needs one validation set, but studies {a.label!r} ({a.results.folder}) and "
                f"{b.label!r} ({b.results.folder}) differ: {match.reason}. Compare studies run on the same data, "
                "or use `--paired auto` to show only their separate confidence intervals."
            )
        tests, mc = {}, None
        if match.same and paired != "off":
            tests = {m: paired_bootstrap(a.y, a.probs, b.probs, m, n_boot, level, seed) for m in METRICS}
            mc = mcnemar(a.y, a.probs.argmax(axis=1), b.probs.argmax(axis=1))
        pairs.append(PairResult(a.label, b.label, match, tests, mc, float("nan")))
    tested = [i for i, p in enumerate(pairs) if p.bootstrap]
    adjusted = holm([pairs[i].bootstrap["macro_f1"].p_value for i in tested]) if tested else []
    for i, p_adj in zip(tested, adjusted, strict=True):
        p = pairs[i]
        pairs[i] = PairResult(p.a, p.b, p.match, p.bootstrap, p.mcnemar, p_adj)
    return pairs


def verdict(pair: PairResult, scores: dict[str, Interval], alpha: float, n_pairs: int) -> str:
    """One paragraph in plain words: which best model is better on macro-F1, and how sure that is."""
    fa, fb = scores[pair.a], scores[pair.b]
    head = f"{pair.a} vs {pair.b}: best macro-F1 {fa.point:.3f} against {fb.point:.3f}. "
    if not pair.bootstrap:
        if pair.match.same:
            return head + "Paired tests were switched off (`--paired off`)."
        apart = fa.low > fb.high or fb.low > fa.high
        return head + (
            f"No paired test: {pair.match.reason}. Their separate {fa.level:.0%} intervals "
            f"({fa.low:.3f} to {fa.high:.3f} and {fb.low:.3f} to {fb.high:.3f}) "
            + ("do not overlap, which suggests a real difference." if apart else "overlap: no clear difference.")
        )
    t = pair.bootstrap["macro_f1"]
    adjusted = f", Holm-adjusted for {n_pairs} comparisons {pair.p_adjusted:.3g}" if n_pairs > 1 else ""
    stats = (
        f"The paired difference is {t.difference:+.3f} ({fa.level:.0%} CI {t.low:+.3f} to {t.high:+.3f}; "
        f"paired bootstrap p = {t.p_value:.3g}{adjusted}; McNemar p = {pair.mcnemar.p_value:.3g} "
        f"on the {pair.mcnemar.only_a + pair.mcnemar.only_b} tweets where only one model is right). "
    )
    auc = pair.bootstrap["auc"]
    stats += (
        f"On ROC AUC the difference is {auc.difference:+.3f} ({auc.low:+.3f} to {auc.high:+.3f}, "
        f"p = {auc.p_value:.3g}). "
    )
    if pair.p_adjusted < alpha:
        better, worse = (pair.a, pair.b) if t.difference > 0 else (pair.b, pair.a)
        return head + stats + f"Verdict: {better} is better than {worse} at the {alpha:g} level."
    return (
        head
        + stats
        + (
            f"Verdict: no significant difference at the {alpha:g} level; the validation set cannot tell these "
            "two apart."
        )
    )


def study_row(model: BestModel, scores: dict[str, Interval]) -> dict[str, object]:
    """One line of the side-by-side table."""
    r = model.results
    counts = R.status_counts(r.trials)
    f1, auc = scores["macro_f1"], scores["auc"]
    return {
        "study": model.label,
        "folder": str(r.folder),
        "space": (r.study.get("space") or {}).get("name"),
        "trials (completed/stopped/errored)": (
            f"{counts['total']} ({counts['completed']}/{counts['stopped_early']}/{counts['errored']})"
        ),
        "best trial": model.trial_id,
        "validation rows": len(model.y),
        "macro-F1 [CI]": f"{f1.point:.3f} [{f1.low:.3f}, {f1.high:.3f}]",
        "AUC [CI]": f"{auc.point:.3f} [{auc.low:.3f}, {auc.high:.3f}]",
        "trial-epochs": int(r.trials["epochs_run"].fillna(0).sum()),
        "trial time (s)": float(r.trials["time_total_s"].fillna(0).sum()),
        "wall time (s)": r.study.get("wall_time_s"),
    }


# ---------------------------------------------------------------------------------------------- plots


def plot_scores(scores: dict[str, dict[str, Interval]]) -> Figure:
    """Best macro-F1 and AUC of each study with their bootstrap intervals."""
    labels = list(scores)
    fig = Figure(figsize=(max(6, 1.3 * len(labels) + 4), 3.8))
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, METRICS, strict=True):
        points = [scores[s][metric] for s in labels]
        y = [p.point for p in points]
        # a percentile interval need not contain the point estimate: no negative error bars
        err = [[max(0.0, p.point - p.low) for p in points], [max(0.0, p.high - p.point) for p in points]]
        ax.bar(range(len(labels)), y, color=[f"C{i % 10}" for i in range(len(labels))], alpha=0.75)
        ax.errorbar(range(len(labels)), y, yerr=err, fmt="none", ecolor="k", capsize=5)
        ax.set_xticks(range(len(labels)), labels, rotation=15)
        finite = [v for p in points for v in (p.low, p.high, p.point) if math.isfinite(v)]
        if finite:
            ax.set_ylim(max(0.0, min(finite) - 0.1), min(1.0, max(finite) + 0.05))
        ax.set_title(f"best {METRIC_NAMES[metric]} ({points[0].level:.0%} bootstrap CI)")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_cost(rows: pd.DataFrame) -> Figure:
    fig = Figure(figsize=(max(6, 1.3 * len(rows) + 4), 3.5))
    axes = fig.subplots(1, 2)
    colours = [f"C{i % 10}" for i in range(len(rows))]
    for ax, col in zip(axes, ("trial-epochs", "wall time (s)"), strict=True):
        ax.bar(range(len(rows)), rows[col].astype(float).fillna(0), color=colours, alpha=0.75)
        ax.set_xticks(range(len(rows)), rows["study"], rotation=15)
        ax.set_title(col)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_best_curves_overlay(curves: dict[str, pd.DataFrame]) -> Figure:
    """Each study's best trial: validation (solid) and train (dashed) macro-F1 and loss per epoch."""
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
    for i, (label, c) in enumerate(curves.items()):
        for ax, metric in zip(axes, ("macro_f1", "loss"), strict=True):
            ax.plot(c["epoch"], c[f"val_{metric}"], "o-", color=f"C{i % 10}", label=label, ms=3)
            ax.plot(c["epoch"], c[f"train_{metric}"], "--", color=f"C{i % 10}", alpha=0.6, lw=1)
    for ax, name in zip(axes, ("macro-F1", "loss"), strict=True):
        ax.set_title(f"best trials: {name}, validation (solid) and train (dashed)", fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def trial_scores(results: dict[str, R.StudyResults]) -> pd.DataFrame:
    """Every scored trial of every study: study, trial_id, status, best validation macro-F1."""
    parts = [
        R.scored(r.trials)[["trial_id", "status", "best_val_macro_f1"]].assign(study=label)
        for label, r in results.items()
    ]
    return pd.concat(parts, ignore_index=True)[["study", "trial_id", "status", "best_val_macro_f1"]]


def plot_trial_scores(scores: pd.DataFrame, labels: Sequence[str]) -> Figure:
    """The distribution of trial scores per study: a box plot with every trial as a point."""
    fig = Figure(figsize=(max(6, 1.3 * len(labels) + 3), 4))
    ax = fig.subplots()
    data = [scores.loc[scores["study"] == s, "best_val_macro_f1"].to_numpy() for s in labels]
    ax.boxplot(data, positions=range(len(labels)), widths=0.5, showfliers=False)
    rng = np.random.default_rng(0)
    for i, s in enumerate(labels):
        g = scores[scores["study"] == s]
        colours = [R.STATUS_COLOURS.get(st, "k") for st in g["status"]]
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(g)), g["best_val_macro_f1"], c=colours, s=18, zorder=3)
    ax.set_xticks(range(len(labels)), labels, rotation=15)
    ax.set_ylabel("best validation macro-F1 per trial")
    ax.set_title("Trial scores per study (blue: completed, orange: stopped early)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def plot_differences(pairs: Sequence[PairResult]) -> Figure:
    """Paired differences A - B with their intervals, one row per tested pair and metric."""
    rows = [(f"{p.a} - {p.b}", m, p.bootstrap[m]) for p in pairs for m in METRICS if p.bootstrap]
    fig = Figure(figsize=(8, 0.5 * len(rows) + 1.8))
    ax = fig.subplots()
    for i, (_, metric, t) in enumerate(rows):
        colour = "tab:blue" if metric == "macro_f1" else "tab:purple"
        xerr = [[max(0.0, t.difference - t.low)], [max(0.0, t.high - t.difference)]]
        ax.errorbar(t.difference, i, xerr=xerr, fmt="o", color=colour)
    ax.axvline(0, color="k", lw=1)
    ax.set_yticks(range(len(rows)), [f"{n} ({METRIC_NAMES[m]})" for n, m, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("difference of the best models (paired bootstrap interval)")
    ax.set_title("Paired differences")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------ the page


def parse_labels(text: str | None, folders: Sequence[Path]) -> list[str]:
    """`--labels A,B,...` (one per folder, distinct), or the folder names made distinct."""
    if text is None:
        names = [Path(f).resolve().name or str(f) for f in folders]
        return [n if names.count(n) == 1 else f"{n} ({i + 1})" for i, n in enumerate(names)]
    labels = [s.strip() for s in text.split(",")]
    if len(labels) != len(folders) or not all(labels) or len(set(labels)) != len(labels):
        raise CompareError(
            f"`--labels` must give {len(folders)} distinct non-empty names, one per study folder, but got {text!r}."
        )
    return labels


def write_comparison(
    folders: Sequence[str | Path],
    out: str | Path,
    labels: Sequence[str] | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    paired: str = "auto",
    seed: int = 0,
) -> Path:
    """Write `out/comparison.html` and `out/figures/*.png` comparing the studies; returns the HTML path.

    Raises:
        ResultsError: a folder that is not a study, a missing file or an unknown schema version.
        CompareError: bad arguments, or `paired="require"` with studies on different validation sets.
    """
    if len(folders) < 2:
        raise CompareError(f"a comparison needs at least two study folders, but got {len(folders)}.")
    if not 0 < alpha < 1:
        raise CompareError(f"`alpha` must be in (0, 1), but got {alpha}.")
    if n_boot < 100:
        raise CompareError(f"`boot` must be >= 100 for a usable interval, but got {n_boot}.")
    labels = list(labels) if labels is not None else parse_labels(None, [Path(f) for f in folders])
    if len(labels) != len(folders):
        raise CompareError(f"`labels` must give one name per study folder ({len(folders)}), but got {len(labels)}.")
    level = 1 - alpha
    results = {label: R.load_results(f) for label, f in zip(labels, folders, strict=True)}
    models = [best_model(r, label) for label, r in results.items()]
    scores = {m.label: {k: bootstrap_ci(m.y, m.probs, k, n_boot, level, seed) for k in METRICS} for m in models}
    pairs = compare_pairs(models, n_boot, seed, level, paired)
    n_tested = sum(bool(p.bootstrap) for p in pairs)

    out = Path(out)
    fig_dir = out / R.FIGURES_DIR
    fig_dir.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame([study_row(m, scores[m.label]) for m in models])
    notes = [H.note_html(f"{m.label}: {m.note}.") for m in models if m.note]
    sections = [
        H.Section(
            "side-by-side",
            "Side by side",
            (
                H.frame_table(
                    table, f"The studies' best models ({level:.0%} stratified bootstrap CIs, {n_boot} resamples)"
                ),
                *notes,
                H.save_figure(plot_scores(scores), fig_dir, "scores", "Best macro-F1 and AUC with bootstrap intervals"),
                H.save_figure(plot_cost(table), fig_dir, "cost", "Compute spent: trial-epochs and wall time"),
            ),
        ),
        H.Section(
            "curves",
            "Learning curves",
            (
                H.save_figure(
                    plot_best_curves_overlay(
                        {m.label: R.learning_curves(m.results.epochs, [m.trial_id]) for m in models}
                    ),
                    fig_dir,
                    "curves",
                    "The best trial of each study, overlaid",
                ),
            ),
        ),
        H.Section(
            "trials",
            "Trial scores",
            (
                H.save_figure(
                    plot_trial_scores(trial_scores(results), labels),
                    fig_dir,
                    "trial_scores",
                    "Distribution of the trials' best validation macro-F1 per study",
                ),
            ),
        ),
    ]
    f1_scores = {label: s["macro_f1"] for label, s in scores.items()}
    blocks = [H.verdict_html(verdict(p, f1_scores, alpha, n_tested)) for p in pairs]
    rows = []
    for p in pairs:
        row = {"A": p.a, "B": p.b, "same validation set": "yes" if p.match.same else "no", "why": p.match.reason}
        for m, t in p.bootstrap.items():
            row[f"{METRIC_NAMES[m]} A-B [CI]"] = f"{t.difference:+.3f} [{t.low:+.3f}, {t.high:+.3f}]"
            row[f"{METRIC_NAMES[m]} p"] = t.p_value
        if p.mcnemar:
            row["McNemar only A / only B"] = f"{p.mcnemar.only_a} / {p.mcnemar.only_b}"
            row["McNemar p"] = p.mcnemar.p_value
        row["macro-F1 p (Holm)"] = p.p_adjusted
        rows.append(row)
    blocks.append(H.frame_table(pd.DataFrame(rows), "Paired tests between the best models"))
    if n_tested:
        blocks.append(H.save_figure(plot_differences(pairs), fig_dir, "differences", "Paired differences A - B"))
    blocks.append(
        H.para_html(
            "The paired bootstrap resamples the validation rows (within each class) and scores both models on "
            "the same resample; McNemar's exact test counts the tweets only one model classifies right. "
            "Both need the two studies to share their validation rows."
        )
    )
    sections.append(H.Section("tests", "Significance", tuple(blocks)))
    path = out / COMPARISON_FILE
    H.write_page(path, H.render_page("Study comparison", " · ".join(labels), sections))
    log.info("Writing comparison <path=%s>", path)
    return path


# ------------------------------------------------------------------------------------------------ CLI


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m study.compare",
        description="Compare studies: best models with bootstrap CIs, learning curves, trial scores, paired tests.",
        epilog="exit codes: 0 done, 2 bad input (not a study folder, missing file, unknown schema, "
        "different validation sets with --paired require), 1 other errors",
    )
    p.add_argument("folders", nargs="+", metavar="FOLDER", help="study results folders, e.g. results/<name>")
    p.add_argument("--labels", metavar="A,B,...", help="one short name per folder (default: the folder names)")
    p.add_argument("--out", required=True, metavar="DIR", help="where comparison.html and figures/ go")
    p.add_argument("--boot", type=int, default=1000, metavar="N", help="bootstrap resamples (default: 1000)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level; CIs are 1 - alpha (default: 0.05)")
    p.add_argument(
        "--paired",
        choices=PAIRED_CHOICES,
        default="auto",
        help="paired tests where the validation sets match (auto), refuse pairs that do not match (require), "
        "or none (off)",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    return p


def main(argv: list[str] | None = None) -> int:
    setup_console()
    args = parser().parse_args(argv)
    try:
        labels = parse_labels(args.labels, [Path(f) for f in args.folders])
        path = write_comparison(args.folders, args.out, labels, args.boot, args.alpha, args.paired, args.seed)
    except (ResultsError, CompareError, R.ReportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as e:  # noqa: BLE001 - the last line of defence: say what failed, exit 1
        log.exception("comparison failed: %s", e)
        return EXIT_ERROR
    print(path)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
