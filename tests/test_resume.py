"""Ctrl-C in the middle of a study, then `--resume`: every trial exactly once, the full budget (real processes)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import optuna
import pytest

from study.results import read_table

N = 8  # trials: with no early stopping (grace period = max epochs) the study runs long enough to be interrupted
ARGS = [
    "--smoke",
    "--num-samples",
    str(N),
    "--max-epochs",
    "4",
    "--grace-period",
    "4",
    "--demo-rows",
    "300",
    "--vector-size",
    "16",
    "--max-concurrent",
    "1",
]


def _study(args, cwd, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "study.run", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        **kw,
    )


def _wait_for_epochs(folder, n, proc, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if len(read_table(folder / "epochs.parquet")) >= n:
                return
        except Exception:  # noqa: BLE001 - not written yet
            pass
        time.sleep(0.5)
    raise AssertionError(f"no {n} epochs within {timeout} s")


@pytest.mark.slow
def test_interrupt_then_resume_completes_every_trial_once(tmp_path):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    results = tmp_path / "results"
    folder = results / "r"
    proc = _study([*ARGS, "--name", "r", "--results-dir", str(results)], repo)
    _wait_for_epochs(folder, 2, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err[-3000:]
    assert "--resume r" in err
    study = json.loads((folder / "study.json").read_text())
    assert study["status"] == "interrupted"
    before = read_table(folder / "trials.parquet")
    assert (before["status"] != "running").sum() < N

    proc = _study(["--resume", "r", "--results-dir", str(results)], repo)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    trials = read_table(folder / "trials.parquet")
    epochs = read_table(folder / "epochs.parquet")
    assert len(trials) == N and trials["trial_id"].is_unique
    assert set(trials["status"]) <= {"completed", "stopped_early"}
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    assert epochs.groupby("trial_id").size().to_dict() == dict(zip(trials["trial_id"], trials["epochs_run"]))
    for _, t in trials.iterrows():  # every epoch of every trial, from 1 without a gap
        assert sorted(epochs.loc[epochs["trial_id"] == t["trial_id"], "epoch"]) == list(range(1, t["epochs_run"] + 1))
    # the trials finished before the interrupt are the same rows, not run again
    done_before = before[before["status"] != "running"]
    merged = done_before.merge(trials, on="trial_id", suffixes=("_a", "_b"))
    assert len(merged) == len(done_before)
    assert np.allclose(merged["best_val_macro_f1_a"], merged["best_val_macro_f1_b"], rtol=1e-6)
    study = json.loads((folder / "study.json").read_text())
    assert study["status"] == "completed" and len(study["resumed_at"]) == 1
    ostudy = optuna.load_study(study_name="r", storage=f"sqlite:///{folder / 'optuna.db'}")
    assert len(ostudy.trials) == N
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in ostudy.trials)
