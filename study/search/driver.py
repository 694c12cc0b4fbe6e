"""`run_study(cfg)`: a study in named steps, from its settings to `results/<name>/`.

`resolve` the settings and folder and `load_dataset` (every input checked), start Ray and `check_resources`
(resources.py), `prepare` (encode once, plan, study.json), `build_tuner` (new, or restored to finish),
`tuner.fit()` with the live recorder and progress view as callbacks, then `write_results` from Ray's storage
(rows.py). Nothing is written to `results/` before every check has passed. The CLI lives in run.py; the schema
in results.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from search_spaces import SearchSpace, get_space, saved_space_setting
from study.cli import EXIT_ERROR, EXIT_INTERRUPTED
from study.config import ASHA_METRICS, DEMO_PRESET, StudyConfig, saved_settings
from study.resources import check_resources, cluster_nodes, concurrency, init_ray, tasks_at_once, trial_request
from study.results import (
    BEST_METRIC,
    EPOCHS_FILE,
    EPOCHS_SCHEMA,
    OPTUNA_FILE,
    PREDICTIONS_FILE,
    PREDICTIONS_SCHEMA,
    SCHEMA_VERSION,
    STUDY_FILE,
    TRIALS_FILE,
    TRIALS_SCHEMA,
    ResultsError,
    TrialStatus,
    read_study,
    write_json,
    write_table,
)
from study.search.optuna_db import write_optuna_db
from study.search.rows import RowContext, prediction_rows, rows_from_storage
from trainables.data_settings import flat_settings
from trainables.files import exclusive_lock
from trainables.inputs import Dataset, encode, load_dataset, study_data
from trainables.metrics import METRIC, MODE
from trainables.prepare import EncodedData
from trainables.settings import ConfigError
from trainables.summary import DATA_FILE, DATA_SCHEMA, summarise_data

log = logging.getLogger(__name__)

PACKAGES = ("ray", "optuna", "torch", "gensim", "pandas", "pyarrow", "scikit-learn", "numpy")
LOCK_FILE = ".lock"


class StudyInterrupted(Exception):
    """The study stopped before its budget was spent (Ctrl-C); it can be completed with --resume."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, folder: Path, name: str, when: str):
        self.folder, self.name = folder, name
        super().__init__(
            f"study {name!r} interrupted {when}; its results so far are in {folder}. "
            f"Complete it with: python -m study.run --resume {name}"
            + (f" --results-dir {folder.parent}" if str(folder.parent) != "results" else "")
        )


class StudyWriteError(Exception):
    """The results could not be written (disk full, no permission); the trials themselves are safe in Ray's storage."""

    exit_code = EXIT_ERROR

    def __init__(self, folder: Path, name: str, cause: OSError):
        self.folder, self.name, self.cause = folder, name, cause
        super().__init__(
            f"could not write the results of study {name!r} to {str(folder)!r}: {cause.strerror or cause} "
            f"({type(cause).__name__}). The files of the last successful write are intact and the trials are kept "
            f"in Ray's storage; once the cause is fixed (free disk space, make the folder writable), finish with: "
            f"python -m study.run --resume {name}"
            + (f" --results-dir {folder.parent}" if str(folder.parent) != "results" else "")
        )


@dataclass(frozen=True)
class StudyOutcome:
    name: str
    folder: Path
    trials: pd.DataFrame  # trials.parquet as written
    info: dict[str, Any]  # study.json as written


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


def _hardware() -> dict[str, Any]:
    import ray
    import torch

    ray_resources = ray.cluster_resources()
    return {
        "driver_host": platform.node(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cluster_cpus": ray_resources.get("CPU", 0),
        "cluster_gpus": ray_resources.get("GPU", 0),
        "cuda_available_in_driver": torch.cuda.is_available(),
        "gpu_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def resolve(cfg: StudyConfig) -> tuple[StudyConfig, Path, dict[str, Any] | None]:
    """The study's settings and folder: new (refused if the name exists) or resumed (settings from study.json)."""
    results_dir = Path(cfg.results_dir)
    if results_dir.exists() and not results_dir.is_dir():
        raise ConfigError(
            f"`results_dir` {str(results_dir)!r} is a file, not a folder; give a folder with `--results-dir` "
            "(it is created when missing)."
        )
    if cfg.resume:
        folder = results_dir / cfg.resume
        if not folder.exists():
            known = sorted(p.parent.name for p in results_dir.glob("*/study.json")) if results_dir.is_dir() else []
            raise ConfigError(
                f"`resume`: there is no study named {cfg.resume!r} in {str(results_dir)!r}"
                + (f"; studies there: {', '.join(known)}." if known else " (it holds no studies).")
                + " Give the name of an earlier study, or `--results-dir` where it is."
            )
        try:
            study = read_study(folder)
        except ResultsError as e:
            raise ConfigError(f"`resume`: {e}") from None
        settings = saved_settings(study["settings"], f"study.json of {cfg.resume!r}")
        # a file's space comes back as study.json recorded it (the file may have changed or gone since)
        settings["space"] = saved_space_setting(settings["space"], folder / STUDY_FILE)
        # where Ray runs may change between the two runs; what the study is may not
        keep = {"address": cfg.address, "results_dir": cfg.results_dir, "resume": cfg.resume}
        if cfg.storage:
            keep["storage"] = cfg.storage
        return StudyConfig.from_settings(**{**settings, **keep, "name": cfg.resume}), folder, study
    name = cfg.name or f"{get_space(cfg.space).name}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    folder = results_dir / name
    if folder.exists():
        raise ConfigError(
            f"`name`: a study named {name!r} already exists in {str(results_dir)!r} and is never overwritten. "
            f"Choose another `--name`, or complete it with `--resume {name}`."
        )
    return replace(cfg, name=name), folder, None


@contextlib.contextmanager
def _claimed(folder: Path, name: str, new: bool):
    """The study's folder, created when `new`, locked against a second `study.run` while the study runs."""
    if new:
        try:
            folder.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise ConfigError(
                f"`name`: a study named {name!r} was just created by another process; choose another `--name`."
            ) from None
    lock = folder / LOCK_FILE
    busy = f"study {folder.name!r} is in use by another `study.run` process (lock {str(lock)!r}); wait for it to "
    with exclusive_lock(lock, lambda: ConfigError(busy + "finish or choose another `--name`.")):
        yield


@dataclass(frozen=True, eq=False)
class PreparedStudy:
    """A study ready for its trials: settings, folder, space, the encoded data and study.json as first written."""

    cfg: StudyConfig  # resolved: named, and a resumed study's own settings
    folder: Path
    previous: dict[str, Any] | None  # study.json of the run this one resumes
    space: SearchSpace
    data: EncodedData
    info: dict[str, Any]  # study.json, status "running"
    started: float  # time.time() when this run began
    dataset: Dataset  # the data as read (a searched representation is encoded from it)

    @property
    def experiment_path(self) -> str:
        return self.info["ray"]["experiment_path"]

    @property
    def fixed(self) -> dict[str, Any]:
        """The hyperparameters every trial and final-stage fold shares: the space's fixed ones and the study's."""
        return {**self.space.fixed, **self.cfg.fixed_hparams()}

    @property
    def rows(self) -> RowContext:
        c = self.cfg
        return RowContext(self.space.fixed, c.max_epochs, c.seed, c.cpus_per_trial, c.gpus_per_trial)


def prepare(
    cfg: StudyConfig,
    folder: Path,
    previous: dict[str, Any] | None,
    dataset: Dataset,
    nodes: list[dict[str, float]],
    on_phase: Callable[[str], None],
) -> PreparedStudy:
    """Encode the data once, plan the trials and write study.json; the folder is claimed by then.

    Raises:
        ConfigError: a resumed study whose data changed since it started.
    """
    started = time.time()
    at_once = concurrency(cfg, nodes)
    storage = cfg.storage or str((folder / "ray").resolve())
    space = get_space(cfg.space)
    settings = flat_settings(cfg)
    if previous:  # `space` as first given; a resumed file space is read from study.json (resolve)
        settings["space"] = previous["settings"]["space"]
    data = encode(dataset, cfg)
    on_phase("encoded")
    if previous and previous.get("data", {}).get("fingerprint") not in (None, data.fingerprint):
        raise ConfigError(
            f"`resume`: the data of study {cfg.name!r} changed since it started (fingerprint "
            f"{previous['data']['fingerprint']} then, {data.fingerprint} now); restore the files."
        )
    summary = summarise_data(dataset.train, data, cfg.clean_config(), cfg.data_seed)  # data.parquet's rows
    write_table(summary, folder / DATA_FILE, DATA_SCHEMA)
    now = dt.datetime.now(dt.UTC).isoformat()
    info = {
        "schema_version": SCHEMA_VERSION,
        "name": cfg.name,
        "status": "running",
        "settings": settings,
        "space": space.to_dict(),  # whole, as a TOML file declares it: report, ablate and --resume need no file
        "classes": list(data.classes),
        "data": {
            "fingerprint": data.fingerprint,
            "train_path": dataset.train_path,
            "valid_path": cfg.valid or None,
            "unlabelled_paths": list(dataset.unlabelled_paths),
            "demo": dataset.demo,
            "n_train": int(len(data.y_train)),
            "n_valid": int(len(data.y_valid)),
            "n_unlabelled": dataset.unlabelled.n_texts,
            "unlabelled_tokens": dataset.unlabelled.corpus.n_tokens if dataset.unlabelled.corpus is not None else 0,
            "encoded_bytes": data.nbytes,
            "vectors": dataset.vectors,
            "accounting": dataset.accounting,
        },
        "packages": {p: _version(p) for p in PACKAGES},
        "hardware": _hardware(),
        "ray": {
            "storage": storage,
            "experiment_path": f"{storage.rstrip('/')}/{cfg.name}",
            "max_concurrent": at_once,
            "startup_trials": cfg.startup_trials(),
        },
        "started_at": (previous or {}).get("started_at") or now,
        "resumed_at": [*((previous or {}).get("resumed_at") or []), *([now] if previous else [])],
        "finished_at": None,
        "best_trial": None,
    }
    write_json(info, folder / STUDY_FILE)
    return PreparedStudy(cfg, folder, previous, space, data, info, started, dataset)


def _store(study: PreparedStudy):
    """The representation store of a space that searches the representation (representations.py), or None."""
    from trainables.vectorize import SEARCHED

    if not set(study.space.params) & set(SEARCHED):
        return None
    from study.search.representations import start_store
    from trainables.inputs import vector_cache_dir

    vectors = study.cfg.vector_config
    return start_store(study.dataset, study.cfg.clean_config(), vectors, vector_cache_dir(), study.data)


def build_tuner(study: PreparedStudy, callbacks: list, trainable: Callable, reuse_actors: bool):
    """The Tuner of a new study, or of an interrupted one restored from Ray's storage to run to its budget."""
    import optuna
    from ray import tune

    from study.compat import retry_trials_whose_worker_dies_in_reset, set_restored_callbacks

    cfg = study.cfg
    max_concurrent = study.info["ray"]["max_concurrent"]
    if reuse_actors:  # a worker killed while Ray resets it for its next trial is retried, not errored
        retry_trials_whose_worker_dies_in_reset()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(max_concurrent)  # searchers otherwise keep 1 pending
    fixed = study.fixed
    resources = {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial}
    store = _store(study)
    if store is None:  # every trial reads the study's data; a store only where the space searches the representation
        trainable = tune.with_parameters(trainable, data=study.data, fixed=fixed)
    else:
        trainable = tune.with_parameters(trainable, data=None, fixed=fixed, store=store)
    trainable = tune.with_resources(trainable, resources)
    path = study.experiment_path
    if study.previous is not None and tune.Tuner.can_restore(path):
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=False)
        # the pickled callbacks of the first run hold no state and write to its folder: ours instead
        set_restored_callbacks(tuner, callbacks)
        return tuner
    searcher, scheduler = _search(cfg, study.space)
    from study.search.checkpoints import checkpoint_config

    run_config = tune.RunConfig(
        name=cfg.name,
        storage_path=study.info["ray"]["storage"],
        callbacks=callbacks,
        checkpoint_config=checkpoint_config(),
        failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
        verbose=0,
    )
    tune_config = tune.TuneConfig(
        search_alg=searcher,
        scheduler=scheduler,
        num_samples=cfg.num_samples,
        max_concurrent_trials=max_concurrent,
        reuse_actors=reuse_actors,
    )
    return tune.Tuner(trainable, tune_config=tune_config, run_config=run_config)


def _search(cfg: StudyConfig, space: SearchSpace):
    """Optuna's TPE (seeded, constant liar for parallel trials) and ASHA with full rungs (scheduler.py)."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    from study.search.scheduler import FullRungASHA, min_rung_size

    sampler = optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=cfg.startup_trials(), constant_liar=True)
    # metric and mode go to the searcher and the scheduler themselves: with max_concurrent_trials Ray wraps
    # the searcher in a ConcurrencyLimiter that does not pass TuneConfig's metric on to OptunaSearch
    searcher = OptunaSearch(
        space=space.params, metric=METRIC, mode=MODE, points_to_evaluate=list(space.enqueue) or None, sampler=sampler
    )
    scheduler = FullRungASHA(
        min_rung_size(cfg.reduction_factor, cfg.num_samples),
        metric=cfg.asha_metric,
        mode=ASHA_METRICS[cfg.asha_metric],
        time_attr="training_iteration",
        max_t=cfg.max_epochs,
        grace_period=cfg.grace_period,
        reduction_factor=cfg.reduction_factor,
    )
    return searcher, scheduler


def write_results(study: PreparedStudy, grid) -> StudyOutcome:
    """Every row rebuilt from Ray's storage, written with optuna.db and the final study.json; once every trial has
    ended, the checkpoints pruned to what the results and `--keep-checkpoints` need (checkpoints.py).

    Raises:
        StudyWriteError: a file could not be written (the trials stay safe in Ray's storage).
        StudyInterrupted: the study stopped before its budget was spent.
    """
    cfg, folder = study.cfg, study.folder
    from study.search.checkpoints import disk_block, prune

    trial_rows, epoch_rows, stored = rows_from_storage(grid, study.experiment_path, study.rows)
    predictions = prediction_rows(trial_rows, stored, cfg.keep_predictions, study.data.y_valid)
    trials = pd.DataFrame(trial_rows, columns=TRIALS_SCHEMA.names)
    done = int((trials["status"] != TrialStatus.RUNNING).sum())
    finished = done >= cfg.num_samples
    best = trials.sort_values(BEST_METRIC, ascending=False).head(1)
    try:
        write_table(epoch_rows, folder / EPOCHS_FILE, EPOCHS_SCHEMA)
        write_table(trial_rows, folder / TRIALS_FILE, TRIALS_SCHEMA)
        write_table(predictions, folder / PREDICTIONS_FILE, PREDICTIONS_SCHEMA)
        epochs = pd.DataFrame(epoch_rows, columns=EPOCHS_SCHEMA.names)
        write_optuna_db(trials, epochs, study.space.params, folder / OPTUNA_FILE, cfg.name)
        kept = prune(trial_rows, stored, cfg.keep_checkpoints, cfg.keep_predictions) if finished else None
        end = {
            "status": "completed" if finished else "interrupted",
            "finished_at": dt.datetime.now(dt.UTC).isoformat() if finished else None,
            "wall_time_s": time.time() - study.started + float((study.previous or {}).get("wall_time_s") or 0),
            "trial_counts": trials["status"].value_counts().to_dict(),
            "best_trial": best.iloc[0].to_dict() if len(best) else None,
            "disk": disk_block(stored, folder, kept),
        }
        info = {**study.info, **end}
        write_json(info, folder / STUDY_FILE)
    except OSError as e:
        raise StudyWriteError(folder, cfg.name, e) from e
    if not finished:
        raise StudyInterrupted(folder, cfg.name, f"after {done} of {cfg.num_samples} trials")
    return StudyOutcome(cfg.name, folder, trials, info)


def final_step(
    study: PreparedStudy, dataset: Dataset, outcome: StudyOutcome, on_phase: Callable[[str], None]
) -> StudyOutcome:
    """The final stage (study/final/stage.py) after a complete search, then study.json with its `final` block.

    Raises:
        StudyWriteError: final.parquet, the model or study.json could not be written.
        StudyInterrupted: Ctrl-C during the final stage; `--resume` runs only the folds that did not finish.
    """
    from study.final.stage import FinalPlan, run_final_stage

    cfg, folder = study.cfg, study.folder
    at_once = tasks_at_once(trial_request(cfg), cluster_nodes(cfg))  # fold tasks the cluster holds at once
    resources = (cfg.cpus_per_trial, cfg.gpus_per_trial, cfg.max_failures)
    plan = FinalPlan(cfg.final_top, cfg.final_folds, cfg.data_seed, study.fixed, *resources, at_once)
    info = {**outcome.info, "status": "final_stage", "finished_at": None}
    try:
        write_json(info, folder / STUDY_FILE)
        if dataset.demo:
            log.info("Demo data: a smaller final stage than real data gets (study.config.DEMO_PRESET, %s)", DEMO_PRESET)
        provenance = {"study": cfg.name, "data_fingerprint": study.data.fingerprint}
        block = run_final_stage(folder, plan, outcome.trials, study_data(dataset, cfg), provenance, on_phase)
        from study.search.checkpoints import folder_bytes

        now = dt.datetime.now(dt.UTC).isoformat()
        info = {**info, "status": "completed", "finished_at": now, "final": block}
        info["disk"] = {**(info.get("disk") or {}), "folder_bytes": folder_bytes(folder)}  # the model included
        info["wall_time_s"] = time.time() - study.started + float((study.previous or {}).get("wall_time_s") or 0)
        write_json(info, folder / STUDY_FILE)
    except KeyboardInterrupt:
        write_json({**info, "status": "interrupted"}, folder / STUDY_FILE)
        raise StudyInterrupted(folder, cfg.name, "in its final stage (the search is complete)") from None
    except OSError as e:
        raise StudyWriteError(folder, cfg.name, e) from e
    return replace(outcome, info=info)


def run_study(
    cfg: StudyConfig,
    console=None,
    *,
    trainable: Callable | None = None,
    reuse_actors: bool = True,
    on_phase: Callable[[str], None] | None = None,
) -> StudyOutcome:
    """Run (or resume) a study to its full budget and write `results/<name>/`.

    Ray is imported only once settings and input files have passed their checks, so refusals are quick.

    Args:
        cfg: the study's settings.
        console: where the progress goes (default: a rich console on stderr).
        trainable: the trial function, called as `trainable(config, data=..., fixed=...)` (and `store=...` where
            the space searches the representation); default `trainables.trainable.train_sentiment` (benchmarks
            pass a wrapper that times it).
        reuse_actors: a finished trial's worker process runs the next one (no new process, no re-imports);
            False starts a process per trial.
        on_phase: called with "loaded", "ray", "encoded" and "fit" as those steps end and fitting begins, and
            with "final-row" as each row of the final stage is written.

    Raises:
        ConfigError, DataError: bad settings, input files or resources; nothing is written then.
        StudyInterrupted: stopped by Ctrl-C before the budget was spent; the study is resumable.
        StudyWriteError: the results could not be written; the study is resumable.
    """
    from trainables.cache import max_bytes, pinned

    try:
        max_bytes()  # the cache's bound (`RNN_STUDY_CACHE_MAX`), checked before any work
    except ValueError as e:
        raise ConfigError(str(e)) from None
    with pinned():  # the cache entries the study uses stay while it runs (trainables/cache.py)
        return _run_study(cfg, console, trainable, reuse_actors, on_phase or (lambda name: None))


def _run_study(
    cfg: StudyConfig, console, trainable: Callable | None, reuse_actors: bool, phase: Callable[[str], None]
) -> StudyOutcome:
    cfg, folder, previous = resolve(cfg)
    dataset = load_dataset(cfg)  # every input file validated here, before Ray or any writing
    phase("loaded")
    ray_started = init_ray(cfg)
    phase("ray")
    import ray

    from study.search.checkpoints import CheckpointPruner
    from study.search.progress import RichProgress
    from study.search.recorder import ResultsRecorder

    try:
        nodes = cluster_nodes(cfg)
        check_resources(cfg, nodes)
        with _claimed(folder, cfg.name, new=previous is None):
            study = prepare(cfg, folder, previous, dataset, nodes, phase)
            recorder = ResultsRecorder(folder, study.rows)
            progress = RichProgress(cfg.num_samples, recorder, console)
            if trainable is None:
                from trainables.trainable import train_sentiment as trainable
            pruner = CheckpointPruner(cfg.keep_checkpoints, cfg.keep_predictions)
            tuner = build_tuner(study, [recorder, progress, pruner], trainable, reuse_actors)
            plan = (cfg.name, cfg.num_samples, study.info["ray"]["max_concurrent"], study.experiment_path)
            log.info("Running study <name=%s, trials=%d, at once=%d, storage=%s>", *plan)
            phase("fit")
            try:
                grid = tuner.fit()
            finally:
                progress.stop()
            outcome = write_results(study, grid)
            return final_step(study, dataset, outcome, phase) if cfg.final_top else outcome
    finally:
        if ray_started:
            ray.shutdown()
