"""The live record of a study: a tune.Callback that keeps trials.parquet and epochs.parquet current.

A killed driver thus leaves readable files. The rows come from rows.py (`trial_row`, `epoch_row`); at the end
(and after `--resume`) the driver rebuilds every row from Ray's storage with `rows.rows_from_storage`, which is
complete even where the live files missed an epoch. The progress view (progress.py) reads its counts from here.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ray import tune

from study.results import EPOCHS_FILE, EPOCHS_SCHEMA, TRIALS_FILE, TRIALS_SCHEMA, write_table
from study.search.rows import RowContext, epoch_row, error_message, trial_row

log = logging.getLogger(__name__)


class ResultsRecorder(tune.Callback):
    """Records every trial start, epoch and end, and rewrites the two Parquet files atomically now and then."""

    def __init__(self, folder: Path, ctx: RowContext, flush_every_s: float = 2.0):
        self.folder, self.ctx, self.flush_every_s = Path(folder), ctx, flush_every_s
        self.epochs: dict[str, dict[int, dict[str, Any]]] = {}
        self.trials: dict[str, dict[str, Any]] = {}  # in creation order, as Ray's trial list keeps them
        self._last_flush = 0.0

    def _trial(self, trial) -> dict[str, Any]:
        new = {"number": len(self.trials), "config": dict(trial.config), "ray_status": "PENDING", "error": None}
        return self.trials.setdefault(trial.trial_id, {**new, "hostname": None, "failures": 0})

    def on_trial_start(self, iteration, trials, trial, **info):
        self._trial(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._trial(trial)["hostname"] = result.get("hostname")
        self.epochs.setdefault(trial.trial_id, {})[int(result["epoch"])] = epoch_row(trial.trial_id, result)
        if time.monotonic() - self._last_flush > self.flush_every_s:
            self.flush()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._trial(trial).update(ray_status="TERMINATED", failures=trial.run_metadata.num_failures)
        self.flush()

    def on_trial_error(self, iteration, trials, trial, **info):
        error = error_message(trial.get_error())
        self._trial(trial).update(ray_status="ERROR", error=error, failures=trial.run_metadata.num_failures)
        self.flush()

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._trial(trial)["failures"] = trial.run_metadata.num_failures
        self.flush()

    def on_experiment_end(self, trials, **info):
        self.flush()

    def epoch_rows(self, trial_id: str) -> list[dict[str, Any]]:
        by_epoch = self.epochs.get(trial_id, {})
        return [by_epoch[e] for e in sorted(by_epoch)]

    def trial_rows(self) -> list[dict[str, Any]]:
        """A trials.parquet row for every trial seen so far, in creation order."""
        return [trial_row(self.ctx, tid, epochs=self.epoch_rows(tid), **t) for tid, t in self.trials.items()]

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        try:
            write_table([r for i in self.trials for r in self.epoch_rows(i)], self.folder / EPOCHS_FILE, EPOCHS_SCHEMA)
            write_table(self.trial_rows(), self.folder / TRIALS_FILE, TRIALS_SCHEMA)
        except OSError as e:  # the final write reports it; a study is not stopped by a failed interim write
            log.warning("Could not write interim results <path=%s>: %s", self.folder, e)

    def __getstate__(self) -> dict[str, Any]:  # Ray pickles callbacks into tuner.pkl: keep it small
        return {**self.__dict__, "epochs": {}, "trials": {}}
