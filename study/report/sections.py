"""The study report: its sections, put together from load.py's numbers and the figures of plots.py and
search.py, and `write_report`, which writes `results/<name>/report.html` and `results/<name>/figures/*.png`.

The HTML building blocks live in page.py; the command line in __main__.py.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState

from study.report import plots, search
from study.report.final import final_section, headline_text
from study.report.load import (
    FIGURES_DIR,
    ReportError,
    StudyResults,
    Summary,
    load_results,
    model_trial_id,
    scored,
    searched_params,
    summary,
    top_trials,
    trial_order,
    vector_size_used,
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
    section,
    write_page,
)
from study.results import BEST_METRIC, SUMMARY_METRICS
from trainables.summary import CLEAN, MAP, RAW

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"


def _mb(n: float | None) -> float | None:
    return None if n is None else round(n / 1e6, 3)


def settings_as_used(study: dict[str, Any]) -> dict[str, Any]:
    """study.json's settings as the study used them: an automatic 0 shown as the value it stood for."""
    settings = {k: (", ".join(v) if isinstance(v, list) else v) for k, v in (study.get("settings") or {}).items()}
    data, ray = study.get("data") or {}, study.get("ray") or {}
    used = {
        "vector_size": vector_size_used(settings, (data.get("vectors") or {}).get("dimension")),
        "n_startup_trials": ray.get("startup_trials"),
        "max_concurrent": ray.get("max_concurrent"),
    }
    searched = (study.get("space") or {}).get("params") or {}
    for name, value in used.items():
        if settings.get(name) == 0 and value is not None:
            settings[name] = f"{value} (auto)" + ("; searched: each trial's own" if name in searched else "")
    return settings


def summary_section(results: StudyResults, s: Summary, top: pd.DataFrame, params: dict) -> Section:
    data = results.study.get("data") or {}
    saved = results.winner is not None
    ranked = list(scored(results.trials)["trial_id"])
    trial = {
        "trial": s.trial_id + (" (the saved model's configuration)" if saved else ""),
        "rank in the search": f"#{ranked.index(s.trial_id) + 1} of {len(ranked)} scored trials",
        "status": s.status,
        "best epoch / epochs run": f"{s.best_epoch} / {s.epochs_run}",
        "validation macro-F1": s.metrics["macro_f1"],
        "validation ROC AUC (macro, one-vs-rest)": s.metrics["auc"],
        "validation accuracy": s.metrics["accuracy"],
        "validation loss": s.metrics["loss"],
    }
    if ranked[0] != s.trial_id:
        best = scored(results.trials).iloc[0]
        trial["the search's best trial (not saved)"] = (
            f"{best['trial_id']}: validation macro-F1 {best[BEST_METRIC]:.4f}; the final stage's CV preferred "
            f"trial {s.trial_id}"
        )
    per_class = pd.DataFrame(
        [(c, r, s.f1_per_class.get(c)) for c, r in s.recall_per_class.items()], columns=["class", "recall", "f1"]
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
        # disk: study.json's `disk` block (study/search/checkpoints.py); absent in studies of before it
        "checkpoint MB per trial-epoch": _mb((results.study.get("disk") or {}).get("checkpoint_bytes_per_trial_epoch")),
        "study folder at the end (MB)": _mb((results.study.get("disk") or {}).get("folder_bytes")),
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
    cols = ["trial_id", "status", *(f"best_{m}" for m in SUMMARY_METRICS[:3]), "best_epoch", "epochs_run", *params]
    marked = top.assign(trial_id=[_marked(t, s.trial_id, saved) for t in top["trial_id"]])
    what = "The saved model's trial in the search" if saved else "The search's best trial (no final stage)"
    return section(
        "summary",
        "Summary",
        grid_html(
            kv_table(trial, what),
            frame_table(per_class, "Per class at its best epoch"),
            kv_table(hp, "Its hyperparameters"),
        ),
        grid_html(kv_table(counts, "Trials"), kv_table(data_kv, "Data")),
        frame_table(marked.rename(columns=lambda c: c.removeprefix("params_")), f"Top {len(top)} trials", cols),
        details_html("All settings of the study, as used", kv_table(settings_as_used(results.study))),
    )


def _marked(trial_id: str, model_trial: str, saved: bool) -> str:
    return f"{trial_id} (saved model)" if saved and trial_id == model_trial else trial_id


def curves_section(results: StudyResults, s: Summary, top: pd.DataFrame, fig_dir: Path) -> Section:
    saved = results.winner is not None
    ids = list(dict.fromkeys([*top["trial_id"], s.trial_id]))  # the model's trial even when not in the top K
    curves = plots.learning_curves(results.epochs, ids)
    scores = scored(results.trials).set_index("trial_id")[BEST_METRIC]
    labels = {t: f"{_marked(t, s.trial_id, saved)} (F1 {scores[t]:.3f})" for t in ids}
    what = f"the saved model's trial {s.trial_id}" if saved else f"the best trial {s.trial_id}"
    best = plots.plot_curves(curves[curves["trial_id"] == s.trial_id], labels, what, s.best_epoch)
    also = f" and the saved model's trial {s.trial_id}" if s.trial_id not in set(top["trial_id"]) else ""
    caption = f"The top {len(top)} trials of the search{also}: validation (solid) and train (dashed) macro-F1 and loss"
    return section(
        "curves",
        "Learning curves",
        save_figure(best, fig_dir, "curves_best", f"{what[0].upper()}{what[1:]}: macro-F1 and loss per epoch"),
        save_figure(plots.plot_curves(curves, labels, f"top {len(top)}"), fig_dir, "curves_top", caption),
    )


def model_section(results: StudyResults, s: Summary, fig_dir: Path) -> Section:
    saved = results.winner is not None
    title = "The model" if saved else "The best model"
    try:
        y, probs = plots.trial_predictions(results.predictions, s.trial_id)
    except ReportError as e:
        return section("model", title, note_html(f"No ROC curves or confusion matrix: {e}"))
    classes = results.classes or tuple(str(i) for i in range(probs.shape[1]))
    roc = plots.plot_roc(plots.roc_curves(y, probs, classes), f"ROC, one-vs-rest ({s.trial_id})")
    confusion = plots.plot_confusion(y, probs.argmax(axis=1), classes, s.trial_id)
    what = (
        f"Trial {s.trial_id}, the saved model's configuration, as the search trained it on the training split: "
        f"its predictions of the {len(y)} validation tweets at its best epoch ({s.best_epoch}). The saved model "
        "itself was retrained on every labelled row, so no rows are left to draw it on."
        if saved
        else f"Validation predictions of trial {s.trial_id} at its best epoch ({len(y)} tweets)."
    )
    return section(
        "model",
        title,
        para_html(what),
        save_figure(roc, fig_dir, "roc", "ROC curve per class"),
        save_figure(confusion, fig_dir, "confusion", "Confusion matrix: counts and row-normalised (rows: true class)"),
    )


def search_section(results: StudyResults, params: dict[str, BaseDistribution], fig_dir: Path) -> Section:
    blocks = []
    if not trial_order(results.trials)["trial_number"].ge(0).all():
        blocks.append(note_html("trials.parquet has no trial numbers; trials are shown in file order."))
    study = search.search_study(results.trials, results.epochs, params)
    if not study.get_trials(states=(TrialState.COMPLETE,)):
        return section("search", "The search", *blocks, note_html("No trial finished or was stopped with a score."))
    counted = f"Drawn by Optuna; {search.STOPPED_COUNTED}."
    blocks.append(save_figure(search.history_figure(study), fig_dir, "history", f"Optimisation history. {counted}"))
    if params:
        slices = f"Slice plots, one per searched hyperparameter (colour: trial number). {counted}"
        parallel = f"Parallel coordinates of the searched hyperparameters. {counted}"
        blocks += [
            save_figure(search.slice_figure(study, list(params)), fig_dir, "slices", slices),
            save_figure(search.parallel_figure(study, list(params)), fig_dir, "parallel", parallel),
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
    if imp.warning:
        blocks.append(note_html(imp.warning, warn=True))
    blocks += [note_html(n) for n in imp.notes]
    return section("search", "The search", *blocks)


def early_stopping_section(results: StudyResults, fig_dir: Path) -> Section:
    settings = results.settings
    max_epochs = int(settings.get("max_epochs") or results.trials["epochs_run"].max())
    rungs = plots.asha_rungs(int(settings.get("grace_period", 1)), int(settings.get("reduction_factor", 3)), max_epochs)
    saved = plots.compute_saved(results.trials, max_epochs, results.epochs)
    figure = plots.plot_early_stopping(results.trials, rungs, max_epochs, saved)
    table = {
        "ASHA rungs (epochs)": ", ".join(map(str, rungs)),
        "trials stopped early": saved.stopped_early,
        "trial-epochs run": saved.epochs_run,
        f"trial-epochs if all ran {max_epochs}": saved.epochs_full,
        "trial-epochs saved": f"{saved.epochs_saved} ({saved.fraction_saved:.0%})",
        "mean seconds per epoch": saved.seconds_per_epoch,
        "seconds saved (estimate)": saved.seconds_saved,
    }
    return section(
        "early-stopping",
        "Early stopping",
        save_figure(figure, fig_dir, "early_stopping", "Epochs run per trial against ASHA's rungs"),
        kv_table(table, "Compute saved"),
    )


ACROSS_HARM = {
    "train/valid": "the search's validation scores, and the final stage's CV that pools both parts",
    "train/test": "the test score",
    "valid/test": "the test score",
}


def accounting_blocks(accounting: dict[str, Any] | None) -> list[str]:
    """The rows each data file gave (read, dropped and why, kept), identical texts, and a warning when a text is
    in two parts, from study.json's `data.accounting`; nothing for a study that has none."""
    if not accounting:
        return []
    dup = accounting.get("duplicates") or {}
    within = dup.get("within") or {}
    columns = {
        "part": "part",
        "path": "file",
        "rows_read": "rows read",
        "dropped_unmapped": "dropped: label not mapped",
        "dropped_empty": "dropped: empty text",
        "rows_kept": "rows kept",
    }
    files = pd.DataFrame([{name: f[key] for key, name in columns.items()} for f in accounting.get("files") or []])
    across = dup.get("across") or {}
    identical = [
        *((f"{part}: rows whose text repeats another {part} row", n) for part, n in within.items()),
        *((f"{pair.replace('/', ' and ')}: distinct texts in both", n) for pair, n in across.items()),
    ]
    blocks = [frame_table(files, "Rows of each data file"), kv_table(identical, "Identical texts (after cleaning)")]
    blocks += [
        note_html(
            f"{n} distinct cleaned texts are in both {pair.replace('/', ' and ')}: a model is scored on tweets it was "
            f"trained on, which flatters {ACROSS_HARM.get(pair, 'its score')}. Remove them from one part.",
            warn=True,
        )
        for pair, n in across.items()
        if n
    ]
    return blocks


def data_section(results: StudyResults, fig_dir: Path) -> Section:
    """The data files' row accounting (study.json), then word clouds, top tokens and a t-SNE map from the
    data.parquet the study wrote (no CSV is read)."""
    d, data = results.data, results.study.get("data") or {}
    before, after = (d.loc[d["kind"] == k, ["token", "count"]].astype({"count": int}) for k in (RAW, CLEAN))
    points = d[d["kind"] == MAP]
    n_train = data.get("n_train") or "the"
    clouds, frequent = plots.plot_wordclouds(before, after), plots.plot_token_frequencies(before, after)
    blocks = [
        *accounting_blocks(data.get("accounting")),
        para_html(f"The study's {n_train} training tweets, before and after its cleaning settings."),
        save_figure(clouds, fig_dir, "wordclouds", "Word clouds before and after cleaning"),
        save_figure(frequent, fig_dir, "token_frequencies", "The most frequent tokens before and after cleaning"),
    ]
    vectors = np.stack(points["vector"].to_numpy()) if len(points) else np.zeros((0, 0))
    try:
        xy = plots.tsne_points(vectors, points["label"].to_numpy(), seed=int(results.settings.get("data_seed", 0)))
    except ReportError as e:
        blocks.append(note_html(f"No t-SNE map: {e}"))
    else:
        kind = "pretrained" if results.settings.get("vectors") else results.settings.get("vectorizer", "word2vec")
        title = f"t-SNE of mean tweet vectors ({kind}, D={vectors.shape[1]}, {len(xy)} of {n_train} training tweets)"
        blocks.append(save_figure(plots.plot_tsne(xy, results.classes, title), fig_dir, "tsne", title))
    return section("data", "The data", *blocks)


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
    s = summary(results, model_trial_id(results))
    top = top_trials(results.trials, top_k)
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
    headline = headline_text(results.study.get("final")) or (
        f"no final model: the search's best validation macro-F1 {s.metrics['macro_f1']:.4f}, not checked by CV"
    )
    subtitle = f"{results.folder} · space {(results.study.get('space') or {}).get('name')} · {s.counts['total']} trials"
    write_page(path, f"Study {results.name}", subtitle, sections, headline)
    log.info("Writing report <path=%s>", path)
    return path
