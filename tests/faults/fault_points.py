"""Fault points, test-only: a process of a study stops at a named point until the test has killed it.

The product holds no hook; the points are put in from here. A test starts a study with `environment(folder)` added
to its environment: this folder on PYTHONPATH, so every Python process of the study (the driver, and Ray's
workers, which inherit the environment) runs sitecustomize.py at start-up, which calls `install`; and
`RNN_STUDY_FAULT_HOOK`, the folder of the marker files. `install` wraps the product's function at each point as its
module is imported (`PATCHES`). tests/test_faults.py, tests/test_resume.py, tests/test_cluster.py and
benchmarks/faults.py use it.

A test arms a point by writing `<point>.arm` to the folder, holding n (empty: 1): the n-th trial to reach the point
stops there (`all`: every trial does). It writes `<point>-<trial id>.ready` holding its pid and waits until
`<point>.go` exists (or the folder is removed); the test waits for the ready file, SIGKILLs that pid (or its whole
node), then writes `<point>.go`, so the retried trial passes. The kill lands at a known moment, never by racing a
timer. Trials count in the order they first reach the point (`<point>.arrival-<i>` files hold their ids); a
retried trial keeps its place.

Points, and the function wrapped:
- `reset`: Ray resets a reused worker process for its next trial (`reuse_actors`), once the next trial's id is set
  (`FunctionTrainable.reset_config`);
- `start`: the trial function starts, before it loads a checkpoint or reports (`train_sentiment`);
- `checkpoint-<k>`: epoch k's checkpoint is written to its folder, not yet handed to Ray (`tune.report`);
- `reported-<k>`: epoch k is reported and its checkpoint saved, before epoch k+1 (`tune.report` has returned);
- `final-fold`: a final-stage fold task starts (`study.final.stage.fit_fold_task`; the id is "fold<k>", its fold);
- `final-model`: the task that retrains the winner on every labelled row starts (`final_model_task`; id "model");
- `final-save`: the DRIVER holds the retrained model and is about to save it (`save_model`; the winner's id).
"""

from __future__ import annotations

import functools
import importlib.abc
import inspect
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

FAULT_HOOK_VARIABLE = "RNN_STUDY_FAULT_HOOK"
POLL_S = 0.05
ALL = "all"  # armed for every trial that reaches the point


def environment(folder: str | Path) -> dict[str, str]:
    """The variables a study's environment needs for its processes to stop at the points armed in `folder`."""
    path = [str(Path(__file__).resolve().parent), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {FAULT_HOOK_VARIABLE: str(folder), "PYTHONPATH": os.pathsep.join(path)}


def hold(point: str, trial_id: str) -> None:
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
    _write(folder / f"{point}-{trial_id}.ready", f"{os.getpid()}\n")
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


def _write(path: Path, text: str) -> None:
    """Write atomically: a reader sees no file or the whole of it (the temporary name matches no marker)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


# ------------------------------------------------------------------------ the wrappers, in the study's processes
def _trial_id() -> str:
    from ray import tune

    return tune.get_context().get_trial_id()


def _patch_function_trainable(module) -> None:
    reset_config = module.FunctionTrainable.reset_config

    @functools.wraps(reset_config)
    def held_reset_config(self, new_config):
        hold("reset", self.trial_id)  # Trainable.reset has set the next trial's id by now
        return reset_config(self, new_config)

    module.FunctionTrainable.reset_config = held_reset_config


def _patch_tune(module) -> None:
    report = module.report

    @functools.wraps(report)
    def held_report(metrics, **kwargs):
        epoch = metrics["epoch"]
        hold(f"checkpoint-{epoch}", _trial_id())
        report(metrics, **kwargs)
        hold(f"reported-{epoch}", _trial_id())

    module.report = held_report


def _patch_trainable(module) -> None:
    train = module.train_sentiment

    @functools.wraps(train)
    def held_train(config, *args, **kwargs):
        hold("start", _trial_id())
        return train(config, *args, **kwargs)

    module.train_sentiment = held_train


def _held_at_start(task: Callable, point: str) -> Callable:
    """`task`, stopping at `point` first under its fold's id ("fold<k>"), or "model" for a task without a fold."""
    signature = inspect.signature(task)

    @functools.wraps(task)
    def held_task(*args, **kwargs):
        fold = signature.bind(*args, **kwargs).arguments.get("fold")
        hold(point, f"fold{fold.number}" if fold is not None else "model")
        return task(*args, **kwargs)

    return held_task


def _patch_final_stage(module) -> None:
    module.fit_fold_task = _held_at_start(module.fit_fold_task, "final-fold")
    module.final_model_task = _held_at_start(module.final_model_task, "final-model")


def _patch_saved_model(module) -> None:
    save_model = module.save_model

    @functools.wraps(save_model)
    def held_save_model(folder, model, provenance=None):
        hold("final-save", (provenance or {}).get("trial_id", ""))
        return save_model(folder, model, provenance)

    module.save_model = held_save_model


# module -> what wraps its functions once it has run. A wrapper replaces the module's attribute, so callers that
# look it up when they run get it, and Ray, which pickles a module's function by its name, sends it to the workers.
PATCHES: dict[str, Callable] = {
    "ray.tune": _patch_tune,
    "ray.tune.trainable.function_trainable": _patch_function_trainable,
    "trainables.trainable": _patch_trainable,
    "trainables.saved_model": _patch_saved_model,
    "study.final.stage": _patch_final_stage,
}


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Finds a module of PATCHES with the other finders, and patches it as soon as it has run."""

    def find_spec(self, name, path, target=None):
        patch = PATCHES.get(name)
        if patch is None:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is not self and find is not None and (spec := find(name, path, target)) is not None:
                break
        else:
            return None
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            patch(module)

        spec.loader.exec_module = exec_module  # this spec's own loader
        return spec


def install() -> None:
    """Wrap the product's functions at the fault points in this process, if `RNN_STUDY_FAULT_HOOK` is set.

    Called by sitecustomize.py at start-up, before any module of PATCHES is imported.
    """
    if os.environ.get(FAULT_HOOK_VARIABLE):
        sys.meta_path.insert(0, _PatchAfterImport())


# ------------------------------------------------------------------------------------------- the test's side
def arm(folder: Path, point: str, n: int | str = 1) -> None:
    """Make the n-th trial to reach `point` (or with `ALL` every one) stop there; `folder` is the markers' folder."""
    _write(Path(folder) / f"{point}.arm", f"{n}\n")


def held_trials(
    folder: Path, point: str, study_running: Callable[[], bool], count: int = 1, timeout_s: float = 600
) -> dict[str, int]:
    """Wait until `count` trials stop at `point`; their pids by trial id.

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
    """Let every trial at `point` go on, and every later one pass."""
    _write(Path(folder) / f"{point}.go", "")


def kill_held_trial(
    folder: Path, point: str, study_running: Callable[[], bool], timeout_s: float = 600
) -> tuple[str, int]:
    """Wait until a trial stops at `point`, SIGKILL its process, then let the point go.

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
