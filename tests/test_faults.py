"""Faults a long study must survive, each injected into real processes: killed workers and drivers, NaN losses,
a full disk, an unwritable folder, two drivers on one study. Every case checks that no trial is lost or doubled.

Workers are killed at known points, never by racing a timer: the study's processes load the test-only fault points
of tests/faults/fault_points.py, which wrap the product's functions (the trial process waits at the point until
the test has killed it).
"""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from faults.fault_points import ALL, FAULT_HOOK_VARIABLE, arm, environment, held_trials, hold, kill_held_trial, let_go

from study.results import TrialStatus, read_table
from study.search.rows import retries, top_trials
from trainables.baseline import BASELINES
from trainables.trainable import HISTORY_FILE, PROBS_FILE, STATE_FILE

REPO = Path(__file__).resolve().parents[1]
TINY = ["--smoke", "--vector-size", "16", "--max-concurrent", "1", "--final-top", "0"]  # the search alone
FINAL = ["--final-top", "2", "--final-folds", "2"]  # flags after TINY's win: a final stage (case e)


@pytest.fixture
def ray_tmp():
    """A private, short RAY_TMPDIR, so the processes of one test's Ray are easy to find and to tell apart."""
    d = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    yield d
    for pid in _ray_pids(d):  # nothing of this test's Ray may outlive it
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(d, ignore_errors=True)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _environ_has(pid: int, needle: str) -> bool:
    try:
        return needle.encode() in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


def _ray_pids(ray_tmp: str) -> list[int]:
    """Live processes that belong to the Ray started under `ray_tmp` (by command line or environment)."""
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and int(p.name) != os.getpid():
            pid = int(p.name)
            if ray_tmp in _cmdline(pid) or _environ_has(pid, f"RAY_TMPDIR={ray_tmp}"):
                out.append(pid)
    return out


def _run(args, ray_tmp, hook=None, **kw):
    env = {**os.environ, "RAY_TMPDIR": ray_tmp, "COLUMNS": "200"}
    if hook is not None:
        env.update(environment(hook))
    return subprocess.Popen(
        [sys.executable, "-m", "study.run", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def _wait(predicate, proc=None, timeout=240, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended before {what}: {proc.communicate()[1][-3000:]}")
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - files not written yet
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _epochs_at_least(folder, n):
    return lambda: len(read_table(folder / "epochs.parquet")) >= n


def _check_complete(folder, n_trials, max_epochs=None):
    """Every trial exactly once, every epoch of each exactly once, Optuna's history the same trials."""
    trials = read_table(folder / "trials.parquet")
    epochs = read_table(folder / "epochs.parquet")
    assert len(trials) == n_trials and trials["trial_id"].is_unique
    assert "running" not in set(trials["status"])
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    for _, t in trials.iterrows():
        got = sorted(epochs.loc[epochs["trial_id"] == t["trial_id"], "epoch"])
        assert got == list(range(1, t["epochs_run"] + 1)), (t["trial_id"], got)
        if max_epochs is not None and t["status"] == "completed":
            assert t["epochs_run"] == max_epochs
    study = json.loads((folder / "study.json").read_text())
    assert study["status"] == "completed"
    ostudy = optuna.load_study(study_name=study["name"], storage=f"sqlite:///{folder / 'optuna.db'}")
    assert sorted(t.user_attrs["trial_id"] for t in ostudy.trials) == sorted(trials["trial_id"])
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in ostudy.trials)
    return trials, epochs


# ----------------------------------------------------------------------------- the fault points, no Ray
def test_a_fault_point_costs_nothing_unset_and_holds_only_the_armed_trial(tmp_path, monkeypatch):
    import threading

    monkeypatch.delenv(FAULT_HOOK_VARIABLE, raising=False)
    hold("start", "t1")  # unset: returns at once, writes nothing
    monkeypatch.setenv(FAULT_HOOK_VARIABLE, str(tmp_path))
    hold("start", "t1")  # not armed
    assert list(tmp_path.iterdir()) == []
    arm(tmp_path, "start", 2)
    hold("start", "t1")  # the first trial to arrive passes
    held = threading.Thread(target=hold, args=("start", "t2"))
    held.start()
    ready = tmp_path / "start-t2.ready"
    while not ready.exists():
        assert held.is_alive()
        held.join(0.01)
    assert int(ready.read_text()) == os.getpid() and held.is_alive()
    hold("start", "t1")  # t1 keeps its place (1), so a retried t1 is not held
    (tmp_path / "start.go").write_text("")
    held.join(10)
    assert not held.is_alive()
    hold("start", "t3")  # once let go, the point holds no one
    assert sorted(p.name for p in tmp_path.glob("*.ready")) == ["start-t2.ready"]


def test_a_fault_point_armed_for_all_holds_every_trial_until_let_go(tmp_path, monkeypatch):
    import threading

    monkeypatch.setenv(FAULT_HOOK_VARIABLE, str(tmp_path))
    arm(tmp_path, "reported-1", ALL)
    threads = [threading.Thread(target=hold, args=("reported-1", t)) for t in ("t1", "t2")]
    for t in threads:
        t.start()
    held = held_trials(tmp_path, "reported-1", lambda: True, count=2, timeout_s=30)
    assert held == {"t1": os.getpid(), "t2": os.getpid()} and all(t.is_alive() for t in threads)
    hold("reported-2", "t1")  # another point: not armed
    let_go(tmp_path, "reported-1")
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    with pytest.raises(RuntimeError, match="the study ended before 1 trial"):
        held_trials(tmp_path, "start", lambda: False)


def test_retries_count_restarts_not_the_last_failure_of_an_errored_trial():
    assert retries(0, TrialStatus.COMPLETED) == 0
    assert retries(1, TrialStatus.COMPLETED) == 1  # failed once, retried, completed
    assert retries(2, TrialStatus.STOPPED_EARLY) == 2
    assert retries(3, TrialStatus.ERRORED) == 2  # max_failures=2: two retries, the third failure ends it
    assert retries(1, TrialStatus.ERRORED) == 0  # max_failures=0
    assert retries(0, TrialStatus.ERRORED) == 0  # an error Ray does not count (e.g. a preempted node)


# --------------------------------------------------------------------------- workers killed at every phase
MATRIX_ARGS = ["--num-samples", "2", "--max-epochs", "3", "--grace-period", "3", "--demo-rows", "300"]
# name: (fault point, the n-th trial to reach it is killed there, whether that trial has a checkpoint by then)
MATRIX = {
    "a-reset": ("reset", 1, False),  # the first trial's worker, while Ray resets it for the second trial
    "b-start": ("start", 2, False),  # the second trial on that reused worker, before its first report
    "c-mid-epoch": ("reported-1", 1, True),  # the first trial in epoch 2, with epoch 1's checkpoint
    "d-checkpoint": ("checkpoint-2", 1, True),  # the first trial while it writes epoch 2's checkpoint
}
# (e) the final stage: a fold task's worker, the worker retraining the winner, the driver about to save the model
FINAL_MATRIX = {"e-fold": "final-fold", "e-final-model": "final-model"}


def _ray_results(folder, trial_id):
    """The results Ray logged for a trial (its result.json), in order, and Ray's count of its failures."""
    from ray.tune import ExperimentAnalysis

    (trial,) = [t for t in ExperimentAnalysis(str(folder / "ray" / folder.name)).trials if t.trial_id == trial_id]
    lines = (Path(trial.path) / "result.json").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()], trial.run_metadata.num_failures


def _study_with_a_kill(tmp_path, ray_tmp, name, point, nth, extra=()):
    """Run a 2-trial study, SIGKILL the n-th trial to reach `point` there: (exit code, stderr, its id, its pid)."""
    hook = tmp_path / "hook"
    hook.mkdir()
    arm(hook, point, nth)
    proc = _run([*TINY, *MATRIX_ARGS, *extra, "--name", name, "--results-dir", str(tmp_path)], ray_tmp, hook)
    try:
        victim, pid = kill_held_trial(hook, point, lambda: proc.poll() is None, timeout_s=300)
    except RuntimeError as e:
        raise AssertionError(f"{e}: {proc.communicate()[1][-3000:]}") from None
    out, err = proc.communicate(timeout=600)
    return proc.returncode, err, victim, pid


@pytest.mark.slow
@pytest.mark.parametrize("case", MATRIX)
def test_a_worker_killed_at_any_phase_loses_no_trial(case, tmp_path, ray_tmp):
    point, nth, had_checkpoint = MATRIX[case]
    code, err, victim, pid = _study_with_a_kill(tmp_path, ray_tmp, "m", point, nth)
    assert code == 0, err[-3000:]
    folder = tmp_path / "m"
    trials, _ = _check_complete(folder, 2, max_epochs=3)
    assert set(trials["status"]) == {"completed"}  # retried, not failed
    assert dict(zip(trials["trial_id"], trials["retries"])) == {t: int(t == victim) for t in trials["trial_id"]}
    results, failures = _ray_results(folder, victim)
    assert failures == 1  # one death, counted once against --max-failures
    # each epoch reached Ray once: restarted from epoch 1's checkpoint (c, d), or from scratch with none (a, b)
    assert [r["epoch"] for r in results] == [1, 2, 3]
    assert [r["iterations_since_restore"] for r in results] == ([1, 1, 2] if had_checkpoint else [1, 2, 3])
    if case == "b-start":  # the victim was killed on the worker process that had run the first trial
        (first,) = set(trials["trial_id"]) - {victim}
        assert {r["pid"] for r in _ray_results(folder, first)[0]} == {pid}


def _check_final(folder, n_candidates=2, folds=2):
    """The final stage ran every (candidate or baseline, fold) once, with no error, and saved its model."""
    final = read_table(folder / "final.parquet")
    assert len(final) == (n_candidates + len(BASELINES)) * folds and final["error"].isna().all()
    assert not final.duplicated(["candidate", "split", "fold"]).any()
    study = json.loads((folder / "study.json").read_text())
    assert study["status"] == "completed" and study["final"]["winner"] is not None
    assert (folder / "model" / "weights.pt").is_file() and (folder / "model" / "model.json").is_file()
    return final, study


@pytest.mark.slow
@pytest.mark.parametrize("case", FINAL_MATRIX)
def test_a_worker_killed_in_the_final_stage_loses_no_fold_and_no_model(case, tmp_path, ray_tmp):
    code, err, victim, _ = _study_with_a_kill(tmp_path, ray_tmp, "e", FINAL_MATRIX[case], 1, FINAL)
    assert code == 0, err[-3000:]
    _check_complete(tmp_path / "e", 2, max_epochs=3)
    final, study = _check_final(tmp_path / "e")
    if case == "e-final-model":  # the one task that retrains the winner (the model is whole: _check_final)
        assert victim == "model"
    else:  # the killed fold task was run again by Ray (the task's retries): its fold's rows are there once each
        fold = int(victim.removeprefix("fold"))
        assert len(final[final["fold"] == fold]) == 2 + len(BASELINES) and victim in ("fold1", "fold2")


@pytest.mark.slow
def test_the_driver_killed_while_it_saves_the_model_resumes_to_a_whole_model(tmp_path, ray_tmp):
    hook = tmp_path / "hook"
    hook.mkdir()
    arm(hook, "final-save")
    args = [*TINY, *MATRIX_ARGS, *FINAL, "--name", "s", "--results-dir", str(tmp_path)]
    proc = _run(args, ray_tmp, hook)
    try:
        held = held_trials(hook, "final-save", lambda: proc.poll() is None, timeout_s=300)
    except RuntimeError as e:
        raise AssertionError(f"{e}: {proc.communicate()[1][-3000:]}") from None
    assert list(held.values()) == [proc.pid]  # the driver itself holds, the model trained and not yet saved
    before = read_table(tmp_path / "s" / "final.parquet")
    proc.kill()
    proc.communicate(timeout=60)
    assert not (tmp_path / "s" / "model").exists()  # nothing half-saved
    let_go(hook, "final-save")
    resumed = _run(["--resume", "s", "--results-dir", str(tmp_path)], ray_tmp, hook)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    final, _ = _check_final(tmp_path / "s")
    same = final.merge(before, on=["candidate", "split", "fold"], suffixes=("", "_before"))
    assert len(same) == len(before) and (same["started_at"] == same["started_at_before"]).all()  # not rerun


@pytest.mark.slow
def test_a_worker_killed_in_reset_with_no_retries_left_ends_that_trial_errored_once(tmp_path, ray_tmp):
    code, err, victim, _ = _study_with_a_kill(tmp_path, ray_tmp, "n", "reset", 1, ["--max-failures", "0"])
    assert code == 0, err[-3000:]
    trials, _ = _check_complete(tmp_path / "n", 2)
    row = trials.set_index("trial_id").loc[victim]  # under its own id (Ray's metrics name the previous trial)
    assert row["status"] == "errored" and row["epochs_run"] == 0 and row["retries"] == 0
    assert "worker process has died" in row["error"]
    assert (trials.loc[trials["trial_id"] != victim, "status"] == "completed").all()


@pytest.mark.slow
def test_driver_killed_then_resumed(tmp_path, ray_tmp):
    folder = tmp_path / "k"
    args = [
        *TINY,
        "--num-samples",
        "4",
        "--max-epochs",
        "3",
        "--demo-rows",
        "300",
        "--name",
        "k",
        "--results-dir",
        str(tmp_path),
    ]
    proc = _run(args, ray_tmp)
    _wait(_epochs_at_least(folder, 2), proc, what="two epochs")
    proc.kill()  # SIGKILL: no handler, no cleanup
    proc.communicate(timeout=60)
    # Ray's processes of the killed driver end on their own (its log monitor last, within about half a minute)
    try:
        _wait(lambda: not _ray_pids(ray_tmp), timeout=150, what="the killed driver's Ray processes to end")
    except AssertionError:
        raise AssertionError(f"left behind: {[(p, _cmdline(p)[:120]) for p in _ray_pids(ray_tmp)]}") from None
    resumed = _run(["--resume", "k", "--results-dir", str(tmp_path)], ray_tmp)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    _check_complete(folder, 4, max_epochs=3)


def _checkpoint_files(trial_dir):
    """checkpoint folder -> the names of the files in it, of one trial's folder."""
    return {c.name: sorted(f.name for f in c.iterdir()) for c in Path(trial_dir).glob("checkpoint_*")}


def _best_epoch(history, epochs):
    return max((r for r in history if r["epoch"] <= epochs), key=lambda r: (r["val_macro_f1"], -r["epoch"]))["epoch"]


@pytest.mark.slow
def test_checkpoints_leave_while_the_study_runs_once_rays_saved_state_no_longer_needs_them(tmp_path, ray_tmp):
    """A running trial held after epoch 3 loses its checkpoints older than the latest that Ray's saved state names,
    its best excepted; once ended, its best stays whole (`--keep-checkpoints 1`) beside its latest's history."""
    hook = tmp_path / "hook"
    hook.mkdir()
    arm(hook, "reported-3")  # the first trial, after its third epoch's checkpoint
    arm(hook, "start", 2)  # the second trial, before its first report
    args = [*TINY, "--num-samples", "2", "--max-epochs", "4", "--grace-period", "4", "--demo-rows", "300",
            "--keep-checkpoints", "1", "--name", "p", "--results-dir", str(tmp_path)]  # fmt: skip
    proc = _run(args, ray_tmp, hook)
    running = lambda: proc.poll() is None  # noqa: E731
    whole = sorted([HISTORY_FILE, PROBS_FILE, STATE_FILE])
    try:
        (first,) = held_trials(hook, "reported-3", running, timeout_s=300)
        (trial_dir,) = (tmp_path / "p" / "ray" / "p").glob(f"train_sentiment_{first}_*")
        history = json.loads((trial_dir / "checkpoint_000002" / HISTORY_FILE).read_text())
        kept = {f"checkpoint_{_best_epoch(history, 3) - 1:06d}", "checkpoint_000002"}  # the best, the latest
        _wait(lambda: _checkpoint_files(trial_dir) == dict.fromkeys(sorted(kept), whole), proc, timeout=120,
              what="the running trial's older checkpoints removed")  # fmt: skip
        let_go(hook, "reported-3")
        (second,) = held_trials(hook, "start", running, timeout_s=300)
        history = json.loads((trial_dir / "checkpoint_000003" / HISTORY_FILE).read_text())  # the latest's: kept
        best = _best_epoch(history, 4)
        expected = {f"checkpoint_{best - 1:06d}": whole, **({"checkpoint_000003": [HISTORY_FILE]} if best != 4 else {})}
        _wait(lambda: _checkpoint_files(trial_dir) == expected, proc, timeout=120, what="the ended trial pruned")
    finally:
        let_go(hook, "reported-3")
        let_go(hook, "start")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert second != first and [r["epoch"] for r in history] == [1, 2, 3, 4]
    trials, _ = _check_complete(tmp_path / "p", 2, max_epochs=4)
    if top_trials(trials.to_dict("records"), 1) != [first]:  # not the top trial: the study's end trims it further
        expected[f"checkpoint_{best - 1:06d}"] = sorted([PROBS_FILE, *([HISTORY_FILE] if best == 4 else [])])
    assert _checkpoint_files(trial_dir) == expected


@pytest.mark.slow
def test_nan_loss_fails_the_trial_and_the_study_goes_on(tmp_path):
    import ray
    from optuna.distributions import CategoricalDistribution

    import search_spaces
    from search_spaces.rnn import SearchSpace
    from study.config import StudyConfig
    from study.search.driver import run_study

    space = SearchSpace(
        "nan-test",
        "one sane and one absurd learning rate",
        {"lr": CategoricalDistribution([1e-3, 1e36])},
        fixed={"cell": "gru", "hidden_size": 8, "num_layers": 1},
        enqueue=({"lr": 1e36}, {"lr": 1e-3}),
    )
    search_spaces.SPACES[space.name] = space
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        cfg = StudyConfig.from_settings(
            space="nan-test",
            num_samples=2,
            max_epochs=2,
            demo_rows=300,
            vector_size=16,
            max_failures=1,
            name="nan",
            results_dir=str(tmp_path),
        )
        run_study(cfg)
    finally:
        ray.shutdown()
        search_spaces.SPACES.pop(space.name)
    trials, _ = _check_complete(tmp_path / "nan", 2)
    bad = trials[trials["params_lr"] > 1]
    good = trials[trials["params_lr"] < 1]
    assert bad["status"].tolist() == ["errored"] and "training loss became inf" in bad["error"].iloc[0]
    assert good["status"].tolist() == ["completed"] and good["error"].isna().all()
    assert bad["retries"].tolist() == [1] and good["retries"].tolist() == [0]  # max_failures=1: retried once
    ostudy = optuna.load_study(study_name="nan", storage=f"sqlite:///{tmp_path / 'nan' / 'optuna.db'}")
    states = {t.params["lr"]: t.state for t in ostudy.trials}
    assert states == {1e36: optuna.trial.TrialState.FAIL, 1e-3: optuna.trial.TrialState.COMPLETE}


def _can(cmd):
    return os.geteuid() == 0 and shutil.which(cmd[0]) is not None


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


@pytest.mark.slow
def test_optuna_db_on_a_full_disk_says_no_space_left_like_every_other_write(small_disk, small_study):
    from search_spaces import get_space
    from study.search.optuna_db import write_optuna_db

    trials, epochs = read_table(small_study / "trials.parquet"), read_table(small_study / "epochs.parquet")
    _fill(small_disk)
    with pytest.raises(OSError) as e:
        write_optuna_db(trials, epochs, get_space("smoke").params, small_disk / "optuna.db", "full")
    assert e.value.errno == errno.ENOSPC and "No space left" in str(e.value)
    assert not (small_disk / "optuna.db").exists() and not list(small_disk.glob(".optuna.db.*"))


@pytest.mark.slow
def test_disk_full_while_writing_keeps_the_last_files_and_resume_finishes(tmp_path, ray_tmp, small_disk):
    results = small_disk / "results"
    folder = results / "d"
    args = [
        *TINY,
        "--num-samples",
        "3",
        "--max-epochs",
        "2",
        "--demo-rows",
        "300",
        "--name",
        "d",
        "--results-dir",
        str(results),
        "--storage",
        str(tmp_path / "ray-storage"),
    ]
    proc = _run(args, ray_tmp)
    _wait(lambda: len(read_table(folder / "trials.parquet")) >= 1, proc, what="the first trials.parquet")
    filler = _fill(small_disk)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err[-3000:]
    message = " ".join(err.split())
    assert "could not write the results of study 'd'" in message and "No space left" in message, message[-1500:]
    assert "--resume d" in message
    read_table(folder / "trials.parquet")  # the last complete files still read
    read_table(folder / "epochs.parquet")
    assert not list(folder.glob(".*.tmp"))
    filler.unlink()
    resumed = _run(["--resume", "d", "--results-dir", str(results)], ray_tmp)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    _check_complete(folder, 3)


@pytest.mark.slow
def test_unwritable_results_folder_then_resume(tmp_path, ray_tmp):
    if not _can(["chattr"]):
        pytest.skip("making a folder unwritable for root needs chattr")
    folder = tmp_path / "u"
    args = [
        *TINY,
        "--num-samples",
        "3",
        "--max-epochs",
        "2",
        "--demo-rows",
        "300",
        "--name",
        "u",
        "--results-dir",
        str(tmp_path),
    ]
    proc = _run(args, ray_tmp)
    _wait(lambda: len(read_table(folder / "trials.parquet")) >= 1, proc, what="the first trials.parquet")
    subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        before = (folder / "trials.parquet").read_bytes()
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 1, err[-3000:]
        message = " ".join(err.split())
        assert "could not write the results of study 'u'" in message and "--resume u" in message
        assert (folder / "trials.parquet").read_bytes() == before  # untouched, whole
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    resumed = _run(["--resume", "u", "--results-dir", str(tmp_path)], ray_tmp)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    _check_complete(folder, 3)


@pytest.mark.slow
def test_a_second_driver_on_the_same_study_is_refused(tmp_path, ray_tmp):
    folder = tmp_path / "s"
    args = [
        *TINY,
        "--num-samples",
        "2",
        "--max-epochs",
        "2",
        "--demo-rows",
        "300",
        "--name",
        "s",
        "--results-dir",
        str(tmp_path),
    ]
    first = _run(args, ray_tmp)
    _wait(lambda: (folder / "study.json").exists(), first, what="the first study to start")
    # Freeze the first driver (it keeps its lock) so that it cannot finish while the others try: on a fast
    # machine a two-trial study ends before a second Python process has imported the project.
    first.send_signal(signal.SIGSTOP)
    try:
        before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
        second = _run(args, ray_tmp)
        out, err = second.communicate(timeout=120)
        assert second.returncode == 2 and "already exists" in " ".join(err.split())
        third = _run(["--resume", "s", "--results-dir", str(tmp_path)], ray_tmp)  # resuming a running study
        out, err = third.communicate(timeout=120)
        assert third.returncode == 2 and "in use by another" in " ".join(err.split())
        assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before  # nothing touched
    finally:
        first.send_signal(signal.SIGCONT)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]
    _check_complete(folder, 2)
