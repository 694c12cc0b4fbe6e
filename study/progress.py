"""The live terminal view of a study (a rich tune.Callback in the driver) and the final table of top trials."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
from ray import tune
from rich.console import Console
from rich.live import Live
from rich.table import Table

from trainables.metrics import METRIC


class RichProgress(tune.Callback):
    """Counts running / finished / stopped early / errored trials and shows the best score so far."""

    def __init__(self, total: int, max_epochs: int, console: Console | None = None):
        self.total = total
        self.max_epochs = max_epochs
        self.console = console
        self._live: Live | None = None

    def setup(self, **info):
        self.start = time.monotonic()
        self.epochs: dict[str, int] = {}
        self.finished: dict[str, str] = {}
        self.best: tuple[float, str, int] | None = None
        self.running: set[str] = set()
        self.console = self.console or Console(stderr=True)
        self._live = Live(self._render(), console=self.console, refresh_per_second=2, transient=False)
        self._live.start()

    def _render(self) -> Table:
        counts = {s: sum(1 for v in self.finished.values() if v == s) for s in ("completed", "stopped", "errored")}
        elapsed = time.monotonic() - self.start
        table = Table(title=f"Study progress ({elapsed:,.0f} s)", show_header=True, expand=False)
        for col in ("running", "completed", "stopped early", "errored", "pending", "best " + METRIC):
            table.add_column(col, justify="right")
        pending = self.total - len(self.running) - len(self.finished)
        best = f"{self.best[0]:.4f} ({self.best[1]}, epoch {self.best[2]})" if self.best else "-"
        table.add_row(
            str(len(self.running)),
            str(counts["completed"]),
            str(counts["stopped"]),
            str(counts["errored"]),
            str(max(pending, 0)),
            best,
        )
        return table

    def _update(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running.add(trial.trial_id)
        self._update()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.epochs[trial.trial_id] = int(result.get("epoch", 0))
        value = result.get(METRIC)
        if value is not None and value == value and (self.best is None or value > self.best[0]):
            self.best = (float(value), trial.trial_id, int(result.get("epoch", 0)))
        self._update()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        done = self.epochs.get(trial.trial_id, 0) >= self.max_epochs
        self.finished[trial.trial_id] = "completed" if done else "stopped"
        self._update()

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.finished[trial.trial_id] = "errored"
        self._update()

    def on_experiment_end(self, trials, **info):
        self.stop()

    def stop(self) -> None:
        if self._live is not None:
            self._update()
            self._live.stop()
            self._live = None

    def __getstate__(self) -> dict[str, Any]:  # Ray pickles callbacks into tuner.pkl
        return {"total": self.total, "max_epochs": self.max_epochs, "console": None, "_live": None}


def _fmt(key: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if key == "params_lr":
        return f"{v:.1e}"
    if key == "status":
        return {"completed": "done", "stopped_early": "early", "errored": "error"}.get(v, str(v))
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def top_trials_table(trials: pd.DataFrame, k: int = 5) -> Table:
    """A rich table of the k best trials of a trials.parquet frame."""
    table = Table(title=f"Top {k} trials by best validation macro-F1")
    cols = [
        ("trial", "trial_id"),
        ("status", "status"),
        ("F1", "best_val_macro_f1"),
        ("AUC", "best_val_auc"),
        ("epoch", "best_epoch"),
        ("cell", "params_cell"),
        ("H", "params_hidden_size"),
        ("layers", "params_num_layers"),
        ("lr", "params_lr"),
        ("batch", "params_batch_size"),
    ]
    for title, _ in cols:
        table.add_column(title, justify="right", no_wrap=True)
    for _, row in trials.sort_values("best_val_macro_f1", ascending=False).head(k).iterrows():
        table.add_row(*[_fmt(key, row[key]) for _, key in cols])
    return table
