"""The steps of `python -m study.evaluate`: one configuration cross-validated by the final stage's fold tasks.

`evaluate` checks the settings and reads the data (before Ray starts), plans the folds (or takes the given
train -> valid split as one fold), runs them through the one CV runner (stage.py `run_cv`) on a Ray of its own
or the cluster at `address`, and summarises them (cv.py). Not here: the command line and its table
(study/evaluate.py), the rule that scores a fold (cv.py `score_fold`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from study.cli import EXIT_ERROR
from study.config import StudyConfig
from study.final.cv import FoldResult, summarise
from study.final.stage import FinalPlan, run_cv
from study.final.summary import Candidate
from study.resources import check_resources, cluster_nodes, init_ray, tasks_at_once, trial_request
from trainables.data import text_groups
from trainables.data_settings import DataSettings, flat_settings
from trainables.folds import DEFAULT_FOLDS, given_fold, plan_folds
from trainables.hparams import HParams
from trainables.settings import ConfigError

if TYPE_CHECKING:
    from trainables.folds import Fold
    from trainables.inputs import StudyData

log = logging.getLogger(__name__)


class FoldFailed(RuntimeError):
    """A fold's task failed (a NaN loss, say); the message is its error."""

    exit_code = EXIT_ERROR  # the command says the message: the driver's traceback tells no more


def fold_result(row: dict[str, Any]) -> FoldResult:
    """A fold task's row (stage.py `fit_fold_task`) as a FoldResult.

    Raises:
        ValueError: the task failed on a bad setting (e.g. a CUDA device that is missing there).
        FoldFailed: the task failed otherwise.
    """
    if error := row.get("error"):
        raise (ValueError if error.startswith("ValueError") else FoldFailed)(f"fold {row['fold']} failed: {error}")
    keys = ("fold", "n_train", "n_held_out", "best_epoch", "epochs", "best", "last", "held_out_best_macro_f1")
    return FoldResult(*(row[k] for k in keys), row["time_s"])


def evaluate(cfg: StudyConfig, hp: HParams, folds: int | None) -> dict[str, Any]:
    """Cross-validate `hp` on the data of `cfg` (or train on `cfg.train`, score `cfg.valid`); the JSON summary.

    Every fold is a Ray task on `cfg.cpus_per_trial` and `cfg.gpus_per_trial`, as many at once as the nodes
    hold; Ray is started here (and shut down at the end) unless `cfg.address` names a cluster.

    Raises:
        ConfigError, DataError: a bad setting or input file (Ray is not started).
        ValueError, FoldFailed: a fold's task failed.
    """
    from trainables.inputs import load_dataset, study_data

    if cfg.valid and folds is not None:
        raise ConfigError(f"`folds` must not be given with `valid` (one train → valid split), but got {folds}.")
    folds = DEFAULT_FOLDS if folds is None else folds
    if not cfg.valid and folds < 2:
        raise ConfigError(f"`folds` must be >= 2 for cross-validation, but got {folds}.")
    ds = load_dataset(cfg)
    data = study_data(ds, cfg)  # load_dataset splits; CV needs every labelled row
    if cfg.valid:
        mode = "train-valid"
        sizes = (ds.train_path, len(ds.train), cfg.valid, len(ds.valid))
        log.info("Training on %s (%d rows), scoring on %s (%d rows)", *sizes)
        planned = [given_fold(ds.train, ds.valid, cfg.data_seed, data.clean)]  # `data.labelled` is train + valid
    else:
        mode = "cross-validation"
        log.info("%d-fold stratified CV of %d rows from %s", folds, len(data.labelled), ds.train_path)
        planned = plan_folds(data.labelled.labels, text_groups(data.labelled, data.clean), folds, cfg.data_seed)
    results = run_folds(cfg, hp, data, planned)
    classes = ds.train.classes
    return {
        **summarise(results, classes),
        "mode": mode,
        "classes": list(classes),
        "n_rows": len(data.labelled),
        "train_path": ds.train_path,
        "unlabelled_rows": len(ds.unlabelled),
        "settings": {"data": flat_settings(cfg, DataSettings), "hparams": asdict(hp)},
    }


def run_folds(cfg: StudyConfig, hp: HParams, data: StudyData, folds: list[Fold]) -> list[FoldResult]:
    """`hp` on each of `folds` of `data`, as `run_cv`'s Ray tasks; the results in fold order."""
    import ray

    started = init_ray(cfg)
    try:
        nodes = cluster_nodes(cfg, checkpoints=False)
        check_resources(cfg, nodes)  # a request no node holds would wait for ever
        resources = (cfg.cpus_per_trial, cfg.gpus_per_trial, cfg.max_failures, tasks_at_once(trial_request(cfg), nodes))
        plan = FinalPlan(1, len(folds), cfg.data_seed, {}, *resources)
        results = []

        def on_row(row: dict[str, Any]) -> None:
            r = fold_result(row)
            numbers = (r.fold, r.best["macro_f1"], r.best["auc"], r.best_epoch, r.epochs, r.time_s)
            log.info("Fold %d: macro-F1 %.4f, AUC %.4f (epoch %d of %d chosen on the inner split), %.1f s", *numbers)
            results.append(r)

        run_cv(plan, [Candidate("evaluate", 1, math.nan, asdict(hp))], data, set(), on_row, baselines=(), folds=folds)
    finally:
        if started:
            ray.shutdown()
    return sorted(results, key=lambda r: r.fold)
