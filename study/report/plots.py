"""The report's own figures: learning curves, ROC and confusion matrix, early stopping, and the data.

As in Optuna's visualization module, data functions (pure, tested on hand-checked cases) are kept apart
from the plot functions that only draw what they return, on a plain matplotlib Figure (Agg; no pyplot
state, nothing to close). The search figures, drawn by Optuna, live in search.py; the page in page.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from study.final.summary import BASELINE_NAMES
from study.report.load import ReportError, trial_order
from study.results import TrialStatus

TSNE_ITERATIONS = 500
# One colour per model in every figure of the report and the comparison: the final model's configuration, and
# each baseline its own (none of them green or red, the verdicts' colours).
FINAL_MODEL_COLOUR = "tab:blue"
BASELINE_COLOURS = dict(zip(BASELINE_NAMES, itertools.cycle(("tab:orange", "tab:purple", "tab:brown", "tab:olive"))))
STATUS_COLOURS = {
    TrialStatus.COMPLETED.value: "tab:blue",
    TrialStatus.STOPPED_EARLY.value: "tab:orange",
    TrialStatus.ERRORED.value: "tab:red",
    TrialStatus.RUNNING.value: "tab:gray",
}


# ------------------------------------------------------------------------------------- learning curves

CURVE_COLUMNS = ("train_macro_f1", "val_macro_f1", "train_loss", "val_loss")


def learning_curves(epochs: pd.DataFrame, trial_ids: Sequence[str]) -> pd.DataFrame:
    """Per-epoch train and validation macro-F1 and loss of the given trials, in the given trial order."""
    rows = epochs[epochs["trial_id"].isin(list(trial_ids))]
    rank = {t: i for i, t in enumerate(trial_ids)}
    out = rows.assign(_rank=rows["trial_id"].map(rank)).sort_values(["_rank", "epoch"])
    return out[["trial_id", "epoch", *CURVE_COLUMNS]].reset_index(drop=True)


def plot_curves(curves: pd.DataFrame, labels: dict[str, str], title: str, best_epoch: int | None = None) -> Figure:
    """Validation (solid) and train (dashed) macro-F1 and loss per epoch, one colour per trial; `best_epoch` marked."""
    # own drawing: Optuna's plot_intermediate_values shows one validation score, not train against validation
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    for i, (tid, g) in enumerate(curves.groupby("trial_id", sort=False)):
        colour = f"C{i % 10}"
        for ax, metric in ((axes[0], "macro_f1"), (axes[1], "loss")):
            ax.plot(g["epoch"], g[f"val_{metric}"], "o-", color=colour, label=labels.get(tid, tid), ms=3)
            ax.plot(g["epoch"], g[f"train_{metric}"], "--", color=colour, alpha=0.6, lw=1)
    for ax, name in ((axes[0], "macro-F1"), (axes[1], "loss")):
        if best_epoch is not None:
            ax.axvline(best_epoch, color="tab:green", lw=1, ls=":", label=f"best epoch ({best_epoch})")
        ax.set(xlabel="epoch", ylabel=name)
        ax.set_title(f"{title}: {name}, validation (solid) and train (dashed)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend(fontsize=7, loc="best")
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
    # own drawing: scikit-learn's RocCurveDisplay draws one binary curve per call, without the class legend
    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.subplots()
    for i, c in enumerate(curves):
        auc = "—" if np.isnan(c.auc) else f"{c.auc:.3g}"
        ax.plot(c.fpr, c.tpr, color=f"C{i % 10}", label=f"{c.label} (AUC {auc})")
    ax.plot([0, 1], [0, 1], color="tab:gray", ls=":", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.set_aspect("equal")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def plot_confusion(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str], title: str) -> Figure:
    """scikit-learn's confusion matrix as counts and row-normalised (the diagonal: each class's recall)."""
    from sklearn.metrics import ConfusionMatrixDisplay

    fig = Figure(figsize=(10, 4.4), layout="constrained")
    for ax, normalize, name in zip(fig.subplots(1, 2), (None, "true"), ("counts", "row-normalised (recall)")):
        ConfusionMatrixDisplay.from_predictions(
            y_true,
            y_pred,
            labels=list(range(len(classes))),
            display_labels=list(classes),
            normalize=normalize,
            values_format="d" if normalize is None else ".2f",
            cmap="Blues",
            colorbar=False,
            xticks_rotation=30,
            ax=ax,
        )
        ax.set_title(f"{title}: {name}", fontsize=10)
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
    epochs_run: int  # trial-epochs run by every trial together
    epochs_full: int  # trial-epochs if every trial had run max_epochs
    epochs_saved: int  # epochs_full - epochs_run
    fraction_saved: float  # epochs_saved / epochs_full
    stopped_early: int  # trials ASHA stopped
    seconds_per_epoch: float  # mean over every epoch run (NaN when unknown)
    seconds_saved: float  # epochs_saved * seconds_per_epoch


def compute_saved(trials: pd.DataFrame, max_epochs: int, epochs: pd.DataFrame) -> ComputeSaved:
    """Trial-epochs run against every trial running to `max_epochs`, and the time that saved."""
    run = int(trials["epochs_run"].fillna(0).sum())
    full = len(trials) * max_epochs
    saved = full - run
    per_epoch = float(epochs["epoch_time_s"].mean())  # NaN where no epoch has a time
    return ComputeSaved(
        epochs_run=run,
        epochs_full=full,
        epochs_saved=saved,
        fraction_saved=saved / full if full else 0.0,
        stopped_early=int((trials["status"] == TrialStatus.STOPPED_EARLY.value).sum()),
        seconds_per_epoch=per_epoch,
        seconds_saved=saved * per_epoch,
    )


def plot_early_stopping(trials: pd.DataFrame, rungs: Sequence[int], max_epochs: int, saved: ComputeSaved) -> Figure:
    """Epochs run per trial in creation order, coloured by status, against ASHA's rungs."""
    # own drawing: Optuna's plot_intermediate_values shows scores per epoch, not where ASHA's rungs cut
    t = trial_order(trials)
    fig = Figure(figsize=(9, min(max(3.0, 0.28 * len(t) + 1.5), 14)), layout="constrained")
    ax = fig.subplots()
    ax.barh(t["order"], t["epochs_run"].fillna(0), color=[STATUS_COLOURS.get(s, "k") for s in t["status"]])
    for r in rungs:
        ax.axvline(r, color="tab:purple", ls="--", lw=1)
    ax.axvline(max_epochs, color="k", lw=1.2)
    ax.set_yticks(t["order"], [str(i)[:8] for i in t["trial_id"]], fontsize=7)
    ax.invert_yaxis()
    ax.set(xlim=(0, max_epochs + 0.5), xlabel="epochs run")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles = [Patch(color=c, label=s) for s, c in STATUS_COLOURS.items() if s in set(t["status"])]
    handles.append(Line2D([], [], color="tab:purple", ls="--", lw=1, label=f"ASHA rungs {list(rungs)}"))
    fig.legend(handles=handles, fontsize=8, loc="outside lower center", ncol=len(handles))
    ax.set_title(
        f"Epochs per trial: {saved.epochs_run} of {saved.epochs_full} trial-epochs run "
        f"({saved.fraction_saved:.0%} saved by stopping)",
        fontsize=10,
    )
    return fig


# ------------------------------------------------------------------------------------------------- data


def tsne_points(vectors: np.ndarray, labels: np.ndarray, seed: int = 0) -> pd.DataFrame:
    """The vectors (N, D) mapped to 2-D by t-SNE: columns x, y, label.

    Raises:
        ReportError: fewer than 5 vectors.
    """
    from sklearn.manifold import TSNE

    if len(vectors) < 5:
        raise ReportError(f"t-SNE needs at least 5 tweets with known words, but got {len(vectors)}.")
    perplexity = float(min(30.0, (len(vectors) - 1) / 3))
    xy = TSNE(
        2, perplexity=perplexity, init="pca", random_state=seed, learning_rate="auto", max_iter=TSNE_ITERATIONS
    ).fit_transform(np.asarray(vectors, dtype=np.float64))
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "label": np.asarray(labels)})


def plot_wordclouds(before: pd.DataFrame, after: pd.DataFrame, max_words: int = 150) -> Figure:
    """Word clouds of token frequencies before and after cleaning (DejaVu Sans: it has Greek glyphs)."""
    from matplotlib import font_manager
    from wordcloud import WordCloud

    # own drawing, as the next two: neither Optuna nor scikit-learn draws texts or their vectors
    font = font_manager.findfont("DejaVu Sans")
    fig = Figure(figsize=(12, 4.2), layout="constrained")
    for ax, freq, title in zip(fig.subplots(1, 2), (before, after), ("before cleaning", "after cleaning")):
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
    return fig


def plot_token_frequencies(before: pd.DataFrame, after: pd.DataFrame, top: int = 20) -> Figure:
    fig = Figure(figsize=(11, 0.26 * top + 1.8), layout="constrained")
    for ax, freq, title, colour in zip(
        fig.subplots(1, 2), (before.head(top), after.head(top)), ("before", "after"), ("tab:gray", "tab:blue")
    ):
        ax.barh(range(len(freq)), freq["count"], color=colour)
        ax.set_yticks(range(len(freq)), freq["token"], fontsize=8)
        ax.invert_yaxis()
        ax.set(xlabel="count", title=f"Top {top} tokens {title} cleaning")
    return fig


def plot_tsne(points: pd.DataFrame, classes: Sequence[str], title: str) -> Figure:
    fig = Figure(figsize=(7, 6), layout="constrained")
    ax = fig.subplots()
    for c, name in enumerate(classes):
        g = points[points["label"] == c]
        ax.scatter(g["x"], g["y"], s=8, alpha=0.7, color=f"C{c % 10}", label=f"{name} ({len(g)})")
    ax.set(xticks=[], yticks=[])
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, markerscale=2)
    return fig
