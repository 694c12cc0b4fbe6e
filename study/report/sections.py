"""The study report: its sections, put together from load.py's numbers and the figures of plots.py and
search.py, and `write_report`, which writes `results/<name>/report.html` and `results/<name>/figures/*.png`.

The HTML building blocks live in page.py; the command line in __main__.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState

from study.data_summary import CLEAN, DATA_FILE, MAP, RAW
from study.report import plots, search
from study.report.final import final_section
from study.report.load import (
    FIGURES_DIR,
    ReportError,
    StudyResults,
    Summary,
    load_results,
    searched_params,
    summary,
    top_trials,
    trial_order,
)
from study.report.page import (
    Section,
    details_html,
    frame_table,
    grid_html,
    kv_table,
    note_html,
    para_html,
    save_figure,
    write_page,
)
from study.results import BEST_METRIC, SUMMARY_METRICS

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"


def summary_section(results: StudyResults, s: Summary, top: pd.DataFrame, params: dict) -> Section:
    data = results.study.get("data") or {}
    best = {
        "trial": s.trial_id,
        "status": s.status,
        "best epoch / epochs run": f"{s.best_epoch} / {s.epochs_run}",
        "validation macro-F1": s.metrics["macro_f1"],
        "validation ROC AUC (macro, one-vs-rest)": s.metrics["auc"],
        "validation accuracy": s.metrics["accuracy"],
        "validation loss": s.metrics["loss"],
    }
    per_class = pd.DataFrame(
        {
            "class": list(s.recall_per_class),
            "recall": list(s.recall_per_class.values()),
            "f1": [s.f1_per_class.get(c) for c in s.recall_per_class],
        }
    )
    hp = [*s.searched.items(), *((f"{k} (fixed)", v) for k, v in s.fixed.items())]
    counts = {
        "completed": s.counts["completed"],
        "stopped early (ASHA)": s.counts["stopped_early"],
        "errored": s.counts["errored"],
        **({"still running / interrupted": s.counts["running"]} if s.counts["running"] else {}),
        "total": s.counts["total"],
        "trial-epochs run": s.trial_epochs,
        "wall time (s)": s.wall_time_s,
        "study status": results.study.get("status"),
    }
    data_kv = {
        "fingerprint": data.get("fingerprint"),
        "classes": ", ".join(results.classes),
        "training rows": data.get("n_train"),
        "validation rows": data.get("n_valid"),
        "unlabelled rows": data.get("n_unlabelled"),
        "demo data": data.get("demo"),
        "training file": data.get("train_path"),
        "validation file": data.get("valid_path") or "(split from the training file)",
    }
    cols = ["trial_id", "status", *(f"best_{m}" for m in SUMMARY_METRICS[:3]), "best_epoch", "epochs_run"]
    cols += list(params)
    settings = {k: (", ".join(v) if isinstance(v, list) else v) for k, v in results.settings.items()}
    return Section(
        "summary",
        "Summary",
        (
            grid_html(
                kv_table(best, "Best trial"),
                frame_table(per_class, "Per class at the best epoch"),
                kv_table(hp, "Its hyperparameters"),
            ),
            grid_html(kv_table(counts, "Trials"), kv_table(data_kv, "Data")),
            frame_table(top.rename(columns=lambda c: c.removeprefix("params_")), f"Top {len(top)} trials", cols),
            details_html("All settings of the study", kv_table(settings)),
        ),
    )


def curves_section(results: StudyResults, s: Summary, top: pd.DataFrame, fig_dir: Path) -> Section:
    curves = plots.learning_curves(results.epochs, list(top["trial_id"]))
    labels = {r["trial_id"]: f"{r['trial_id']} (F1 {r[BEST_METRIC]:.3f})" for _, r in top.iterrows()}
    best = plots.plot_curves(curves[curves["trial_id"] == s.trial_id], labels, "best trial", s.best_epoch)
    return Section(
        "curves",
        "Learning curves",
        (
            save_figure(best, fig_dir, "curves_best", "The best trial: macro-F1 and loss per epoch"),
            save_figure(
                plots.plot_curves(curves, labels, f"top {len(top)}"),
                fig_dir,
                "curves_top",
                f"The top {len(top)} trials: validation (solid) and train (dashed) macro-F1 and loss",
            ),
        ),
    )


def model_section(results: StudyResults, s: Summary, fig_dir: Path) -> Section:
    try:
        y, probs = plots.trial_predictions(results.predictions, s.trial_id)
    except ReportError as e:
        return Section("model", "The best model", (note_html(f"No ROC curves or confusion matrix: {e}"),))
    classes = results.classes or tuple(str(i) for i in range(probs.shape[1]))
    roc = plots.plot_roc(plots.roc_curves(y, probs, classes), f"ROC, one-vs-rest ({s.trial_id})")
    confusion = plots.plot_confusion(y, probs.argmax(axis=1), classes, s.trial_id)
    return Section(
        "model",
        "The best model",
        (
            para_html(f"Validation predictions of trial {s.trial_id} at its best epoch ({len(y)} tweets)."),
            save_figure(roc, fig_dir, "roc", "ROC curve per class"),
            save_figure(
                confusion, fig_dir, "confusion", "Confusion matrix: counts and row-normalised (rows: true class)"
            ),
        ),
    )


def search_section(results: StudyResults, params: dict[str, BaseDistribution], fig_dir: Path) -> Section:
    blocks = []
    if not trial_order(results.trials)["trial_number"].ge(0).all():
        blocks.append(note_html("trials.parquet has no trial numbers; trials are shown in file order."))
    study = search.search_study(results.trials, results.epochs, params)
    if not study.get_trials(states=(TrialState.COMPLETE,)):
        return Section("search", "The search", (*blocks, note_html("No trial finished or was stopped with a score.")))
    counted = f"Drawn by Optuna; {search.STOPPED_COUNTED}."
    blocks.append(save_figure(search.history_figure(study), fig_dir, "history", f"Optimisation history. {counted}"))
    if params:
        blocks += [
            save_figure(
                search.slice_figure(study, list(params)),
                fig_dir,
                "slices",
                f"Slice plots, one per searched hyperparameter (colour: trial number). {counted}",
            ),
            save_figure(
                search.parallel_figure(study, list(params)),
                fig_dir,
                "parallel",
                f"Parallel coordinates of the searched hyperparameters. {counted}",
            ),
        ]
    else:
        blocks.append(note_html("The search space has no searched hyperparameters."))
    imp = search.param_importances(results.trials, results.epochs, params)
    if imp.by_evaluator:
        caption = f"Hyperparameter importance from {imp.n_trials} trials, by Optuna; {search.STOPPED_COUNTED}."
        table = pd.DataFrame(imp.by_evaluator).rename_axis("hyperparameter").reset_index()
        blocks += [
            save_figure(search.importance_figure(study, imp), fig_dir, "importance", caption),
            frame_table(table, "Importance by evaluator (each column sums to 1)"),
        ]
    blocks += [note_html(n) for n in imp.notes]
    return Section("search", "The search", tuple(blocks))


def early_stopping_section(results: StudyResults, fig_dir: Path) -> Section:
    settings = results.settings
    max_epochs = int(settings.get("max_epochs") or results.trials["epochs_run"].max())
    rungs = plots.asha_rungs(int(settings.get("grace_period", 1)), int(settings.get("reduction_factor", 3)), max_epochs)
    saved = plots.compute_saved(results.trials, max_epochs, results.epochs)
    figure = plots.plot_early_stopping(results.trials, rungs, max_epochs, saved)
    return Section(
        "early-stopping",
        "Early stopping",
        (
            save_figure(figure, fig_dir, "early_stopping", "Epochs run per trial against ASHA's rungs"),
            kv_table(
                {
                    "ASHA rungs (epochs)": ", ".join(map(str, rungs)),
                    "trials stopped early": saved.stopped_early,
                    "trial-epochs run": saved.epochs_run,
                    f"trial-epochs if all ran {max_epochs}": saved.epochs_full,
                    "trial-epochs saved": f"{saved.epochs_saved} ({saved.fraction_saved:.0%})",
                    "mean seconds per epoch": saved.seconds_per_epoch,
                    "seconds saved (estimate)": saved.seconds_saved,
                },
                "Compute saved",
            ),
        ),
    )


def data_section(results: StudyResults, fig_dir: Path) -> Section:
    """Word clouds, top tokens and a t-SNE map, all from the data.parquet the study wrote (no CSV is read)."""
    d = results.data
    if d is None:
        return Section(
            "data",
            "The data",
            (
                note_html(
                    f"This study has no {DATA_FILE}: it was written by an earlier version, before studies kept "
                    "what this section draws. Run the study again to see word clouds, token frequencies and the map."
                ),
            ),
        )
    before, after = (d.loc[d["kind"] == k, ["token", "count"]].astype({"count": int}) for k in (RAW, CLEAN))
    points = d[d["kind"] == MAP]
    n_train = (results.study.get("data") or {}).get("n_train") or "the"
    blocks = [
        para_html(f"The study's {n_train} training tweets, before and after its cleaning settings."),
        save_figure(
            plots.plot_wordclouds(before, after), fig_dir, "wordclouds", "Word clouds before and after cleaning"
        ),
        save_figure(
            plots.plot_token_frequencies(before, after),
            fig_dir,
            "token_frequencies",
            "The most frequent tokens before and after cleaning",
        ),
    ]
    vectors = np.stack(points["vector"].to_numpy()) if len(points) else np.zeros((0, 0))
    try:
        xy = plots.tsne_points(vectors, points["label"].to_numpy(), seed=int(results.settings.get("data_seed", 0)))
    except ReportError as e:
        blocks.append(note_html(f"No t-SNE map: {e}"))
    else:
        title = f"t-SNE of mean Word2Vec tweet vectors (D={vectors.shape[1]}, {len(xy)} of {n_train} training tweets)"
        blocks.append(save_figure(plots.plot_tsne(xy, results.classes, title), fig_dir, "tsne", title))
    return Section("data", "The data", tuple(blocks))


def write_report(folder: str | Path, top_k: int = 5) -> Path:
    """Write `folder/report.html` and `folder/figures/*.png` from the study's files; returns the HTML path.

    Raises:
        ResultsError: not a study folder, a missing file or an unknown schema version.
        ReportError: bad arguments.
    """
    if top_k < 1:
        raise ReportError(f"`top` must be >= 1, but got {top_k}.")
    results = load_results(folder)
    fig_dir = results.folder / FIGURES_DIR
    params = searched_params(results)
    s = summary(results)
    top = top_trials(results.trials, top_k)
    fig_dir.mkdir(exist_ok=True)
    sections = [
        final_section(results, fig_dir),
        summary_section(results, s, top, params),
        curves_section(results, s, top, fig_dir),
        model_section(results, s, fig_dir),
        search_section(results, params, fig_dir),
        early_stopping_section(results, fig_dir),
        data_section(results, fig_dir),
    ]
    path = results.folder / REPORT_FILE
    head = (results.study.get("final") or {}).get("headline")
    answer = (
        f"final model macro-F1 {head['macro_f1']:.4f} ({'test set' if head['source'] == 'test' else 'k-fold CV'})"
        if head
        else f"best val macro-F1 {s.metrics['macro_f1']:.4f} (the search's pick: optimistic)"
    )
    subtitle = (
        f"{results.folder} · space {(results.study.get('space') or {}).get('name')} · "
        f"{s.counts['total']} trials · {answer}"
    )
    write_page(path, f"Study {results.name}", subtitle, sections)
    log.info("Writing report <path=%s>", path)
    return path
