"""`python -m study.report results/<name>`: the report of one study, from its Parquet and JSON files only.

Two kinds of functions live here, as in Optuna's visualization module: pure info functions that turn the
results into numbers and DataFrames (tested on hand-checked cases), and plot functions that only draw what
an info function returned (matplotlib, Agg, no pyplot state). report_html.write_report puts them
together into `results/<name>/report.html` and `results/<name>/figures/*.png`.
No Ray and no checkpoints are needed, so a report can be rerun on a laptop after copying `results/`.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, NullFormatter
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from study.console import setup_console
from study.results import (
    EPOCHS_FILE,
    PREDICTIONS_FILE,
    TRIALS_FILE,
    ResultsError,
    TrialStatus,
    read_study,
    read_table,
)
from trainables.data import DataError

log = logging.getLogger(__name__)

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT = 0, 1, 2
REPORT_FILE, FIGURES_DIR = "report.html", "figures"
MIN_IMPORTANCE_TRIALS = 3  # fewer completed trials give Optuna's evaluators nothing to fit
TSNE_MAX_POINTS = 600  # t-SNE's cost grows quickly with the points; a sample shows the structure
TSNE_ITERATIONS = 500
STATUS_COLOURS = {
    TrialStatus.COMPLETED.value: "tab:blue",
    TrialStatus.STOPPED_EARLY.value: "tab:orange",
    TrialStatus.ERRORED.value: "tab:red",
    TrialStatus.RUNNING.value: "tab:gray",
}


class ReportError(ValueError):
    """A bad argument or input of a report; the message names it and the fix."""


# --------------------------------------------------------------------------------------------- loading


@dataclass(frozen=True, eq=False)
class StudyResults:
    """The files of one results folder, read and schema-checked."""

    folder: Path
    study: dict[str, Any]  # study.json
    trials: pd.DataFrame  # trials.parquet
    epochs: pd.DataFrame  # epochs.parquet
    predictions: pd.DataFrame  # predictions.parquet

    @property
    def name(self) -> str:
        return str(self.study.get("name") or self.folder.name)

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.study.get("classes") or ())

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.study.get("settings") or {})


def load_results(folder: str | Path) -> StudyResults:
    """Read study.json and the three Parquet files of `folder`.

    Raises:
        ResultsError: not a study folder, a missing or unreadable file, or an unknown schema version.
    """
    folder = Path(folder)
    study = read_study(folder)
    return StudyResults(
        folder=folder,
        study=study,
        trials=read_table(folder / TRIALS_FILE),
        epochs=read_table(folder / EPOCHS_FILE),
        predictions=read_table(folder / PREDICTIONS_FILE),
    )


# ----------------------------------------------------------------------------------- summary and trials


def trial_order(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials in the order they were created, with a 0-based `order` column.

    The order is `trial_number` where every row has a distinct non-negative one, else the file's row order.
    """
    numbers = trials["trial_number"]
    if len(trials) and numbers.notna().all() and (numbers >= 0).all() and numbers.is_unique:
        trials = trials.sort_values("trial_number", kind="stable")
    out = trials.reset_index(drop=True)
    return out.assign(order=np.arange(len(out)))


def scored(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials with a finite best validation macro-F1, best first (ties: the earlier trial first)."""
    t = trial_order(trials)
    t = t[np.isfinite(t["best_val_macro_f1"].astype(float))]
    return t.sort_values(["best_val_macro_f1", "order"], ascending=[False, True], kind="stable")


def best_trial(trials: pd.DataFrame) -> pd.Series:
    """The trial with the highest best validation macro-F1.

    Raises:
        ResultsError: no trial has a validation score.
    """
    s = scored(trials)
    if s.empty:
        counts = trials["status"].value_counts().to_dict()
        raise ResultsError(f"the study has no trial with a validation score (trials by status: {counts}); no report.")
    return s.iloc[0]


def top_trials(trials: pd.DataFrame, k: int) -> pd.DataFrame:
    """The `k` best trials by best validation macro-F1."""
    if k < 1:
        raise ReportError(f"`top` must be >= 1, but got {k}.")
    return scored(trials).head(k)


def status_counts(trials: pd.DataFrame) -> dict[str, int]:
    """Trials per status, every status present (0 where none), plus `total`."""
    counts = trials["status"].value_counts()
    out = {s.value: int(counts.get(s.value, 0)) for s in TrialStatus}
    out["total"] = len(trials)
    return out


def searched_params(results: StudyResults) -> dict[str, BaseDistribution]:
    """The searched hyperparameters and their distributions (the fixed ones are left out).

    The names are study.json's; the distributions come from the named search space when it still has
    those names, else they are inferred from the values the trials took.
    """
    space = results.study.get("space") or {}
    names = list((space.get("params") or {}).keys())
    try:
        from search_spaces import get_space

        known = get_space(space.get("name", "")).params
    except ValueError:
        known = {}
    if names and set(names) <= set(known):
        return {k: known[k] for k in names}
    if not names:  # an older study.json: every param column that varies
        names = [c.removeprefix("params_") for c in results.trials.columns if c.startswith("params_")]
        names = [n for n in names if results.trials[f"params_{n}"].dropna().nunique() > 1]
    return {n: infer_distribution(results.trials[f"params_{n}"]) for n in names}


def infer_distribution(values: pd.Series) -> BaseDistribution:
    """A distribution that holds every value of a params_* column: categorical for text and flags, else a range."""
    v = values.dropna()
    if v.empty or v.dtype == object or v.dtype == bool or pd.api.types.is_string_dtype(v):
        return CategoricalDistribution(sorted({x.item() if hasattr(x, "item") else x for x in v}, key=str) or [None])
    if pd.api.types.is_integer_dtype(v):
        lo, hi = int(v.min()), int(v.max())
        return IntDistribution(lo, max(hi, lo))
    lo, hi = float(v.min()), float(v.max())
    return FloatDistribution(lo, hi if hi > lo else lo + 1e-12)


@dataclass(frozen=True)
class Summary:
    trial_id: str
    status: str
    best_epoch: int
    epochs_run: int
    metrics: dict[str, float]  # validation macro_f1, auc, accuracy, loss at the best epoch
    recall_per_class: dict[str, float]  # class -> validation recall at the best epoch
    f1_per_class: dict[str, float]
    searched: dict[str, Any]  # hyperparameter -> value
    fixed: dict[str, Any]
    counts: dict[str, int]  # status -> trials, and total
    trial_epochs: int  # epochs run by all trials together
    wall_time_s: float | None


def summary(results: StudyResults) -> Summary:
    """The best trial's scores and hyperparameters and the study's trial counts."""
    best = best_trial(results.trials)
    params = searched_params(results)
    e = results.epochs
    row = e[(e["trial_id"] == best["trial_id"]) & (e["epoch"] == best["best_epoch"])]
    classes = results.classes
    recall = list(row["val_recall_per_class"].iloc[0]) if len(row) else []
    f1 = list(row["val_f1_per_class"].iloc[0]) if len(row) else []
    param_cols = [c for c in results.trials.columns if c.startswith("params_")]
    values = {c.removeprefix("params_"): _plain(best[c]) for c in param_cols}
    return Summary(
        trial_id=str(best["trial_id"]),
        status=str(best["status"]),
        best_epoch=int(best["best_epoch"]),
        epochs_run=int(best["epochs_run"]),
        metrics={m: float(best[f"best_val_{m}"]) for m in ("macro_f1", "auc", "accuracy", "loss")},
        recall_per_class={c: float(r) for c, r in zip(classes, recall, strict=False)},
        f1_per_class={c: float(r) for c, r in zip(classes, f1, strict=False)},
        searched={k: values.get(k) for k in params},
        fixed={k: v for k, v in values.items() if k not in params and v is not None},
        counts=status_counts(results.trials),
        trial_epochs=int(results.trials["epochs_run"].fillna(0).sum()),
        wall_time_s=results.study.get("wall_time_s"),
    )


def _fmt(value: float, digits: int = 3) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


# ------------------------------------------------------------------------------------- learning curves

CURVE_COLUMNS = ("train_macro_f1", "val_macro_f1", "train_loss", "val_loss")


def learning_curves(epochs: pd.DataFrame, trial_ids: Sequence[str]) -> pd.DataFrame:
    """Per-epoch train and validation macro-F1 and loss of the given trials, in the given trial order."""
    rows = epochs[epochs["trial_id"].isin(list(trial_ids))]
    rank = {t: i for i, t in enumerate(trial_ids)}
    out = rows.assign(_rank=rows["trial_id"].map(rank)).sort_values(["_rank", "epoch"])
    return out[["trial_id", "epoch", *CURVE_COLUMNS]].reset_index(drop=True)


def plot_best_curves(curves: pd.DataFrame, best_epoch: int, title: str) -> Figure:
    """F1 and loss, train against validation, of one trial; the best epoch marked."""
    fig = Figure(figsize=(10, 3.8))
    axes = fig.subplots(1, 2)
    for ax, metric, label in ((axes[0], "macro_f1", "macro-F1"), (axes[1], "loss", "loss")):
        ax.plot(curves["epoch"], curves[f"train_{metric}"], "o--", label="train", color="tab:gray")
        ax.plot(curves["epoch"], curves[f"val_{metric}"], "o-", label="validation", color="tab:blue")
        ax.axvline(best_epoch, color="tab:green", lw=1, ls=":", label=f"best epoch ({best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_title(f"{title}: macro-F1")
    axes[1].set_title(f"{title}: loss")
    fig.tight_layout()
    return fig


def plot_top_curves(curves: pd.DataFrame, labels: dict[str, str]) -> Figure:
    """Validation (solid) and train (dashed) macro-F1 and loss of several trials, one colour per trial."""
    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2)
    for i, (tid, g) in enumerate(curves.groupby("trial_id", sort=False)):
        colour = f"C{i % 10}"
        for ax, metric in ((axes[0], "macro_f1"), (axes[1], "loss")):
            ax.plot(g["epoch"], g[f"val_{metric}"], "o-", color=colour, label=labels.get(tid, tid), ms=3)
            ax.plot(g["epoch"], g[f"train_{metric}"], "--", color=colour, alpha=0.6, lw=1)
    for ax, name in ((axes[0], "macro-F1"), (axes[1], "loss")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(f"{name}: validation (solid) and train (dashed)")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ the best model's predictions


def trial_predictions(predictions: pd.DataFrame, trial_id: str) -> tuple[np.ndarray, np.ndarray]:
    """The validation labels (N,) and class probabilities (N, C) saved for a trial, in row order.

    Raises:
        ReportError: predictions.parquet holds no rows of that trial.
    """
    p = predictions[predictions["trial_id"] == trial_id].sort_values("row")
    if p.empty:
        raise ReportError(f"predictions.parquet has no rows of trial {trial_id!r}.")
    return p["label"].to_numpy(np.int64), np.stack(p["probs"].to_numpy()).astype(np.float64)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) counts; row = true class, column = predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def row_normalise(cm: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the recall of each class on the diagonal); empty rows stay 0."""
    sums = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, sums, out=np.zeros(cm.shape, dtype=float), where=sums > 0)


@dataclass(frozen=True, eq=False)
class RocCurve:
    label: str  # the positive class
    fpr: np.ndarray  # (K,) false positive rates
    tpr: np.ndarray  # (K,) true positive rates
    auc: float  # NaN when the class is absent (or alone) in the labels


def roc_curves(y_true: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> list[RocCurve]:
    """One-vs-rest ROC curve and AUC of each class."""
    from sklearn.metrics import auc, roc_curve

    out = []
    for c, name in enumerate(classes):
        pos = np.asarray(y_true) == c
        if pos.all() or not pos.any():
            out.append(RocCurve(name, np.array([0.0, 1.0]), np.array([0.0, 1.0]), float("nan")))
            continue
        fpr, tpr, _ = roc_curve(pos.astype(int), probs[:, c])
        out.append(RocCurve(name, fpr, tpr, float(auc(fpr, tpr))))
    return out


def plot_roc(curves: Sequence[RocCurve], title: str) -> Figure:
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    for i, c in enumerate(curves):
        ax.plot(c.fpr, c.tpr, color=f"C{i % 10}", label=f"{c.label} (AUC {_fmt(c.auc, 3)})")
    ax.plot([0, 1], [0, 1], color="tab:gray", ls=":", lw=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.set_aspect("equal")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_confusion(cm: np.ndarray, classes: Sequence[str], title: str) -> Figure:
    """Counts and row-normalised proportions side by side."""
    fig = Figure(figsize=(10, 4.4))
    axes = fig.subplots(1, 2)
    for ax, data, name in ((axes[0], cm, "counts"), (axes[1], row_normalise(cm), "row-normalised (recall)")):
        ax.imshow(data, cmap="Blues", vmin=0)
        for (i, j), v in np.ndenumerate(data):
            text = f"{v:d}" if data.dtype.kind == "i" else f"{v:.2f}"
            dark = v > data.max() / 2 if data.max() > 0 else False
            ax.text(j, i, text, ha="center", va="center", color="white" if dark else "black", fontsize=9)
        ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(classes)), classes, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{title}: {name}", fontsize=10)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------ search


def optimisation_history(trials: pd.DataFrame) -> pd.DataFrame:
    """Per trial in creation order: its best validation macro-F1 and the best of all trials so far."""
    t = trial_order(trials)
    value = t["best_val_macro_f1"].astype(float)
    best = value.where(np.isfinite(value)).cummax().ffill()
    return pd.DataFrame(
        {"order": t["order"], "trial_id": t["trial_id"], "status": t["status"], "value": value, "best_so_far": best}
    )


def plot_history(history: pd.DataFrame) -> Figure:
    fig = Figure(figsize=(9, 4))
    ax = fig.subplots()
    for status, g in history.groupby("status"):
        ax.scatter(g["order"], g["value"], color=STATUS_COLOURS.get(status, "k"), label=status, s=25, zorder=3)
    ax.step(history["order"], history["best_so_far"], where="post", color="tab:green", label="best so far")
    ax.set_xlabel("trial (creation order)")
    ax.set_ylabel("best validation macro-F1")
    ax.set_title("Optimisation history")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def _is_log(d: BaseDistribution) -> bool:
    return bool(getattr(d, "log", False))


def _positions(values: pd.Series, d: BaseDistribution) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """Values as numbers on an axis: categorical choices at 0, 1, 2, ...; numbers as they are."""
    if isinstance(d, CategoricalDistribution):
        labels = [str(c) for c in d.choices]
        index = {lab: i for i, lab in enumerate(labels)}
        pos = np.array([index.get(str(_plain(v)), np.nan) for v in values], dtype=float)
        return pos, [(float(i), lab) for i, lab in enumerate(labels)]
    return values.astype(float).to_numpy(), []


def slice_data(trials: pd.DataFrame, params: dict[str, BaseDistribution]) -> pd.DataFrame:
    """Long table (param, x, label, value, status, order) for one slice plot per searched hyperparameter.

    `x` is the value on the plot's axis (categorical choices at their index), `label` the value as text.
    Trials without a validation score are left out.
    """
    t = trial_order(trials)
    t = t[np.isfinite(t["best_val_macro_f1"].astype(float))]
    parts = []
    for name, d in params.items():
        x, _ = _positions(t[f"params_{name}"], d)
        parts.append(
            pd.DataFrame(
                {
                    "param": name,
                    "x": x,
                    "label": [str(_plain(v)) for v in t[f"params_{name}"]],
                    "value": t["best_val_macro_f1"].astype(float).to_numpy(),
                    "status": t["status"].to_numpy(),
                    "order": t["order"].to_numpy(),
                }
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["param", "x", "label", "value"])


def plot_slices(data: pd.DataFrame, params: dict[str, BaseDistribution]) -> Figure:
    n = max(len(params), 1)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(4.2 * cols, 3.4 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    rng = np.random.default_rng(0)
    sc = None
    for ax, (name, d) in zip(axes, params.items(), strict=False):
        g = data[data["param"] == name]
        x = g["x"].to_numpy(dtype=float)
        if isinstance(d, CategoricalDistribution):
            x = x + rng.uniform(-0.12, 0.12, len(x))  # jitter: trials with the same choice stay visible
            ax.set_xticks(range(len(d.choices)), [str(c) for c in d.choices])
        elif _is_log(d):
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a short log axis overlap
        sc = ax.scatter(x, g["value"], c=g["order"], cmap="viridis", edgecolors="k", linewidths=0.4, s=30)
        ax.set_title(name)
        ax.grid(alpha=0.3)
    for ax in axes[::cols]:
        ax.set_ylabel("best val macro-F1")
    for ax in axes[len(params) :]:
        ax.set_visible(False)
    if sc is not None:
        fig.colorbar(sc, ax=list(axes[: len(params)]), label="trial (creation order)", shrink=0.8)
    fig.suptitle("Slice plots: each searched hyperparameter against the trial's score")
    return fig


@dataclass(frozen=True, eq=False)
class ParallelData:
    axes: tuple[str, ...]  # the searched hyperparameters, then "val_macro_f1"
    positions: pd.DataFrame  # (trials, axes), each axis scaled to [0, 1]
    values: np.ndarray  # (trials,) best validation macro-F1, for the colour
    ticks: dict[str, list[tuple[float, str]]]  # axis -> (position in [0, 1], label)


def parallel_coordinates(trials: pd.DataFrame, params: dict[str, BaseDistribution]) -> ParallelData:
    """Every scored trial as a polyline across the hyperparameter axes and its score, each axis in [0, 1].

    Numbers are scaled between the distribution's bounds (on a log scale for log distributions);
    categorical choices are spread evenly.
    """
    t = trial_order(trials)
    t = t[np.isfinite(t["best_val_macro_f1"].astype(float))]
    cols, ticks = {}, {}
    for name, d in params.items():
        x, cat_ticks = _positions(t[f"params_{name}"], d)
        if isinstance(d, CategoricalDistribution):
            span = max(len(d.choices) - 1, 1)
            cols[name] = x / span
            ticks[name] = [(p / span, lab) for p, lab in cat_ticks]
            continue
        lo, hi = float(d.low), float(d.high)
        f = np.log if _is_log(d) else (lambda v: v)
        span = (f(hi) - f(lo)) or 1.0
        cols[name] = (f(np.asarray(x, dtype=float)) - f(lo)) / span
        ticks[name] = [(0.0, _fmt(lo, 3)), (1.0, _fmt(hi, 3))]
    v = t["best_val_macro_f1"].astype(float).to_numpy()
    lo, hi = (float(v.min()), float(v.max())) if len(v) else (0.0, 1.0)
    cols["val_macro_f1"] = (v - lo) / ((hi - lo) or 1.0)
    ticks["val_macro_f1"] = [(0.0, _fmt(lo, 3)), (1.0, _fmt(hi, 3))]
    return ParallelData(tuple(cols), pd.DataFrame(cols, index=t["trial_id"].to_numpy()), v, ticks)


def plot_parallel(data: ParallelData) -> Figure:
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    fig = Figure(figsize=(max(6, 1.6 * len(data.axes)), 4.5))
    ax = fig.subplots()
    norm = Normalize(float(data.values.min()), float(data.values.max()) or 1.0) if len(data.values) else None
    cmap = colormaps["viridis"]
    xs = np.arange(len(data.axes))
    for order in np.argsort(data.values):  # the best drawn last, on top
        row = data.positions.iloc[order].to_numpy(dtype=float)
        ax.plot(xs, row, color=cmap(norm(data.values[order])) if norm else "k", alpha=0.8, lw=1.2)
    for i, name in enumerate(data.axes):
        ax.axvline(i, color="k", lw=0.6)
        for pos, label in data.ticks.get(name, []):
            ax.text(i + 0.03, pos, label, fontsize=7, va="center")
    ax.set_xticks(xs, data.axes, rotation=20, fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(data.axes) - 0.5)
    ax.set_title("Parallel coordinates (colour: best validation macro-F1)")
    if norm is not None:
        from matplotlib.cm import ScalarMappable

        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="best val macro-F1")
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class Importances:
    by_evaluator: dict[str, dict[str, float]]  # evaluator name -> hyperparameter -> importance (sums to 1)
    notes: tuple[str, ...]  # why some or all importances are missing, and the evaluators' own warnings
    n_trials: int  # completed trials they were computed from


def param_importances(
    trials: pd.DataFrame, epochs: pd.DataFrame, params: dict[str, BaseDistribution], seed: int = 0
) -> Importances:
    """Hyperparameter importances by Optuna's fANOVA and mean-decrease-impurity evaluators.

    They run on an Optuna study rebuilt from the Parquet rows, over completed trials only (ASHA-stopped trials
    have no final value in Optuna's terms). With fewer than MIN_IMPORTANCE_TRIALS completed trials, or no
    hyperparameter that took more than one value, the result holds only a note.
    """
    import optuna
    from optuna.importance import (
        FanovaImportanceEvaluator,
        MeanDecreaseImpurityImportanceEvaluator,
        get_param_importances,
    )

    from study.optuna_study import build_study

    done = trials[(trials["status"] == TrialStatus.COMPLETED.value) & np.isfinite(trials["best_val_macro_f1"])]
    n = len(done)
    if n < MIN_IMPORTANCE_TRIALS:
        return Importances(
            {},
            (
                f"Hyperparameter importance needs at least {MIN_IMPORTANCE_TRIALS} completed trials, but the study has "
                f"{n}; run more trials (`--num-samples`) to see it.",
            ),
            n,
        )
    varying = {k: d for k, d in params.items() if done[f"params_{k}"].astype(str).nunique() > 1}
    notes = []
    single = [k for k in params if k not in varying]
    if single:
        notes.append(
            f"Left out of the importances: {', '.join(single)} (one value in every completed trial, so no "
            "variation to attribute)."
        )
    if not varying:
        return Importances({}, (*notes, "No searched hyperparameter varied across completed trials."), n)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = build_study(trials, epochs, params)
    out: dict[str, dict[str, float]] = {}
    evaluators = {
        "fANOVA": FanovaImportanceEvaluator(seed=seed),
        "mean decrease impurity": MeanDecreaseImpurityImportanceEvaluator(seed=seed),
    }
    for name, evaluator in evaluators.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                values = get_param_importances(study, evaluator=evaluator, params=list(varying))
            except (ValueError, RuntimeError, ZeroDivisionError) as e:
                notes.append(f"{name}: Optuna could not compute importances ({e}).")
                continue
        notes.extend(f"{name}: {w.message}" for w in caught if issubclass(w.category, UserWarning))
        vals = {k: float(v) for k, v in values.items()}
        if all(math.isfinite(v) for v in vals.values()):
            out[name] = vals
        else:
            notes.append(f"{name}: the importances are not finite (the scores may not vary); left out.")
    return Importances(out, tuple(dict.fromkeys(notes)), n)


def plot_importances(imp: Importances) -> Figure:
    names = list(next(iter(imp.by_evaluator.values())))
    fig = Figure(figsize=(8, 0.5 * len(names) + 2))
    ax = fig.subplots()
    height = 0.8 / len(imp.by_evaluator)
    y = np.arange(len(names))
    for i, (ev, values) in enumerate(imp.by_evaluator.items()):
        ax.barh(y + i * height, [values.get(n, 0.0) for n in names], height=height, label=ev, color=f"C{i}")
    ax.set_yticks(y + height * (len(imp.by_evaluator) - 1) / 2, names)
    ax.invert_yaxis()
    ax.set_xlabel("importance (share of the score's variance)")
    ax.set_title(f"Hyperparameter importance ({imp.n_trials} completed trials)")
    ax.legend(fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------- early stopping


def asha_rungs(grace_period: int, reduction_factor: int, max_epochs: int) -> list[int]:
    """ASHA's milestones: grace_period * reduction_factor**k for k = 0, 1, ... up to max_epochs."""
    if grace_period < 1 or reduction_factor < 2:
        raise ReportError(
            f"`grace_period` must be >= 1 and `reduction_factor` >= 2, but got {grace_period} and {reduction_factor}."
        )
    rungs, r = [], grace_period
    while r <= max_epochs:
        rungs.append(r)
        r *= reduction_factor
    return rungs


@dataclass(frozen=True)
class ComputeSaved:
    trials: int
    max_epochs: int
    epochs_run: int  # trial-epochs run by every trial together
    epochs_full: int  # trial-epochs if every trial had run max_epochs
    epochs_saved: int  # epochs_full - epochs_run
    fraction_saved: float  # epochs_saved / epochs_full
    stopped_early: int  # trials ASHA stopped
    seconds_per_epoch: float  # mean over every epoch run (NaN when unknown)
    seconds_saved: float  # epochs_saved * seconds_per_epoch


def compute_saved(trials: pd.DataFrame, max_epochs: int, epochs: pd.DataFrame | None = None) -> ComputeSaved:
    """Trial-epochs run against every trial running to `max_epochs`, and the time that saved."""
    run = int(trials["epochs_run"].fillna(0).sum())
    full = len(trials) * max_epochs
    saved = full - run
    per_epoch = float("nan")
    if epochs is not None and len(epochs) and epochs["epoch_time_s"].notna().any():
        per_epoch = float(epochs["epoch_time_s"].dropna().mean())
    return ComputeSaved(
        trials=len(trials),
        max_epochs=max_epochs,
        epochs_run=run,
        epochs_full=full,
        epochs_saved=saved,
        fraction_saved=saved / full if full else 0.0,
        stopped_early=int((trials["status"] == TrialStatus.STOPPED_EARLY.value).sum()),
        seconds_per_epoch=per_epoch,
        seconds_saved=saved * per_epoch,
    )


def epochs_per_trial(trials: pd.DataFrame) -> pd.DataFrame:
    """Per trial in creation order: epochs run, status and best validation macro-F1."""
    t = trial_order(trials)
    return t[["order", "trial_id", "status", "epochs_run", "best_val_macro_f1"]].reset_index(drop=True)


def plot_early_stopping(per_trial: pd.DataFrame, rungs: Sequence[int], max_epochs: int, saved: ComputeSaved) -> Figure:
    n = len(per_trial)
    fig = Figure(figsize=(9, min(max(3.0, 0.28 * n + 1.5), 14)))
    ax = fig.subplots()
    colours = [STATUS_COLOURS.get(s, "k") for s in per_trial["status"]]
    ax.barh(per_trial["order"], per_trial["epochs_run"].fillna(0), color=colours)
    for r in rungs:
        ax.axvline(r, color="tab:purple", ls="--", lw=1)
    ax.axvline(max_epochs, color="k", lw=1.2)
    ax.set_yticks(per_trial["order"], [str(t)[:8] for t in per_trial["trial_id"]], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, max_epochs + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epochs run")
    present = set(per_trial["status"])
    handles = [Patch(color=c, label=s) for s, c in STATUS_COLOURS.items() if s in present]
    handles.append(Line2D([], [], color="tab:purple", ls="--", lw=1, label=f"ASHA rungs {list(rungs)}"))
    ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=len(handles))
    ax.set_title(
        f"Epochs per trial: {saved.epochs_run} of {saved.epochs_full} trial-epochs run "
        f"({saved.fraction_saved:.0%} saved by stopping)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------- data


@dataclass(frozen=True, eq=False)
class TrainingTexts:
    source: str  # the CSV read
    texts: tuple[str, ...]  # every labelled tweet of the file (party prefix as the study used it)
    labels: np.ndarray  # (N,) class indices
    classes: tuple[str, ...]
    w2v_texts: tuple[str, ...]  # the texts Word2Vec learnt from in the study: training split + unlabelled


def data_settings(results: StudyResults):
    from study.config import ConfigError, DataSettings

    s = results.settings
    kwargs = {f.name: s[f.name] for f in fields(DataSettings) if f.name in s}
    if "clean_off" in kwargs:
        kwargs["clean_off"] = tuple(kwargs["clean_off"])
    try:
        return DataSettings(**kwargs)
    except (ConfigError, TypeError) as e:
        raise ReportError(f"the data settings in study.json cannot be used: {e}") from None


def load_training_texts(results: StudyResults, train: str | Path | None = None) -> tuple[TrainingTexts | None, str]:
    """The study's labelled training file (or `train`), with a note that says where it came from or why not.

    Demo data that is gone from the cache is generated again from the study's demo_rows and data_seed.

    Raises:
        DataError: `train` was given but cannot be read.
        ReportError: `train` has other classes than the study.
    """
    from trainables.data import DataSpec, read_labelled, read_unlabelled, stratified_split
    from trainables.demo import write_demo
    from trainables.vectorize import default_cache_dir

    s = data_settings(results)
    data = results.study.get("data") or {}
    demo = bool(data.get("demo"))
    spec = DataSpec() if demo else s.data_spec()  # the demo data has the original's columns and labels
    note = ""
    if train is not None:
        path = Path(train)
        full = read_labelled(path, spec)
        if results.classes and full.classes != results.classes:
            raise ReportError(
                f"`--train` {str(path)!r} has classes {list(full.classes)}, but the study has "
                f"{list(results.classes)}; give the study's training file."
            )
        return TrainingTexts(str(path), full.texts, full.labels, full.classes, full.texts), f"Read from {path}."
    path = Path(data.get("train_path") or "")
    if not data.get("train_path") or not path.is_file():
        if not demo:
            where = f" {str(path)!r}" if data.get("train_path") else ""
            return None, (
                f"The training file{where} recorded in study.json is not on this machine; "
                "rerun with `--train FILE` to add word clouds, token frequencies and the t-SNE map."
            )
        path, _ = write_demo(
            default_cache_dir() / "demo" / f"rows{s.demo_rows}-seed{s.data_seed}", s.demo_rows, s.data_seed
        )
        note = f"The demo data was generated again (demo_rows={s.demo_rows}, data_seed={s.data_seed}) at {path}. "
    try:
        full = read_labelled(path, spec)
    except DataError as e:
        return None, f"The training file recorded in study.json cannot be read: {e}"
    w2v_texts: tuple[str, ...] = full.texts
    if not s.valid:  # the study split the file: Word2Vec saw only the training part
        w2v_texts = stratified_split(full, s.valid_fraction, seed=s.data_seed)[0].texts
    unlabelled = data.get("unlabelled_path")
    if unlabelled and Path(unlabelled).is_file():
        w2v_texts = w2v_texts + tuple(read_unlabelled(unlabelled, spec))
    return TrainingTexts(str(path), full.texts, full.labels, full.classes, w2v_texts), note + f"Read from {path}."


def raw_tokens(texts: Sequence[str]) -> list[list[str]]:
    """Tweets split on whitespace, as they are: the 'before cleaning' view."""
    return [t.split() for t in texts]


def token_frequencies(corpus: Sequence[Sequence[str]], top: int | None = None) -> pd.DataFrame:
    """Token counts over a tokenised corpus, most frequent first (ties in alphabetical order)."""
    counts = Counter(tok for tokens in corpus for tok in tokens)
    df = pd.DataFrame(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])), columns=["token", "count"])
    return df.head(top) if top is not None else df


def tsne_points(
    vectors: np.ndarray, labels: np.ndarray, max_points: int = TSNE_MAX_POINTS, seed: int = 0
) -> pd.DataFrame:
    """A seeded sample of at most `max_points` non-zero vectors, mapped to 2-D by t-SNE (columns x, y, label).

    All-zero vectors (tweets with no word known to Word2Vec) are left out.
    """
    from sklearn.manifold import TSNE

    keep = np.flatnonzero(np.abs(vectors).sum(axis=1) > 0)
    rng = np.random.default_rng(seed)
    if len(keep) > max_points:
        keep = np.sort(rng.choice(keep, max_points, replace=False))
    if len(keep) < 5:
        raise ReportError(f"t-SNE needs at least 5 tweets with known words, but got {len(keep)}.")
    perplexity = float(min(30.0, (len(keep) - 1) / 3))
    xy = TSNE(
        2, perplexity=perplexity, init="pca", random_state=seed, learning_rate="auto", max_iter=TSNE_ITERATIONS
    ).fit_transform(vectors[keep].astype(np.float64))
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "label": labels[keep], "index": keep})


def plot_wordclouds(before: pd.DataFrame, after: pd.DataFrame, max_words: int = 150) -> Figure:
    """Word clouds of token frequencies before and after cleaning (DejaVu Sans: it has Greek glyphs)."""
    from matplotlib import font_manager
    from wordcloud import WordCloud

    font = font_manager.findfont("DejaVu Sans")
    fig = Figure(figsize=(12, 4.2))
    axes = fig.subplots(1, 2)
    for ax, freq, title in ((axes[0], before, "before cleaning"), (axes[1], after, "after cleaning")):
        ax.axis("off")
        ax.set_title(title)
        top = dict(zip(freq["token"].head(max_words), freq["count"].head(max_words), strict=True))
        if not top:
            ax.text(0.5, 0.5, "no tokens", ha="center", va="center")
            continue
        wc = WordCloud(
            font_path=font, width=700, height=380, background_color="white", random_state=0, max_words=max_words
        )
        ax.imshow(wc.generate_from_frequencies(top).to_array(), interpolation="bilinear")
    fig.tight_layout()
    return fig


def plot_token_frequencies(before: pd.DataFrame, after: pd.DataFrame, top: int = 20) -> Figure:
    fig = Figure(figsize=(11, 0.26 * top + 1.8))
    axes = fig.subplots(1, 2)
    for ax, freq, title, colour in (
        (axes[0], before.head(top), "before cleaning", "tab:gray"),
        (axes[1], after.head(top), "after cleaning", "tab:blue"),
    ):
        ax.barh(range(len(freq)), freq["count"], color=colour)
        ax.set_yticks(range(len(freq)), freq["token"], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("count")
        ax.set_title(f"Top {top} tokens {title}")
    fig.tight_layout()
    return fig


def plot_tsne(points: pd.DataFrame, classes: Sequence[str], title: str) -> Figure:
    fig = Figure(figsize=(7, 6))
    ax = fig.subplots()
    for c, name in enumerate(classes):
        g = points[points["label"] == c]
        ax.scatter(g["x"], g["y"], s=8, alpha=0.7, color=f"C{c % 10}", label=f"{name} ({len(g)})")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, markerscale=2)
    fig.tight_layout()
    return fig


# -------------------------------------------------------------------------------------------------- CLI


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, but got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, but got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m study.report",
        description="Write FOLDER/report.html and FOLDER/figures/*.png from a study's results files.",
        epilog="exit codes: 0 done, 2 bad input (not a study folder, missing file, unknown schema), 1 other errors",
    )
    p.add_argument("folder", help="a study's results folder, e.g. results/<name>")
    p.add_argument("--top", type=_positive_int, default=5, metavar="K", help="trials in the top-K curves and table")
    p.add_argument("--train", metavar="FILE", help="the training CSV, when the one in study.json is not here")
    return p


def main(argv: list[str] | None = None) -> int:
    setup_console()
    args = parser().parse_args(argv)
    from study.report_html import write_report

    try:
        path = write_report(args.folder, args.top, args.train)
    except (ResultsError, ReportError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as e:  # noqa: BLE001 - the last line of defence: say what failed, exit 1
        log.exception("report failed: %s", e)
        return EXIT_ERROR
    print(path)
    return EXIT_OK


if __name__ == "__main__":
    # `python -m` runs this file as __main__, a second copy of the module; report_html raises the exceptions
    # of the imported study.report, so run that copy's main for its `except` clauses to catch them.
    from study.report import main as _main

    sys.exit(_main())
