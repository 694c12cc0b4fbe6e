"""The final stage of a study: its answer, scored on folds the search never chose on, beside a baseline.

After the search, the top `final_top` configurations (by search score) are re-scored by stratified k-fold CV over
every labelled row (training and validation together, never the test rows; identical texts in one fold), each
fold's word vectors trained without its held-out fold (each candidate's own representation where the space
searches it) and its epoch chosen on an inner split of its training part (study/final/cv.py `score_fold`, the rule
`study.evaluate` and `study.ablate` use too); the TF-IDF baselines run on the raw texts of the same folds, their
regularisation chosen by an inner CV of each fold's training part. Every fold is a Ray task
on the study's per-trial resources, so the folds run side by side on the cluster. The winner is the candidate
with the best CV mean; it is retrained on every labelled row for the median of its folds' chosen epochs and saved
(trainables/saved_model.py); with a test set, that model's test score is the study's headline figure.

Here: planning the folds, running them on Ray, final.parquet (kept current, so an interrupted stage resumes
without redoing finished folds) and the final model. Not here: the `final` block of study.json and the answer
printed (summary.py), the fold maths (cv.py), the statistics (stats.py), the baselines (trainables/baseline.py).
"""

from __future__ import annotations

import logging
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from study.final.cv import SUMMARY_METRICS, score_fold
from study.final.summary import BASELINE_NAMES, CV, TEST, Candidate, headline, summarise_final, summarise_test
from study.results import BEST_METRIC, FINAL_FILE, FINAL_SCHEMA, PARAM_TYPES, ResultsError, read_table, write_table
from trainables.baseline import BASELINES, INNER_FOLDS, baseline_proba
from trainables.metrics import classification_metrics, log_loss

if TYPE_CHECKING:
    from trainables.data import LabelledData
    from trainables.folds import Fold
    from trainables.inputs import StudyData

log = logging.getLogger(__name__)

RNN = "rnn"  # the `kind` of a searched configuration's row; baselines use their names in BASELINES


def candidates(trials: pd.DataFrame, top: int, score: str, param_names: Sequence[str]) -> list[Candidate]:
    """The `top` trials by their search score, with their hyperparameters as plain Python values."""
    scored = trials[np.isfinite(trials[score].astype(float))]
    best = scored.sort_values([score, "trial_number"], ascending=[False, True]).head(top)
    out = []
    for rank, row in enumerate(best.itertuples(index=False), start=1):
        row = row._asdict()
        params = {}
        for name in param_names:
            value = row.get(f"params_{name}")
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            params[name] = value.item() if hasattr(value, "item") else value
        out.append(Candidate(str(row["trial_id"]), rank, float(row[score]), params))
    return out


def _held_out_scores(labels: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """A model's scores from its (N, C) probabilities on `labels`' rows."""
    metrics = classification_metrics(labels, probs)
    scores = {k: float(metrics[f"val_{k}"]) for k in SUMMARY_METRICS}
    return {**scores, "loss": log_loss(labels, probs), "n_held_out": len(labels)}


def _ran(started: float) -> dict[str, Any]:
    """When and where a piece of work that began at `started` and has just ended ran."""
    finished = time.time()
    return {"started_at": started, "finished_at": finished, "time_s": finished - started, "hostname": platform.node()}


def _row(candidate: str, kind: str, rank: int | None, split: str, fold: int, **values: Any) -> dict[str, Any]:
    return {"candidate": candidate, "kind": kind, "rank": rank, "split": split, "fold": fold, **values}


# ------------------------------------------------------------------------------------------- Ray tasks


def _timed(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run a task's work, with its start and end, where it ran, and a NaN loss or bad setting as its error."""
    import ray

    started = time.time()
    try:
        values, error = work(), None
    except (ValueError, RuntimeError) as e:  # a NaN loss or a bad configuration: that fold only
        values, error = {}, f"{type(e).__name__}: {e}"[:2000]
    return {**values, **_ran(started), "node_id": ray.get_runtime_context().get_node_id(), "error": error}


def fit_fold_task(hp, data, fold) -> dict[str, Any]:
    """`cv.score_fold` on one fold's data: the epoch chosen on its inner split, the held-out fold scored there."""
    from trainables.trainable import no_kernel_cache_per_shape

    no_kernel_cache_per_shape()

    def work() -> dict[str, Any]:
        s = score_fold(hp, data, fold)
        keep = ("best_epoch", "epochs", "curve", "inner_curve", "held_out_best_macro_f1", "n_train", "n_held_out")
        # `best` and `last` (the held-out metrics, per class too) reach `on_row` (study.evaluate), not the files
        return {**{k: s["best"][k] for k in (*SUMMARY_METRICS, "loss")}, **{k: s[k] for k in (*keep, "best", "last")}}

    return _timed(work)


def baseline_task(kind, train: LabelledData, held_out: LabelledData, groups, seed, data_seed) -> dict[str, Any]:
    """One baseline fitted on `train`, its C chosen by inner folds of `train` (seeded by `data_seed`, the rows of
    one of `groups` held out together), and scored on `held_out`."""
    from trainables.folds import fold_indices

    def work() -> dict[str, Any]:
        inner = fold_indices(train.labels, INNER_FOLDS, data_seed, groups)
        args = (list(train.texts), train.labels, list(held_out.texts), len(train.classes), seed, inner)
        probs, c = baseline_proba(kind, *args)
        return {**_held_out_scores(held_out.labels, probs), "c": c, "n_train": len(train)}

    return _timed(work)


@dataclass(frozen=True)
class FinalPlan:
    """What the final stage runs, taken from the study's settings."""

    top: int  # candidates: the search's best `top` configurations
    folds: int  # K of the stratified K-fold CV
    data_seed: int  # the folds' seed (the same folds as `study.evaluate --data-seed`)
    fixed: dict[str, Any]  # hyperparameters every candidate shares: the space's fixed ones, seed, max_epochs, ...
    cpus: float  # per task, as per trial in the search
    gpus: float
    max_retries: int  # retries of a task whose worker died
    at_once: int = 0  # tasks unfinished at once, what the cluster holds (resources.TaskWindow); 0: no limit


def run_cv(
    plan: FinalPlan,
    cands: Sequence[Candidate],
    data: StudyData,
    done: set[tuple[str, str, int]],
    on_row: Callable[[dict[str, Any]], None],
    baselines: Sequence[str] = BASELINES,
    folds: Sequence[Fold] | None = None,
) -> None:
    """Run every (candidate or baseline, fold) not in `done` as Ray tasks; `on_row` gets each row as it ends.

    The folds are `folds` (e.g. one given train -> valid split), else `plan.folds` stratified folds of every
    labelled row, seeded by `plan.data_seed`. Each (fold, representation) pair is encoded once, by one task, and
    every task of a candidate with that representation (its searched vector settings on top of `data.vectors`) on
    that fold reads it from the object store.
    Tasks whose worker dies are retried `plan.max_retries` times; one that still fails gives a row with its
    error. Ctrl-C drops what waits and is raised again (what runs ends with the driver, `TaskWindow.drop`).
    """
    import ray

    from study.resources import Once, TaskWindow, deferred
    from trainables.data import subset, text_groups
    from trainables.folds import plan_folds
    from trainables.hparams import HParams
    from trainables.prepare import prepare
    from trainables.vectorize import representation_key, split_params, with_params

    resources = {"num_cpus": plan.cpus, "num_gpus": plan.gpus, "max_retries": plan.max_retries}
    encode = ray.remote(prepare).options(**resources)  # a fold's EncodedData, vectors never on its held-out part
    fit = ray.remote(fit_fold_task).options(**resources)
    labelled = data.labelled
    groups = text_groups(labelled, data.clean)
    unlabelled_ref = ray.put(data.unlabelled)  # once: every encoding task reads the same object
    started, done_count = time.time(), [0]

    def waiting(running: int, queued: int) -> None:  # never silent for long: what runs, what waits, time left
        done, elapsed = done_count[0], time.time() - started
        left = f", about {elapsed / done * (running + queued) / 60:.1f} min left" if done else ""
        log.info("Fold tasks: %d done, %d running, %d waiting%s", done, running, queued, left)

    # never more tasks in Ray than the nodes hold: no "infeasible" backlog
    window = TaskWindow(plan.at_once, waiting)
    for fold in plan_folds(labelled.labels, groups, plan.folds, plan.data_seed) if folds is None else folds:
        k, train, held_out = fold.number, subset(labelled, fold.train), subset(labelled, fold.held_out)
        encoded: dict[str, Any] = {}  # representation key -> this fold's EncodedData ref
        for c in (c for c in cands if (c.trial_id, CV, k) not in done):
            representation, rest = split_params({**plan.fixed, **c.params})
            key = representation_key(representation)
            if key not in encoded:  # started with the first fit task that reads it
                vectors = with_params(data.vectors, representation)
                encoded[key] = Once(encode.remote, train, held_out, unlabelled_ref, data.clean, vectors, data.cache_dir)
            fit_it = deferred(fit.remote, HParams.from_dict(rest), encoded[key], fold)
            window.add(fit_it, (c.trial_id, RNN, c.rank, CV, k))
        _add_baselines(window, plan, baselines, done, (CV, k), train, held_out, groups[fold.train])
    log.info("%d fold tasks for %d candidates and %d baselines", len(window), len(cands), len(baselines))
    try:
        for ref, key in window.finished():
            done_count[0] += 1
            try:
                values = ray.get(ref)
            except ray.exceptions.RayTaskError as e:  # a bug, not a fault: say it
                raise e.as_instanceof_cause() from None
            except ray.exceptions.RayError as e:  # its worker or node died more often than `max_retries`
                values = {"error": f"{type(e).__name__}: {e}"[:2000]}
            on_row(_row(*key, **values))
    except KeyboardInterrupt:
        window.drop()
        raise


def _add_baselines(window, plan: FinalPlan, names, done, where: tuple[str, int], train, held_out, groups) -> None:
    """Queue each baseline of `names` without a row at `where` (split, fold) in `done`: `baseline_task` on `train`
    and `held_out`."""
    import ray

    from study.resources import deferred

    task = ray.remote(baseline_task).options(num_cpus=plan.cpus, max_retries=plan.max_retries)  # no GPU
    for b in (b for b in names if (b, *where) not in done):
        args = (b, train, held_out, groups, plan.fixed.get("seed", 0), plan.data_seed)
        window.add(deferred(task.remote, *args), (b, b, None, *where))


def run_final_model(
    plan: FinalPlan,
    winner: dict[str, Any],
    data: StudyData,
    folder,
    provenance: dict[str, Any],
    done: set[tuple[str, str, int]] = frozenset(),
    on_row: Callable[[dict[str, Any]], None] = lambda row: None,
) -> None:
    """Retrain the winner on every labelled row for its epochs, save it to `folder`, score it on `data.test`.

    A model already saved for the same trial and epochs (an interrupted stage) is kept. With a test set, the
    saved model and the baselines (fitted on every labelled row) score it; rows in `done` are not run again.
    """
    import ray

    from study.resources import TaskWindow, deferred
    from trainables.hparams import HParams
    from trainables.saved_model import load_model, save_model
    from trainables.vectorize import split_params, with_params

    window = TaskWindow(plan.at_once)  # the test set's baselines; the final model goes ahead of any still queued
    labelled, test = data.labelled, data.test
    if test is not None:
        from trainables.data import text_groups

        _add_baselines(window, plan, BASELINES, done, (TEST, 0), labelled, test, text_groups(labelled, data.clean))
    if not _saved_for(folder, winner):
        representation, rest = split_params({**plan.fixed, **winner["params"]})
        hp = HParams.from_dict(rest)
        resources = {"num_cpus": plan.cpus, "num_gpus": plan.gpus, "max_retries": plan.max_retries}
        train = ray.remote(final_model_task).options(**resources)
        winner_data = replace(data, vectors=with_params(data.vectors, representation))
        ref = window.submit(deferred(train.remote, hp, winner_data, winner["epochs"]))
        what = (winner["trial_id"], len(labelled), winner["epochs"])
        log.info("Final model: trial %s retrained on %d rows for %d epochs", *what)
        submitted = time.time()
        while not ray.wait([ref], timeout=10)[0]:  # never silent for long
            log.info("Final model: training for %.0f s", time.time() - submitted)
        model = ray.get(ref)
        save_model(folder, model, {**provenance, "trial_id": winner["trial_id"], "epochs": winner["epochs"]})
    if test is not None and (winner["trial_id"], TEST, 0) not in done:
        started = time.time()
        probs = load_model(folder).predict_proba(list(test.texts))
        ran = _ran(started)
        row = _row(winner["trial_id"], RNN, winner["rank"], TEST, 0, n_train=len(labelled), epochs=winner["epochs"])
        on_row({**row, **_held_out_scores(test.labels, probs), **ran})
    for ref, key in window.finished():
        on_row(_row(*key, **ray.get(ref)))


def final_model_task(hp, data: StudyData, epochs: int):
    """`train_final_model` as a Ray task."""
    from trainables.saved_model import train_final_model

    parts = (data.labelled, data.unlabelled, data.spec, data.clean, data.vectors)
    return train_final_model(hp, *parts, epochs, data.cache_dir)


def _saved_for(folder, winner: dict[str, Any]) -> bool:
    """Whether `folder` holds the model of this winner already (a stage interrupted after saving it)."""
    from trainables.saved_model import ModelError, load_info

    try:
        saved = load_info(folder).get("provenance", {})
    except ModelError:
        return False
    return saved.get("trial_id") == winner["trial_id"] and saved.get("epochs") == winner["epochs"]


# ------------------------------------------------------------------------------------------- the stage


def run_final_stage(
    folder,
    plan: FinalPlan,
    trials: pd.DataFrame,
    data: StudyData,
    provenance: dict[str, Any],
    on_phase: Callable[[str], None] = lambda name: None,
) -> dict[str, Any]:
    """Run (or resume) the final stage of a study whose search is complete; returns study.json's `final` block.

    final.parquet is rewritten as each task ends (then `on_phase("final-row")`), so a stage interrupted by Ctrl-C
    or a lost driver resumes without redoing a finished fold; the model is saved under `folder/model`.

    Raises:
        OSError: final.parquet or the model could not be written.
        KeyboardInterrupt: Ctrl-C; what finished is in final.parquet.
    """
    from trainables.saved_model import MODEL_FOLDER

    path = folder / FINAL_FILE
    cands = candidates(trials, plan.top, BEST_METRIC, list(PARAM_TYPES))
    known = {c.trial_id for c in cands} | set(BASELINES)
    try:
        previous = read_table(path) if path.exists() else pd.DataFrame(columns=FINAL_SCHEMA.names)
    except ResultsError as e:  # a damaged file from a killed driver: its folds run again
        log.warning("Ignoring %s: %s", path, e)
        previous = pd.DataFrame(columns=FINAL_SCHEMA.names)
    rows = [r for r in previous.to_dict("records") if r["candidate"] in known and not _is_error(r)]
    done = {(r["candidate"], r["split"], int(r["fold"])) for r in rows}
    total = len(cands) * plan.folds + len(BASELINES) * plan.folds

    def on_row(row: dict[str, Any]) -> None:
        rows.append(row)
        write_table(rows, path, FINAL_SCHEMA)
        what = f"trial {row['candidate']}" if row["kind"] == RNN else BASELINE_NAMES[row["kind"]]
        score = "failed: " + str(row["error"]) if row.get("error") else f"macro-F1 {row['macro_f1']:.4f}"
        if row["split"] == CV:
            n = sum(r["split"] == CV for r in rows)
            log.info("Final stage %d/%d: %s, fold %d, %s", n, total, what, row["fold"], score)
        else:
            log.info("Test set: %s, %s", what, score)
        on_phase("final-row")

    sizes = (len(cands), len(BASELINES), plan.folds, len(data.labelled), len(done))
    log.info(
        "Final stage: the top %d configurations and %d baselines, %d-fold CV on %d labelled rows (%d done before)",
        *sizes,
    )
    run_cv(plan, cands, data, done, on_row)
    block = summarise_final(pd.DataFrame(rows, columns=FINAL_SCHEMA.names), cands, plan.folds)
    winner = block["winner"]
    if winner is not None:
        provenance = {**provenance, "cv_macro_f1": winner["cv"]["mean"], "search_score": winner["search_score"]}
        run_final_model(plan, winner, data, folder / MODEL_FOLDER, provenance, done, on_row)
        block["model"] = MODEL_FOLDER
    block["test"] = summarise_test(pd.DataFrame(rows, columns=FINAL_SCHEMA.names), winner)
    block["headline"] = headline(block)
    return block


def _is_error(row: dict[str, Any]) -> bool:
    """A row whose task failed is run again on resume."""
    return isinstance(row.get("error"), str) and bool(row["error"])
