"""Ctrl-C in the middle of a study, then `--resume`: every trial exactly once, the full budget (real processes).

The Ctrl-C lands at a known moment: a test-only fault point (tests/faults/fault_points.py) holds the third trial
after its second epoch, so two trials are done and one is half done, on any machine.
"""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import optuna
import pytest
from faults.fault_points import arm, environment, held_trials

from study.results import read_table

N = 8  # trials, with no early stopping (grace period = max epochs)
ARGS = [
    "--smoke",
    "--final-top",
    "0",  # the search's resume (tests/test_final.py resumes a final stage)
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


def _study(args, cwd, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "study.run", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


@pytest.mark.slow
def test_interrupt_then_resume_completes_every_trial_once(tmp_path):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    results = tmp_path / "results"
    folder = results / "r"
    hook = tmp_path / "hook"
    hook.mkdir()
    arm(hook, "reported-2", 3)
    proc = _study([*ARGS, "--name", "r", "--results-dir", str(results)], repo, environment(hook))
    ((held, _),) = held_trials(hook, "reported-2", lambda: proc.poll() is None, timeout_s=300).items()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err[-3000:]
    assert "--resume r" in err
    study = json.loads((folder / "study.json").read_text())
    assert study["status"] == "interrupted"
    before = read_table(folder / "trials.parquet")
    assert (before["status"] != "running").sum() == 2  # the third trial was held after its second epoch

    proc = _study(["--resume", "r", "--results-dir", str(results)], repo)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    trials = read_table(folder / "trials.parquet")
    epochs = read_table(folder / "epochs.parquet")
    assert len(trials) == N and trials["trial_id"].is_unique
    assert set(trials["status"]) <= {"completed", "stopped_early"}
    assert (trials["retries"] == 0).all()  # an interrupted study's trials resume; they did not fail
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    assert epochs.groupby("trial_id").size().to_dict() == dict(zip(trials["trial_id"], trials["epochs_run"]))
    for _, t in trials.iterrows():  # every epoch of every trial, from 1 without a gap
        assert sorted(epochs.loc[epochs["trial_id"] == t["trial_id"], "epoch"]) == list(range(1, t["epochs_run"] + 1))
    # the trials finished before the interrupt are the same rows, not run again
    done_before = before[before["status"] != "running"]
    merged = done_before.merge(trials, on="trial_id", suffixes=("_a", "_b"))
    assert len(merged) == len(done_before)
    assert np.allclose(merged["best_val_macro_f1_a"], merged["best_val_macro_f1_b"], rtol=1e-6)
    # the held trial went on from its epoch-2 checkpoint: Ray logged each of its epochs once
    (trial_folder,) = (folder / "ray" / "r").glob(f"*{held}*")
    logged = [json.loads(line) for line in (trial_folder / "result.json").read_text().splitlines() if line.strip()]
    assert [r["epoch"] for r in logged] == [1, 2, 3, 4]
    study = json.loads((folder / "study.json").read_text())
    assert study["status"] == "completed" and len(study["resumed_at"]) == 1
    ostudy = optuna.load_study(study_name="r", storage=f"sqlite:///{folder / 'optuna.db'}")
    assert len(ostudy.trials) == N
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in ostudy.trials)
