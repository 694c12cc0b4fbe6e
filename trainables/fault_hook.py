"""A test-only hook, a trial process stopping at a named point until a test has killed it, and the test's side.

Unset (always, outside tests) it costs one environment lookup per point. tests/test_faults.py, tests/test_cluster.py
and benchmarks/faults.py set `RNN_STUDY_FAULT_HOOK` to a folder and arm a point by writing `<point>.arm` there,
holding n (empty: 1): the n-th trial to reach the point stops there (`all`: every trial does). It writes
`<point>-<trial id>.ready` holding its pid and waits until `<point>.go` exists (or the folder is removed); the test
waits for the ready file, SIGKILLs that pid (or its whole node), then writes `<point>.go`, so the retried trial
passes. The kill lands at a known moment, never by racing a timer. Trials count in the order they first reach the
point (`<point>.arrival-<i>` files hold their ids); a retried trial keeps its place.

Points (trainables/trainable.py):
- `reset`: Ray resets a reused worker process for its next trial (`reuse_actors`; `Trainable.reset_config`);
- `start`: the trial function starts, before it loads a checkpoint or reports;
- `checkpoint-<k>`: epoch k's checkpoint is half written (state.pt saved, nothing reported);
- `reported-<k>`: epoch k is reported and its checkpoint saved, before epoch k+1.
- `final-fold`: a final-stage fold task starts (study/final/stage.py; the id is "<candidate>-<fold>");
- `final-model`: the task that retrains the winner on every labelled row starts (the id is the winner's);
- `final-save`: the DRIVER holds the retrained model and is about to save it (the id is the winner's).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from trainables.files import write_text

FAULT_HOOK_VARIABLE = "RNN_STUDY_FAULT_HOOK"
POLL_S = 0.05
ALL = "all"  # armed for every trial that reaches the point


def fault_point(point: str, trial_id: str) -> None:
    """Stop here if a test armed `point` for this trial and has not let it go (see the module docstring)."""
    folder = os.environ.get(FAULT_HOOK_VARIABLE)
    if not folder:
        return
    folder = Path(folder)
    go = folder / f"{point}.go"
    try:
        wanted = (folder / f"{point}.arm").read_text().strip() or "1"
    except OSError:  # not armed
        return
    if go.exists() or (wanted != ALL and _arrival(folder, point, trial_id) != int(wanted)):
        return
    write_text(folder / f"{point}-{trial_id}.ready", f"{os.getpid()}\n")
    while not go.exists() and folder.exists():
        time.sleep(POLL_S)


def _arrival(folder: Path, point: str, trial_id: str) -> int:
    """This trial's place (1, 2, ...) among the trials that reached `point`; claimed atomically, kept on a retry."""
    i = 1
    while True:
        claim = folder / f"{point}.arrival-{i}"
        try:
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if claim.read_text() == trial_id:
                return i
            i += 1
            continue
        with os.fdopen(fd, "w") as f:
            f.write(trial_id)
        return i


# ------------------------------------------------------------------------------------------- the test's side
def arm(folder: Path, point: str, n: int | str = 1) -> None:
    """Make the n-th trial to reach `point` (or with `ALL` every one) stop there; `folder` is the hook's folder."""
    write_text(Path(folder) / f"{point}.arm", f"{n}\n")


def held_trials(
    folder: Path, point: str, study_running: Callable[[], bool], count: int = 1, timeout_s: float = 600
) -> dict[str, int]:
    """Wait until `count` trials stop at `point`; their pids by trial id (the test's side).

    Raises:
        RuntimeError: the study ended, or fewer trials reached `point` within `timeout_s`.
    """
    deadline = time.monotonic() + timeout_s
    while len(ready := sorted(Path(folder).glob(f"{point}-*.ready"))) < count:
        if not study_running():
            raise RuntimeError(f"the study ended before {count} trial(s) reached the fault point {point!r}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(ready)} of {count} trial(s) reached the fault point {point!r} in {timeout_s:g} s")
        time.sleep(POLL_S)
    return {r.name[len(point) + 1 : -len(".ready")]: int(r.read_text()) for r in ready}


def let_go(folder: Path, point: str) -> None:
    """Let every trial at `point` go on, and every later one pass (the test's side)."""
    write_text(Path(folder) / f"{point}.go", "")


def kill_held_trial(
    folder: Path, point: str, study_running: Callable[[], bool], timeout_s: float = 600
) -> tuple[str, int]:
    """Wait until a trial stops at `point`, SIGKILL its process, then let the point go (the test's side).

    Returns:
        The trial's id and the pid killed.

    Raises:
        RuntimeError: the study ended, or no trial reached `point` within `timeout_s`.
    """
    ((trial_id, pid),) = held_trials(folder, point, study_running, 1, timeout_s).items()
    kill_and_wait([pid])
    let_go(folder, point)
    return trial_id, pid


def kill_and_wait(pids: list[int]) -> None:
    """SIGKILL the processes, then wait until each is gone (or a zombie that will never run again)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    while any(_alive(pid) for pid in pids):
        time.sleep(POLL_S)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
