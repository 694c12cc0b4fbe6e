"""Ray's trial results as our rows: epoch rows, trial rows with their status, prediction rows.

One function, `trial_row`, makes a trials.parquet row from what Ray knows of a trial (its id, number, config,
epoch results, Ray status and error); the live recorder (recorder.py), the final collection from Ray's
storage (`rows_from_storage`) and the progress view all go through it, so they agree on every status.
Not here: the schema and writing (results.py), the callback that keeps the files current (recorder.py).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from study.results import BEST_METRIC, EPOCH_METRICS, EPOCHS_SCHEMA, PARAM_TYPES, SUMMARY_METRICS, TrialStatus
from trainables.metrics import METRIC

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowContext:
    """What every trial row of a study shares: the space's fixed settings, the epoch budget, seed, resources."""

    fixed: dict[str, Any]  # the space's fixed hyperparameters, part of every trial's settings
    max_epochs: int
    seed: int
    cpus: float
    gpus: float


def epoch_row(trial_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """An epochs.parquet row from one result a trial reported (NaN metrics become null)."""
    row = {**{k: result.get(k) for k in EPOCHS_SCHEMA.names}, "trial_id": trial_id}
    for k in EPOCH_METRICS:
        if row[k] is not None and math.isnan(row[k]):
            row[k] = None
    return row


def error_message(text: str | None) -> str | None:
    """The last line of a traceback, where the exception and its message are."""
    lines = [ln.strip() for ln in str(text or "").strip().splitlines() if ln.strip()]
    return lines[-1][:2000] if lines else None


def retries(num_failures: int, status: TrialStatus) -> int:
    """Restarts after a failure: every failure Ray counted (`run_metadata.num_failures`) but an errored trial's last."""
    return max(0, num_failures - (status == TrialStatus.ERRORED))


def trial_status(ray_status: str, errored: bool, epochs_run: int, max_epochs: int) -> TrialStatus:
    """Ours from Ray's: a TERMINATED trial completed when it ran every epoch, else ASHA stopped it early."""
    if errored or ray_status == "ERROR":
        return TrialStatus.ERRORED
    if ray_status != "TERMINATED":
        return TrialStatus.RUNNING
    return TrialStatus.COMPLETED if epochs_run >= max_epochs else TrialStatus.STOPPED_EARLY


def trial_row(
    ctx: RowContext,
    trial_id: str,
    number: int,
    config: dict[str, Any],
    epochs: list[dict[str, Any]],
    ray_status: str,
    error: str | None = None,
    hostname: str | None = None,
    failures: int = 0,
) -> dict[str, Any]:
    """The trials.parquet row of one trial from what Ray knows of it; `epochs` are its epoch rows in order.

    `failures` is Ray's count of the trial's failures (`run_metadata.num_failures`). The best epoch is the one
    with the highest validation macro-F1 (the earliest on ties).
    """
    status = trial_status(ray_status, error is not None, len(epochs), ctx.max_epochs)
    params = {**ctx.fixed, **config}
    row: dict[str, Any] = {
        "trial_id": trial_id,
        "trial_number": number,
        "status": status.value,
        "error": error,
        "epochs_run": len(epochs),
        "node_id": epochs[-1]["node_id"] if epochs else None,
        "hostname": hostname,
        "seed": ctx.seed,
        "cpus": ctx.cpus,
        "gpus": ctx.gpus,
        "retries": retries(failures, status),
        **{f"params_{k}": params.get(k) for k in PARAM_TYPES},
    }
    if epochs:
        scores = [e[METRIC] if e[METRIC] is not None and math.isfinite(e[METRIC]) else -math.inf for e in epochs]
        best, last = epochs[scores.index(max(scores))], epochs[-1]
        row["best_epoch"], row["time_total_s"] = best["epoch"], last.get("time_total_s")
        for m in SUMMARY_METRICS:
            row[f"best_{m}"], row[f"last_{m}"] = best[m], last[m]
    return row


def read_result_json(fs, path: str) -> list[dict[str, Any]]:
    """The results a trial reported (one JSON object per line of Ray's result.json)."""
    try:
        with fs.open_input_stream(f"{path}/result.json") as f:
            text = f.readall().decode("utf-8")
    except (FileNotFoundError, OSError):
        return []
    out = []
    for line in filter(None, (ln.strip() for ln in text.splitlines())):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a killed process
            continue
    return out


@dataclass(frozen=True, eq=False)
class StoredTrial:
    """A trial's folder on Ray's storage and its checkpoints there (study/search/checkpoints.py decides what stays)."""

    path: str  # the trial's folder, a path in `filesystem`
    filesystem: Any  # pyarrow.fs.FileSystem of the storage
    latest: Any  # its latest checkpoint (ray.tune.Checkpoint), or None
    best: Any  # its checkpoint of the highest validation macro-F1 (the earliest on ties), or None
    best_epoch: int  # the best checkpoint's epoch (0 without one)
    checkpoint_bytes: tuple[int, ...]  # the size of every checkpoint it reported, in order (result.json)


def rows_from_storage(
    grid, experiment_path: str, ctx: RowContext
) -> tuple[list[dict], list[dict], dict[str, StoredTrial]]:
    """Every trial's row and epoch rows, rebuilt from Ray's storage, and where each trial's checkpoints are.

    Returns:
        (trial rows in trial order, epoch rows, trial id -> its StoredTrial).
    """
    from ray.tune import ExperimentAnalysis

    from trainables.trainable import CHECKPOINT_BYTES, load_history

    # The trial states as saved on storage: after Ctrl-C, Ray's in-memory trials all read TERMINATED, while the
    # saved state keeps the interrupted ones PENDING (and resumes them). In creation order.
    quiet = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level, _ = quiet.level, quiet.setLevel(logging.ERROR)  # not-yet-run trials have no metrics: expected
    try:
        ray_trials = ExperimentAnalysis(experiment_path, storage_filesystem=grid.filesystem).trials
    finally:
        quiet.setLevel(level)
    by_id = {t.trial_id: (i, t) for i, t in enumerate(ray_trials)}
    trial_rows, epoch_rows, stored = [], [], {}
    for result in grid:
        # the trial whose folder this is; a trial that never reported may carry the metrics (and the id) of the
        # trial its reused worker ran before it, so those come second
        trial_id = next((t.trial_id for t in ray_trials if t.path == result.path), None)
        trial_id = trial_id or (result.metrics or {}).get("trial_id")
        if trial_id is None:
            continue
        reported = read_result_json(result.filesystem, result.path)
        try:
            saved = load_history(result.checkpoint) if result.checkpoint else []
        except (OSError, ValueError) as e:  # gone from storage: result.json's epochs are the record
            log.warning("No epoch history for trial %s: %s", trial_id, e)
            saved = []
        # result.json first, then the latest checkpoint's history fills epochs a killed worker never got logged
        by_epoch = {int(r["epoch"]): epoch_row(trial_id, r) for r in saved if "epoch" in r}
        by_epoch.update({int(r["epoch"]): epoch_row(trial_id, r) for r in reported if "epoch" in r})
        epochs = [by_epoch[e] for e in sorted(by_epoch)]
        number, ray_trial = by_id.get(trial_id, (len(by_id), None))
        config, ray_status = (ray_trial.config, ray_trial.status) if ray_trial else ({}, "PENDING")
        error = error_message(str(result.error)) if result.error else None
        hostname = reported[-1].get("hostname") if reported else None
        failures = ray_trial.run_metadata.num_failures if ray_trial else 0
        trial_rows.append(trial_row(ctx, trial_id, number, config, epochs, ray_status, error, hostname, failures))
        epoch_rows.extend(epochs)
        best, best_epoch = None, 0
        if result.best_checkpoints:
            best, metrics = max(
                result.best_checkpoints, key=lambda cm: (cm[1].get(METRIC, -1), -int(cm[1].get("epoch", 0)))
            )
            best_epoch = int(metrics.get("epoch", 0))
        written = tuple(int(r[CHECKPOINT_BYTES]) for r in reported if r.get(CHECKPOINT_BYTES) is not None)
        stored[trial_id] = StoredTrial(result.path, result.filesystem, result.checkpoint, best, best_epoch, written)
    return sorted(trial_rows, key=lambda r: r["trial_number"]), epoch_rows, stored


def top_trials(trials: list[dict], n: int) -> list[str]:
    """The ids of the `n` trials of the highest best validation macro-F1 (trials never scored left out)."""
    scored = [t for t in trials if t.get(BEST_METRIC) is not None and math.isfinite(t[BEST_METRIC])]
    return [t["trial_id"] for t in sorted(scored, key=lambda t: -t[BEST_METRIC])[:n]]


def prediction_rows(trials: list[dict], stored: dict[str, StoredTrial], keep: int, y_valid: np.ndarray) -> list[dict]:
    """predictions.parquet rows: the validation probabilities at the best epoch of the `keep` best trials."""
    from trainables.trainable import PROBS_FILE

    rows = []
    for trial_id in (t for t in top_trials(trials, keep) if t in stored and stored[t].best is not None):
        ckpt, epoch = stored[trial_id].best, stored[trial_id].best_epoch
        try:
            with ckpt.as_directory() as d:
                probs = np.load(Path(d) / PROBS_FILE)
        except (OSError, ValueError) as e:
            log.warning("No predictions for trial %s: %s", trial_id, e)
            continue
        rows.extend(
            {"trial_id": trial_id, "epoch": epoch, "row": i, "label": int(y), "probs": p.tolist()}
            for i, (y, p) in enumerate(zip(y_valid, probs, strict=False))
        )
    return rows
