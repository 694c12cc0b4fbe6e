"""`run_study(cfg)`: validate, prepare the data once, run Ray Tune (OptunaSearch + ASHA), write results.

Order matters: settings, input files and cluster resources are all checked before anything is written to
`results/`; the data is encoded once in the driver and reaches the trials through Ray's object store.
The CLI lives in run.py; the schema and atomic writes in results.py; the live view in progress.py.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import math
import os
import platform
import time
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from search_spaces import get_space
from study.cli import EXIT_ERROR, EXIT_INTERRUPTED
from study.config import ASHA_METRICS, ConfigError, StudyConfig
from study.dataset import encode, load_dataset
from study.optuna_study import write_optuna_db
from study.results import (
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
    read_study,
    summarise_trial,
    write_json,
    write_table,
)
from trainables.metrics import METRIC, MODE

log = logging.getLogger(__name__)

PACKAGES = ("ray", "optuna", "torch", "gensim", "pandas", "pyarrow", "scikit-learn", "numpy")
LOCK_FILE = ".lock"


class StudyInterrupted(Exception):
    """The study stopped before its budget was spent (Ctrl-C); it can be completed with --resume."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self, folder: Path, name: str, done: int, total: int):
        self.folder, self.name, self.done, self.total = folder, name, done, total
        super().__init__(
            f"study {name!r} interrupted after {done} of {total} trials; its results so far are in {folder}. "
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


def _versions() -> dict[str, str]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "missing"
    return out


def _hardware(ray_resources: dict[str, float]) -> dict[str, Any]:
    import torch

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
        settings = {k: v for k, v in study["settings"].items() if k in StudyConfig.__dataclass_fields__}
        settings["clean_off"] = tuple(settings.get("clean_off", ()))
        # where Ray runs may change between the two runs; what the study is may not
        keep = {"address": cfg.address, "results_dir": cfg.results_dir, "resume": cfg.resume}
        if cfg.storage:
            keep["storage"] = cfg.storage
        return StudyConfig(**{**settings, **keep, "name": cfg.resume}), folder, study
    name = cfg.name or f"{cfg.space}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    folder = results_dir / name
    if folder.exists():
        raise ConfigError(
            f"`name`: a study named {name!r} already exists in {str(results_dir)!r} and is never overwritten. "
            f"Choose another `--name`, or complete it with `--resume {name}`."
        )
    return replace(cfg, name=name), folder, None


def _autoscaler_capacity() -> list[dict[str, float]]:
    """Resources of every worker the cluster launcher may start, read on a `ray up` head; [] elsewhere.

    Planning on the nodes that are up would ask an autoscaling cluster for only what its head holds, and it
    would never grow; a GPU study started before the first GPU worker joins would be refused.
    """
    path = Path("~/ray_bootstrap_config.yaml").expanduser()
    if not path.is_file():
        return []
    import yaml

    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    head = config.get("head_node_type")
    return [
        {k: float(v) for k, v in (t.get("resources") or {}).items()}
        for name, t in (config.get("available_node_types") or {}).items()
        if name != head
        for _ in range(int(t.get("max_workers", 0)))
    ]


def _cluster_resources(cfg: StudyConfig) -> tuple[dict[str, float], list[dict[str, float]]]:
    """The cluster's resources now, and the nodes to plan trials on (the launcher's workers included).

    Raises:
        ConfigError: the cluster spans several machines but `storage` is not shared.
    """
    import ray

    alive = [n for n in ray.nodes() if n.get("Alive")]
    hosts = {n.get("NodeManagerHostname") for n in alive}
    capacity = _autoscaler_capacity() if cfg.address else []
    if (len(hosts) > 1 or capacity) and not cfg.storage:
        raise ConfigError(
            f"this Ray cluster spans {max(len(hosts), 2)} machines, but `storage` is not set, so trials on worker "
            "nodes could not save checkpoints; give `--storage s3://bucket/prefix` or a path every node mounts "
            "(NFS, EFS)."
        )
    nodes = [n["Resources"] for n in alive]
    if capacity:
        workers = [n["Resources"] for n in alive if "node:__internal_head__" not in n["Resources"]]
        nodes = [r for r in nodes if r not in workers] + capacity  # running workers count within max_workers
    return ray.cluster_resources(), nodes


def check_resources(cfg: StudyConfig, nodes: list[dict[str, float]]) -> None:
    """Refuse per-trial requests that no node can hold (Ray would otherwise wait for ever)."""
    max_cpus = max((n.get("CPU", 0) for n in nodes), default=0)
    max_gpus = max((n.get("GPU", 0) for n in nodes), default=0)
    if cfg.gpus_per_trial > 0 and max_gpus == 0:
        raise ConfigError(
            f"`gpus_per_trial` is {cfg.gpus_per_trial}, but no node of this Ray cluster has a GPU. "
            "Use `--gpus-per-trial 0` to train on CPUs, or connect to a GPU cluster with `--address`."
        )
    if cfg.gpus_per_trial > max_gpus:
        raise ConfigError(
            f"`gpus_per_trial` is {cfg.gpus_per_trial}, but the largest node has {max_gpus:g} GPU(s); "
            f"ask for at most {max_gpus:g} (a fraction such as 0.25 shares a card)."
        )
    if cfg.cpus_per_trial > max_cpus:
        raise ConfigError(
            f"`cpus_per_trial` is {cfg.cpus_per_trial}, but the largest node has {max_cpus:g} CPU(s); "
            f"ask for at most {max_cpus:g}."
        )


def concurrency(cfg: StudyConfig, nodes: list[dict[str, float]]) -> int:
    """Trials at once: the user's `max_concurrent`, else what fits on the nodes, at most the budget."""
    if cfg.max_concurrent:
        return min(cfg.max_concurrent, cfg.num_samples)
    fit = 0
    for n in nodes:
        by_cpu = math.floor(n.get("CPU", 0) / cfg.cpus_per_trial + 1e-9)
        by_gpu = math.floor(n.get("GPU", 0) / cfg.gpus_per_trial + 1e-9) if cfg.gpus_per_trial else by_cpu
        fit += min(by_cpu, by_gpu)
    return max(1, min(fit, cfg.num_samples))


def _acquire_lock(folder: Path):
    fh = open(folder / LOCK_FILE, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise ConfigError(
            f"study {folder.name!r} is in use by another `study.run` process (lock {str(folder / LOCK_FILE)!r}); "
            "wait for it to finish or choose another `--name`."
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


def _init_ray(cfg: StudyConfig) -> bool:
    """Connect to `address` or start a local Ray; returns whether this call started it."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if cfg.address:
        ray.init(address=cfg.address, **kwargs)
    else:
        ray.init(include_dashboard=False, **kwargs)
    return True


def run_study(cfg: StudyConfig, console=None) -> StudyOutcome:
    """Run (or resume) a study to its full budget and write `results/<name>/`.

    Ray is imported only once settings and input files have passed their checks, so refusals are quick.

    Raises:
        ConfigError, DataError: bad settings, input files or resources; nothing is written then.
        StudyInterrupted: stopped by Ctrl-C before the budget was spent; the study is resumable.
    """
    cfg, folder, previous = resolve(cfg)
    space = get_space(cfg.space)
    dataset = load_dataset(cfg)  # every input file validated here, before Ray or any writing
    started = _init_ray(cfg)
    import ray

    try:
        resources, nodes = _cluster_resources(cfg)
        check_resources(cfg, nodes)
        if previous is None:
            try:
                folder.mkdir(parents=True, exist_ok=False)
            except FileExistsError:
                raise ConfigError(
                    f"`name`: a study named {cfg.name!r} was just created by another process; choose another `--name`."
                ) from None
        lock = _acquire_lock(folder)
        try:
            return _run_locked(cfg, folder, previous, space, dataset, resources, nodes, console)
        finally:
            lock.close()
    finally:
        if started:
            ray.shutdown()


def _run_locked(cfg, folder, previous, space, dataset, resources, nodes, console) -> StudyOutcome:
    import optuna
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from study.progress import RichProgress
    from study.ray_fixes import retry_trials_whose_worker_dies_in_reset
    from study.recorder import ResultsRecorder
    from study.scheduler import FullRungASHA, min_rung_size
    from trainables.trainable import train_sentiment

    t0 = time.time()
    retry_trials_whose_worker_dies_in_reset()  # reuse_actors below: a worker killed in its reset is retried
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    data = encode(dataset, cfg)
    storage = cfg.storage or str((folder / "ray").resolve())
    experiment_path = f"{storage.rstrip('/')}/{cfg.name}"
    max_concurrent = concurrency(cfg, nodes)
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(max_concurrent)  # searchers otherwise keep 1 pending
    study_info = {
        "schema_version": SCHEMA_VERSION,
        "name": cfg.name,
        "status": "running",
        "settings": cfg.to_dict(),
        "space": {
            "name": space.name,
            "params": {k: repr(v) for k, v in space.params.items()},
            "fixed": space.fixed,
            "enqueue": list(space.enqueue),
        },
        "classes": list(data.classes),
        "data": {
            "fingerprint": data.fingerprint,
            "train_path": dataset.train_path,
            "valid_path": cfg.valid or None,
            "unlabelled_path": dataset.unlabelled_path or None,
            "demo": dataset.demo,
            "n_train": int(len(data.y_train)),
            "n_valid": int(len(data.y_valid)),
            "n_unlabelled": len(dataset.unlabelled),
            "encoded_bytes": data.nbytes,
        },
        "packages": _versions(),
        "hardware": _hardware(resources),
        "ray": {
            "storage": storage,
            "experiment_path": experiment_path,
            "max_concurrent": max_concurrent,
            "startup_trials": cfg.startup_trials(),
        },
        "started_at": (previous or {}).get("started_at") or dt.datetime.now(dt.UTC).isoformat(),
        "resumed_at": [
            *((previous or {}).get("resumed_at") or []),
            *([dt.datetime.now(dt.UTC).isoformat()] if previous else []),
        ],
        "finished_at": None,
        "best_trial": None,
    }
    if previous and previous.get("data", {}).get("fingerprint") not in (None, data.fingerprint):
        raise ConfigError(
            f"`resume`: the data of study {cfg.name!r} changed since it started (fingerprint "
            f"{previous['data']['fingerprint']} then, {data.fingerprint} now); restore the files."
        )
    write_json(study_info, folder / STUDY_FILE)

    resources_per_trial = {"cpus": cfg.cpus_per_trial, "gpus": cfg.gpus_per_trial}
    recorder = ResultsRecorder(folder, cfg.max_epochs, resources_per_trial, cfg.seed, space.fixed)
    progress = RichProgress(cfg.num_samples, cfg.max_epochs, console)
    fixed = {
        **space.fixed,
        "seed": cfg.seed,
        "max_epochs": cfg.max_epochs,
        "num_threads": max(1, int(cfg.cpus_per_trial)),
        "device": "cuda" if cfg.gpus_per_trial else "cpu",
    }
    trainable = tune.with_resources(
        tune.with_parameters(train_sentiment, data=data, fixed=fixed),
        {"cpu": cfg.cpus_per_trial, "gpu": cfg.gpus_per_trial},
    )
    run_config = tune.RunConfig(
        name=cfg.name,
        storage_path=storage,
        callbacks=[recorder, progress],
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=2, checkpoint_score_attribute=METRIC, checkpoint_score_order=MODE
        ),
        failure_config=tune.FailureConfig(max_failures=cfg.max_failures),
        verbose=0,
    )
    if previous is not None and tune.Tuner.can_restore(experiment_path):
        tuner = tune.Tuner.restore(
            experiment_path,
            trainable=trainable,
            resume_unfinished=True,
            resume_errored=False,
            restart_errored=False,
        )
        tuner._local_tuner._run_config.callbacks = [recorder, progress]  # the pickled ones hold no state
    else:
        sampler = optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=cfg.startup_trials(), constant_liar=True)
        # metric and mode go to the searcher and the scheduler themselves: with max_concurrent_trials Ray wraps
        # the searcher in a ConcurrencyLimiter that does not pass TuneConfig's metric on to OptunaSearch
        searcher = OptunaSearch(
            space=space.params,
            metric=METRIC,
            mode=MODE,
            points_to_evaluate=list(space.enqueue) or None,
            sampler=sampler,
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
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=cfg.num_samples,
                max_concurrent_trials=max_concurrent,
                # a finished trial's worker process runs the next one: no new process, no re-imports
                reuse_actors=True,
            ),
            run_config=run_config,
        )
    log.info(
        "Running study <name=%s, trials=%d, at once=%d, storage=%s>",
        cfg.name,
        cfg.num_samples,
        max_concurrent,
        experiment_path,
    )
    try:
        grid = tuner.fit()
    finally:
        progress.stop()

    trials_df, epochs, predictions = collect(grid, experiment_path, cfg, space.fixed, data.y_valid)
    try:
        write_table(epochs, folder / EPOCHS_FILE, EPOCHS_SCHEMA)
        write_table(trials_df.to_dict("records"), folder / TRIALS_FILE, TRIALS_SCHEMA)
        write_table(predictions, folder / PREDICTIONS_FILE, PREDICTIONS_SCHEMA)
        write_optuna_db(
            trials_df,
            pd.DataFrame(epochs, columns=[f.name for f in EPOCHS_SCHEMA]),
            space.params,
            folder / OPTUNA_FILE,
            cfg.name,
        )
        done = int((trials_df["status"] != "running").sum())
        finished = done >= cfg.num_samples
        best = trials_df.sort_values("best_val_macro_f1", ascending=False).head(1)
        study_info.update(
            status="completed" if finished else "interrupted",
            finished_at=dt.datetime.now(dt.UTC).isoformat() if finished else None,
            wall_time_s=time.time() - t0 + float((previous or {}).get("wall_time_s") or 0),
            trial_counts=trials_df["status"].value_counts().to_dict(),
            best_trial=best.iloc[0].to_dict() if len(best) else None,
        )
        write_json(study_info, folder / STUDY_FILE)
    except OSError as e:
        raise StudyWriteError(folder, cfg.name, e) from e
    if not finished:
        raise StudyInterrupted(folder, cfg.name, done, cfg.num_samples)
    return StudyOutcome(cfg.name, folder, trials_df)


def collect(
    grid, experiment_path: str, cfg: StudyConfig, fixed: dict[str, Any], y_valid: np.ndarray
) -> tuple[pd.DataFrame, list[dict], list[dict]]:
    """Every trial's rows, rebuilt from Ray's storage, and the best-epoch predictions of the top trials."""
    from ray.tune import ExperimentAnalysis

    from study.recorder import epoch_row, error_message, read_result_json, retries, trial_status
    from trainables.trainable import load_history

    # The trial states as saved on storage: after Ctrl-C, Ray's in-memory trials all read TERMINATED, while the
    # saved state keeps the interrupted ones PENDING (and resumes them). In creation order.
    quiet = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level, _ = quiet.level, quiet.setLevel(logging.ERROR)  # not-yet-run trials have no metrics: expected
    try:
        ray_trials = ExperimentAnalysis(experiment_path, storage_filesystem=grid.filesystem).trials
    finally:
        quiet.setLevel(level)
    statuses = {t.trial_id: t.status for t in ray_trials}
    numbers = {t.trial_id: i for i, t in enumerate(ray_trials)}
    failures = {t.trial_id: t.run_metadata.num_failures for t in ray_trials}
    trial_rows, epoch_rows, best_ckpt = [], [], {}
    for result in grid:
        # by folder first: a trial that never reported on a reused worker has the worker's previous trial's
        # `trial_id` in its metrics (Ray asks the worker for them before it resets it)
        trial_id = next((t.trial_id for t in ray_trials if t.path == result.path), None)
        if trial_id is None:
            trial_id = result.metrics.get("trial_id") if result.metrics else None
        if trial_id is None:
            continue
        reported = read_result_json(result.filesystem, result.path)
        saved = load_history(result.checkpoint) if result.checkpoint else []
        # result.json first, then the latest checkpoint's history fills epochs a killed worker never got logged
        by_epoch = {int(r["epoch"]): epoch_row(trial_id, r) for r in saved if "epoch" in r}
        by_epoch.update({int(r["epoch"]): epoch_row(trial_id, r) for r in reported if "epoch" in r})
        epochs = [by_epoch[e] for e in sorted(by_epoch)]
        error = error_message(str(result.error)) if result.error else None
        status = trial_status(statuses.get(trial_id, "PENDING"), error is not None, len(epochs), cfg.max_epochs)
        config = {**fixed, **next((t.config for t in ray_trials if t.trial_id == trial_id), {})}
        hostname = reported[-1].get("hostname") if reported else None
        trial_rows.append(
            summarise_trial(
                trial_id,
                numbers.get(trial_id, len(numbers)),
                config,
                epochs,
                status,
                error,
                node_id=epochs[-1]["node_id"] if epochs else None,
                hostname=hostname,
                retries=retries(failures.get(trial_id, 0), status),
                seed=cfg.seed,
                cpus=cfg.cpus_per_trial,
                gpus=cfg.gpus_per_trial,
            )
        )
        epoch_rows.extend(epochs)
        if result.best_checkpoints:
            ckpt, metrics = max(
                result.best_checkpoints, key=lambda cm: (cm[1].get(METRIC, -1), -int(cm[1].get("epoch", 0)))
            )
            best_ckpt[trial_id] = (ckpt, int(metrics.get("epoch", 0)))
    trials_df = pd.DataFrame(trial_rows, columns=[f.name for f in TRIALS_SCHEMA])
    trials_df = trials_df.sort_values("trial_number").reset_index(drop=True)
    predictions = []
    top = trials_df.dropna(subset=["best_val_macro_f1"]).sort_values("best_val_macro_f1", ascending=False)
    for trial_id in top["trial_id"].head(cfg.keep_predictions):
        if trial_id not in best_ckpt:
            continue
        ckpt, epoch = best_ckpt[trial_id]
        try:
            with ckpt.as_directory() as d:
                probs = np.load(Path(d) / "val_probs.npy")
        except (OSError, ValueError) as e:
            log.warning("No predictions for trial %s: %s", trial_id, e)
            continue
        predictions.extend(
            {"trial_id": trial_id, "epoch": epoch, "row": i, "label": int(y), "probs": p.tolist()}
            for i, (y, p) in enumerate(zip(y_valid, probs, strict=False))
        )
    return trials_df, epoch_rows, predictions
