"""Turning Ray's trial results into our schema's rows, live (a tune.Callback) and from storage at the end.

The callback keeps trials.parquet and epochs.parquet current while the study runs, so a killed driver
leaves readable files. At the end (and after `--resume`) `rows_from_storage` rebuilds every row from each
trial's `result.json` in Ray's storage, which is complete even where the live files missed an epoch.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from ray import tune

from study.results import (
    EPOCH_METRICS,
    EPOCHS_FILE,
    EPOCHS_SCHEMA,
    TRIALS_FILE,
    TRIALS_SCHEMA,
    TrialStatus,
    summarise_trial,
    write_table,
)

log = logging.getLogger(__name__)

EPOCH_KEYS = (
    "epoch",
    *EPOCH_METRICS,
    "val_f1_per_class",
    "val_recall_per_class",
    "epoch_time_s",
    "time_total_s",
    "node_id",
)


def epoch_row(trial_id: str, result: dict[str, Any]) -> dict[str, Any]:
    row = {k: result.get(k) for k in EPOCH_KEYS}
    row["trial_id"] = trial_id
    for k in EPOCH_METRICS:
        if row[k] is not None and not math.isfinite(row[k]):
            row[k] = None if math.isnan(row[k]) else row[k]
    return row


def error_message(text: str | None) -> str | None:
    """The last line of a traceback, where the exception and its message are."""
    if not text:
        return None
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[-1][:2000] if lines else None


def retries(num_failures: int, status: TrialStatus) -> int:
    """Restarts after a failure: every failure Ray counted (`run_metadata.num_failures`) but an errored trial's last."""
    return max(0, num_failures - (status == TrialStatus.ERRORED))


def trial_status(ray_status: str, errored: bool, epochs_run: int, max_epochs: int) -> TrialStatus:
    if errored or ray_status == "ERROR":
        return TrialStatus.ERRORED
    if ray_status != "TERMINATED":
        return TrialStatus.RUNNING
    return TrialStatus.COMPLETED if epochs_run >= max_epochs else TrialStatus.STOPPED_EARLY


class ResultsRecorder(tune.Callback):
    """Records every epoch and trial end, and rewrites the two Parquet files atomically now and then."""

    def __init__(
        self,
        folder: Path,
        max_epochs: int,
        resources: dict[str, float],
        seed: int,
        fixed: dict[str, Any],
        flush_every_s: float = 2.0,
    ):
        self.folder = Path(folder)
        self.max_epochs = max_epochs
        self.resources = resources
        self.seed = seed
        self.fixed = fixed  # the space's fixed hyperparameters, part of every trial's settings
        self.flush_every_s = flush_every_s
        self.epochs: dict[str, dict[int, dict[str, Any]]] = {}
        self.trials: dict[str, dict[str, Any]] = {}
        self._last_flush = 0.0

    def _trial(self, trial) -> dict[str, Any]:
        return self.trials.setdefault(
            trial.trial_id,
            {
                "params": {**self.fixed, **trial.config},
                "status": "PENDING",
                "error": None,
                "hostname": None,
                "number": len(self.trials),
                "failures": 0,
            },  # creation order, as Ray's trial list keeps it
        )

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._trial(trial)["hostname"] = result.get("hostname")
        self.epochs.setdefault(trial.trial_id, {})[int(result["epoch"])] = epoch_row(trial.trial_id, result)
        if time.monotonic() - self._last_flush > self.flush_every_s:
            self.flush()

    def on_trial_complete(self, iteration, trials, trial, **info):
        t = self._trial(trial)
        t["status"], t["failures"] = "TERMINATED", trial.run_metadata.num_failures
        self.flush()

    def on_trial_error(self, iteration, trials, trial, **info):
        t = self._trial(trial)
        t["status"], t["error"] = "ERROR", error_message(trial.get_error())
        t["failures"] = trial.run_metadata.num_failures
        self.flush()

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._trial(trial)["failures"] = trial.run_metadata.num_failures
        self.flush()

    def on_experiment_end(self, trials, **info):
        self.flush()

    def rows(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        trial_rows, epoch_rows = [], []
        for trial_id, t in sorted(self.trials.items(), key=lambda kv: kv[1]["number"]):
            epochs = [self.epochs.get(trial_id, {})[e] for e in sorted(self.epochs.get(trial_id, {}))]
            epoch_rows.extend(epochs)
            status = trial_status(t["status"], t["error"] is not None, len(epochs), self.max_epochs)
            trial_rows.append(
                summarise_trial(
                    trial_id,
                    t["number"],
                    {**t["params"]},
                    epochs,
                    status,
                    t["error"],
                    node_id=epochs[-1]["node_id"] if epochs else None,
                    hostname=t["hostname"],
                    retries=retries(t["failures"], status),
                    seed=self.seed,
                    **self.resources,
                )
            )
        return trial_rows, epoch_rows

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        trial_rows, epoch_rows = self.rows()
        try:
            write_table(epoch_rows, self.folder / EPOCHS_FILE, EPOCHS_SCHEMA)
            write_table(trial_rows, self.folder / TRIALS_FILE, TRIALS_SCHEMA)
        except OSError as e:  # the final write reports it; a study is not stopped by a failed interim write
            log.warning("Could not write interim results <path=%s>: %s", self.folder, e)

    def __getstate__(self) -> dict[str, Any]:  # Ray pickles callbacks into tuner.pkl: keep it small
        return {**self.__dict__, "epochs": {}, "trials": {}}


def read_result_json(fs, path: str) -> list[dict[str, Any]]:
    """The results a trial reported (one JSON object per line of Ray's result.json)."""
    out = []
    try:
        with fs.open_input_stream(f"{path}/result.json") as f:
            text = f.readall().decode("utf-8")
    except (FileNotFoundError, OSError):
        return out
    for line in text.splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a killed process
                continue
    return out
