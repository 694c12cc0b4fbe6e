"""The progress of a running study and the final table of its top trials (rich, in the driver only).

On a terminal a live table; elsewhere (a log file, `nohup`) a plain line every few seconds, since a live view
there prints nothing until it stops. Both show `Counts`, made from the recorder's trial rows (recorder.py), so
the view and the files agree on every trial's status.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pandas as pd
from ray import tune
from rich.console import Console
from rich.live import Live
from rich.table import Table

from study.results import BEST_METRIC, TrialStatus
from trainables.metrics import METRIC


@dataclass(frozen=True)
class Counts:
    total: int  # the study's budget
    running: int = 0
    completed: int = 0
    stopped: int = 0  # by ASHA
    errored: int = 0
    best: tuple[float, str, int] | None = None  # (best METRIC so far, its trial, its epoch)

    @classmethod
    def of(cls, rows: list[dict[str, Any]], total: int) -> Counts:
        """The counts of trials.parquet rows (see rows.trial_row)."""
        n = Counter(r["status"] for r in rows)
        scored = [r for r in rows if r.get(BEST_METRIC) is not None and math.isfinite(r[BEST_METRIC])]
        top = max(scored, key=lambda r: r[BEST_METRIC], default=None)
        best = (top[BEST_METRIC], top["trial_id"], top["best_epoch"]) if top else None
        S = TrialStatus
        return cls(total, n[S.RUNNING], n[S.COMPLETED], n[S.STOPPED_EARLY], n[S.ERRORED], best)

    @property
    def done(self) -> int:
        return self.completed + self.stopped + self.errored

    @property
    def pending(self) -> int:
        return max(self.total - self.running - self.done, 0)

    def best_text(self) -> str:
        return f"{self.best[0]:.4f} (trial {self.best[1]}, epoch {self.best[2]})" if self.best else "-"


def progress_line(c: Counts, clock: str) -> str:
    """One line of progress, e.g. `[12:00:05] trials 3/12 done (1 early, 0 errored), 2 running, best ...`."""
    return (
        f"[{clock}] trials {c.done}/{c.total} done ({c.stopped} early, {c.errored} errored), {c.running} running, "
        f"best {METRIC} {c.best_text()}"
    )


def progress_table(c: Counts, elapsed_s: float) -> Table:
    table = Table(title=f"Study progress ({elapsed_s:,.0f} s)", show_header=True, expand=False)
    for col in ("running", "completed", "stopped early", "errored", "pending", "best " + METRIC):
        table.add_column(col, justify="right")
    table.add_row(*map(str, (c.running, c.completed, c.stopped, c.errored, c.pending)), c.best_text())
    return table


class RichProgress(tune.Callback):
    """Shows the counts of the recorder's rows: live on a terminal, else a line at most every `line_every_s`.

    Register it after the recorder, which then has seen each event first.
    """

    def __init__(self, total: int, recorder, console: Console | None = None, line_every_s: float = 10.0):
        self.total, self.recorder, self.console, self.line_every_s = total, recorder, console, line_every_s
        self._live: Live | None = None

    def setup(self, **info):
        self.start, self._last_line, self._started = time.monotonic(), -math.inf, True
        self.console = self.console or Console(stderr=True)
        if self.console.is_terminal:
            self._live = Live(self._table(), console=self.console, refresh_per_second=2, transient=False)
            self._live.start()

    def _table(self) -> Table:
        return progress_table(Counts.of(self.recorder.trial_rows(), self.total), time.monotonic() - self.start)

    def _show(self, final: bool = False) -> None:
        if self._live is not None:
            self._live.update(self._table())
        elif final or time.monotonic() - self._last_line >= self.line_every_s:
            self._last_line = time.monotonic()
            line = progress_line(Counts.of(self.recorder.trial_rows(), self.total), time.strftime("%H:%M:%S"))
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def _on_trial_event(self, **info):
        self._show()

    # Tune passes every argument by name: one method serves the four trial events
    on_trial_start = on_trial_result = on_trial_complete = on_trial_error = _on_trial_event

    def on_step_end(self, iteration, trials, **info):
        if self._live is None:  # the live view refreshes itself; a log gets a line when one is due
            self._show()

    def on_experiment_end(self, trials, **info):
        self.stop()

    def stop(self) -> None:
        """Show the last counts and end the live view (the driver calls it also when the study fails)."""
        if not getattr(self, "_started", False):
            return
        self._show(final=True)
        self._started = False
        if self._live is not None:
            self._live.stop()
            self._live = None

    def __getstate__(self) -> dict[str, Any]:  # Ray pickles callbacks into tuner.pkl
        return {**self.__dict__, "recorder": None, "console": None, "_live": None, "_started": False}


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
        ("F1", BEST_METRIC),
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
    for _, row in trials.sort_values(BEST_METRIC, ascending=False).head(k).iterrows():
        table.add_row(*[_fmt(key, row[key]) for _, key in cols])
    return table
