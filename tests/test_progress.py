"""Trial rows and statuses from Ray's view of a trial, and the progress view built on them (no timers, no Ray)."""

import io

import pandas as pd
import pytest
from ray.tune.callback import CallbackList
from ray.tune.experiment import Trial
from rich.console import Console

from study.results import TRIALS_FILE, read_table
from study.search.progress import Counts, RichProgress, progress_line
from study.search.recorder import ResultsRecorder
from study.search.rows import RowContext, trial_row

CTX = RowContext(fixed={"num_layers": 1}, max_epochs=2, seed=7, cpus=1.0, gpus=0.0)


def _result(epoch: int, f1: float) -> dict:
    """One epoch's result as a trial reports it to Tune."""
    return {"epoch": epoch, "val_macro_f1": f1, "val_auc": 0.6, "val_accuracy": 0.5, "val_loss": 1.0, "node_id": "n1"}


def _row(trial_id: str, f1s: list[float], ray_status: str, error: str | None = None) -> dict:
    epochs = [{**_result(i + 1, f1), "trial_id": trial_id} for i, f1 in enumerate(f1s)]
    return trial_row(CTX, trial_id, 0, {"lr": 0.01}, epochs, ray_status, error)


@pytest.mark.parametrize(
    "f1s, ray_status, error, status",
    [
        ([0.3, 0.4], "TERMINATED", None, "completed"),  # every epoch of max_epochs=2
        ([0.3], "TERMINATED", None, "stopped_early"),  # ASHA stopped it
        ([0.3], "ERROR", None, "errored"),
        ([0.3], "TERMINATED", "NonFiniteLossError: loss became nan", "errored"),
        ([0.3], "RUNNING", None, "running"),
        ([], "PENDING", None, "running"),
    ],
)
def test_trial_row_status_from_rays(f1s, ray_status, error, status):
    row = _row("a", f1s, ray_status, error)
    assert row["status"] == status and row["epochs_run"] == len(f1s) and row["error"] == error
    assert row["params_lr"] == 0.01 and row["params_num_layers"] == 1 and row["seed"] == 7  # fixed settings too


def test_progress_line_is_made_from_the_counts():
    rows = [
        _row("a", [0.30, 0.41], "TERMINATED"),
        _row("b", [0.35], "TERMINATED"),
        _row("c", [0.2], "ERROR"),
        _row("d", [0.25], "RUNNING"),
    ]
    counts = Counts.of(rows, total=12)
    assert counts == Counts(12, running=1, completed=1, stopped=1, errored=1, best=(0.41, "a", 2))
    assert counts.pending == 8
    assert progress_line(counts, "12:00:05") == (
        "[12:00:05] trials 3/12 done (1 early, 1 errored), 1 running, best val_macro_f1 0.4100 (trial a, epoch 2)"
    )
    assert progress_line(Counts(4), "09:00:00").endswith("0 running, best val_macro_f1 -")


def _events(tmp_path, console: Console, line_every_s: float) -> tuple[RichProgress, CallbackList]:
    recorder = ResultsRecorder(tmp_path, CTX)
    progress = RichProgress(3, recorder, console, line_every_s=line_every_s)
    progress.setup()
    return progress, CallbackList([recorder, progress])  # Tune calls them in this order


def _run_two_trials(callbacks: CallbackList) -> None:
    a = Trial("t", trial_id="a", config={"lr": 0.01}, stub=True)
    b = Trial("t", trial_id="b", config={"lr": 0.1}, stub=True)
    callbacks.on_trial_start(iteration=0, trials=[a, b], trial=a)
    callbacks.on_trial_start(iteration=0, trials=[a, b], trial=b)
    callbacks.on_trial_result(iteration=1, trials=[a, b], trial=a, result=_result(1, 0.42))
    callbacks.on_trial_complete(iteration=2, trials=[a, b], trial=a)  # 1 of 2 epochs: stopped early


def test_a_console_that_is_no_terminal_gets_a_line_on_every_trial_event(tmp_path):
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=300)
    progress, callbacks = _events(tmp_path, console, line_every_s=0)
    _run_two_trials(callbacks)
    progress.stop()
    progress.stop()  # the driver stops it again after Tune's own end: no second final line
    lines = [ln.split("] ", 1)[1] for ln in out.getvalue().splitlines()]
    assert lines == [
        "trials 0/3 done (0 early, 0 errored), 1 running, best val_macro_f1 -",
        "trials 0/3 done (0 early, 0 errored), 2 running, best val_macro_f1 -",
        "trials 0/3 done (0 early, 0 errored), 2 running, best val_macro_f1 0.4200 (trial a, epoch 1)",
        "trials 1/3 done (1 early, 0 errored), 1 running, best val_macro_f1 0.4200 (trial a, epoch 1)",
        "trials 1/3 done (1 early, 0 errored), 1 running, best val_macro_f1 0.4200 (trial a, epoch 1)",  # stop
    ]
    trials = read_table(tmp_path / TRIALS_FILE)  # the files the recorder wrote say the same
    assert trials.set_index("trial_id")["status"].to_dict() == {"a": "stopped_early", "b": "running"}


def test_lines_come_at_most_once_a_period_and_once_more_at_the_end(tmp_path):
    out = io.StringIO()
    progress, callbacks = _events(tmp_path, Console(file=out, force_terminal=False, width=300), line_every_s=3600)
    _run_two_trials(callbacks)
    callbacks.on_step_end(iteration=3, trials=[])
    progress.stop()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "0/3 done" in lines[0] and "1/3 done (1 early" in lines[1]


def test_a_terminal_gets_the_live_table_and_no_lines(tmp_path):
    out = io.StringIO()
    progress, callbacks = _events(tmp_path, Console(file=out, force_terminal=True, width=200), line_every_s=0)
    _run_two_trials(callbacks)
    progress.stop()
    text = out.getvalue()
    assert "Study progress" in text and "0.4200 (trial a, epoch 1)" in text and "trials 1/3 done" not in text


def test_a_log_file_gets_whole_lines(capsys, monkeypatch):
    """Not a terminal (a log file, `nohup`): no line wrapped at 80 columns, nothing padded, a command copyable."""
    import logging

    from study.console import setup_console
    from study.search.progress import top_trials_table

    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    console = setup_console()
    assert not console.is_terminal
    folder = "results/a-study-name-long-enough-to-run-past-eighty-columns-2026-12-06-19-00-00"
    logging.getLogger("study.test").info("Final stage 5/5: trial abc, fold 5, macro-F1 0.4000 · %s", "x" * 80)
    console.print(f"Results: [bold]{folder}[/]  ·  report: python -m study.report {folder}")
    trials = pd.DataFrame([_row("abcdef12", [0.3, 0.4], "TERMINATED")])
    console.print(top_trials_table(trials.assign(params_cell="lstm", params_hidden_size=16, params_batch_size=64)))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("INFO     Final stage 5/5: trial abc, fold 5, macro-F1 0.4000 · " + "x" * 80)
    assert lines[1] == f"Results: {folder}  ·  report: python -m study.report {folder}"
    assert all(line == line.rstrip() for line in lines)  # no padding to the console's width
    assert any("lstm" in line and "abcdef12" in line for line in lines)  # the table at its own width, uncut
