"""Studies side by side: each study's best model, which pairs share a validation set, their tests, the page.

`write_comparison` writes `DIR/comparison.html` and `DIR/figures/*.png` from the studies' files; the
statistics are stats.py's, the HTML blocks page.py's, and the command line is study/compare.py.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from study.final.stats import holm
from study.report.compare_final import final_section
from study.report.load import FIGURES_DIR, ReportError, StudyResults, load_results, same_rows, scored, status_counts
from study.report.page import frame_table, note_html, para_html, save_figure, section, verdict_html, write_page
from study.report.plots import STATUS_COLOURS, learning_curves, plot_curves, trial_predictions
from study.report.stats import METRICS, Interval, McNemar, PairedBootstrap, bootstrap_ci, mcnemar, paired_bootstrap
from study.results import BEST_METRIC, ResultsError

log = logging.getLogger(__name__)

COMPARISON_FILE = "comparison.html"
METRIC_NAMES = {"macro_f1": "macro-F1", "auc": "ROC AUC"}
PAIRED_CHOICES = ("auto", "require", "off")


class CompareError(ReportError):
    """A comparison that cannot be made as asked; the message names the studies and the fix."""


# --------------------------------------------------------------------------------- studies and pairs


@dataclass(frozen=True, eq=False)
class BestModel:
    label: str
    results: StudyResults
    trial_id: str
    y: np.ndarray  # (N,) validation labels, by row
    probs: np.ndarray  # (N, C) its validation probabilities at its best epoch
    note: str  # "" or why another trial than the best was used


def best_model(results: StudyResults, label: str) -> BestModel:
    """The best trial that has saved validation predictions (normally the best trial itself).

    Raises:
        ResultsError: no trial of the study has predictions.
    """
    ranked = scored(results.trials)
    with_preds = set(results.predictions["trial_id"])
    for i, tid in enumerate(ranked["trial_id"]):
        if tid in with_preds:
            y, probs = trial_predictions(results.predictions, tid)
            best = ranked["trial_id"].iloc[0]
            note = f"the best trial {best} has no saved predictions; using trial {tid} (rank {i + 1})" if i else ""
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
    """Whether two studies were scored on the same validation rows, and why (or why not): the same labels row by
    row, and rows read and split alike by load.same_rows's rule (the final section's rule too)."""
    if a.results.classes != b.results.classes:
        return ValidationMatch(False, f"the classes differ ({list(a.results.classes)} vs {list(b.results.classes)})")
    if len(a.y) != len(b.y):
        return ValidationMatch(False, f"the validation sets have {len(a.y)} and {len(b.y)} rows")
    differ = int((a.y != b.y).sum())
    if differ:
        return ValidationMatch(False, f"the validation labels differ in {differ} of {len(a.y)} rows")
    same, why = same_rows(a.results, b.results)
    return ValidationMatch(same, f"{why}, same {len(a.y)} validation labels" if same else why)


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
    adjusted = holm([pairs[i].bootstrap["macro_f1"].p_value for i in tested])
    for i, p_adj in zip(tested, adjusted, strict=True):
        pairs[i] = replace(pairs[i], p_adjusted=p_adj)
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
    t, auc = pair.bootstrap["macro_f1"], pair.bootstrap["auc"]
    adjusted = f", Holm-adjusted for {n_pairs} comparisons {pair.p_adjusted:.3g}" if n_pairs > 1 else ""
    stats = (
        f"The paired difference is {t.difference:+.3f} ({fa.level:.0%} CI {t.low:+.3f} to {t.high:+.3f}; "
        f"paired bootstrap p = {t.p_value:.3g}{adjusted}; McNemar p = {pair.mcnemar.p_value:.3g} "
        f"on the {pair.mcnemar.only_a + pair.mcnemar.only_b} tweets where only one model is right). "
        f"On ROC AUC the difference is {auc.difference:+.3f} ({auc.low:+.3f} to {auc.high:+.3f}, "
        f"p = {auc.p_value:.3g}). "
    )
    if pair.p_adjusted < alpha:
        better, worse = (pair.a, pair.b) if t.difference > 0 else (pair.b, pair.a)
        return f"{head}{stats}Verdict: {better} is better than {worse} at the {alpha:g} level."
    return (
        f"{head}{stats}Verdict: no significant difference at the {alpha:g} level; the validation set cannot tell "
        "these two apart."
    )


def study_row(model: BestModel, scores: dict[str, Interval]) -> dict[str, object]:
    """One line of the side-by-side table."""
    r = model.results
    counts = status_counts(r.trials)
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


def pairs_table(pairs: Sequence[PairResult]) -> pd.DataFrame:
    """One line per pair of studies: whether they share a validation set, and their tests."""
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
    return pd.DataFrame(rows)


# own drawing, as every figure below: neither Optuna nor scikit-learn sets several studies side by side
def plot_scores(scores: dict[str, dict[str, Interval]]) -> Figure:
    """Best macro-F1 and AUC of each study with their bootstrap intervals."""
    labels = list(scores)
    fig = Figure(figsize=(max(6, 1.3 * len(labels) + 4), 3.8))
    for ax, metric in zip(fig.subplots(1, 2), METRICS, strict=True):
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
    colours = [f"C{i % 10}" for i in range(len(rows))]
    for ax, col in zip(fig.subplots(1, 2), ("trial-epochs", "wall time (s)"), strict=True):
        ax.bar(range(len(rows)), rows[col].astype(float).fillna(0), color=colours, alpha=0.75)
        ax.set_xticks(range(len(rows)), rows["study"], rotation=15)
        ax.set_title(col)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def trial_scores(results: dict[str, StudyResults]) -> pd.DataFrame:
    """Every scored trial of every study: study, trial_id, status, best validation macro-F1."""
    parts = [scored(r.trials)[["trial_id", "status", BEST_METRIC]].assign(study=label) for label, r in results.items()]
    return pd.concat(parts, ignore_index=True)[["study", "trial_id", "status", BEST_METRIC]]


def plot_trial_scores(scores: pd.DataFrame, labels: Sequence[str]) -> Figure:
    """The distribution of trial scores per study: a box plot with every trial as a point."""
    fig = Figure(figsize=(max(6, 1.3 * len(labels) + 3), 4))
    ax = fig.subplots()
    data = [scores.loc[scores["study"] == s, BEST_METRIC].to_numpy() for s in labels]
    ax.boxplot(data, positions=range(len(labels)), widths=0.5, showfliers=False)
    rng = np.random.default_rng(0)
    for i, s in enumerate(labels):
        g = scores[scores["study"] == s]
        colours = [STATUS_COLOURS.get(st, "k") for st in g["status"]]
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(g)), g[BEST_METRIC], c=colours, s=18, zorder=3)
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
    ax.set(xlabel="difference of the best models (paired bootstrap interval)", title="Paired differences")
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
    results = {label: load_results(f) for label, f in zip(labels, folders, strict=True)}
    models = [best_model(r, label) for label, r in results.items()]
    scores = {m.label: {k: bootstrap_ci(m.y, m.probs, k, n_boot, level, seed) for k in METRICS} for m in models}
    pairs = compare_pairs(models, n_boot, seed, level, paired)
    n_tested = sum(bool(p.bootstrap) for p in pairs)

    out = Path(out)
    fig_dir = out / FIGURES_DIR
    table = pd.DataFrame([study_row(m, scores[m.label]) for m in models])
    curves = pd.concat(learning_curves(m.results.epochs, [m.trial_id]).assign(trial_id=m.label) for m in models)
    curves_figure = plot_curves(curves, {}, "best trials")
    overlaid = "The best trial of each study, overlaid"
    scores_figure = plot_trial_scores(trial_scores(results), labels)
    distribution = "Distribution of the trials' best validation macro-F1 per study"
    sections = [
        final_section(results, alpha, fig_dir),
        section(
            "side-by-side",
            "Side by side",
            frame_table(table, f"The studies' best models ({level:.0%} stratified bootstrap CIs, {n_boot} resamples)"),
            *(note_html(f"{m.label}: {m.note}.") for m in models if m.note),
            save_figure(plot_scores(scores), fig_dir, "scores", "Best macro-F1 and AUC with bootstrap intervals"),
            save_figure(plot_cost(table), fig_dir, "cost", "Compute spent: trial-epochs and wall time"),
        ),
        section("curves", "Learning curves", save_figure(curves_figure, fig_dir, "curves", overlaid)),
        section("trials", "Trial scores", save_figure(scores_figure, fig_dir, "trial_scores", distribution)),
    ]
    f1_scores = {label: s["macro_f1"] for label, s in scores.items()}
    # "A is better than B" (either way round) in green, no difference or no paired test in grey
    kinds = ["better" if p.p_adjusted < alpha else "not distinguishable" for p in pairs]
    blocks = [verdict_html(verdict(p, f1_scores, alpha, n_tested), k) for p, k in zip(pairs, kinds, strict=True)]
    blocks.append(frame_table(pairs_table(pairs), "Paired tests between the best models"))
    if n_tested:
        blocks.append(save_figure(plot_differences(pairs), fig_dir, "differences", "Paired differences A - B"))
    method = (
        "The paired bootstrap resamples the validation rows (within each class) and scores both models on "
        "the same resample; McNemar's exact test counts the tweets only one model classifies right. "
        "Both need the two studies to share their validation rows."
    )
    sections.append(section("tests", "Significance", *blocks, para_html(method)))
    path = out / COMPARISON_FILE
    write_page(path, "Study comparison", " · ".join(labels), sections)
    log.info("Writing comparison <path=%s>", path)
    return path
