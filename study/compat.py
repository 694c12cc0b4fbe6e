"""Every use of a Ray internal, in one place, each pinned by a fast test (tests/test_compat.py) that fails when
the pinned Ray (2.60.x) changes it:

- `retry_trials_whose_worker_dies_in_reset`: a fix to Ray Tune's trial controller (below);
- `FullRungBracket` / `use_brackets`: the rung rule of study/search/scheduler.py, which Ray's ASHA offers no
  setting for (its rungs live in `_Bracket` objects that it builds into `_brackets` itself);
- `set_restored_callbacks`: `Tuner.restore` takes no callbacks and brings back the pickled ones;
- `ray_address_file` / `canonical_address`: where the last cluster started on this machine is recorded, and an
  address as Ray writes it (study/resources.py);
- `saved_trials`: each trial's status and latest checkpoint in the experiment state Ray last saved to storage,
  the state a `--resume` restores (study/search/checkpoints.py removes no checkpoint that state may need).

The controller fix. With `reuse_actors`, a finished trial's worker process is kept and reset (`Trainable.reset`)
for the next trial. If that process dies while it is being reset (killed, out of memory, its node lost), or
while it waits idle between two trials (Ray only notices at the next reset), Ray handles the one death twice:
1. `TuneController._actor_failed` sees a trial that has not started yet, counts the failure and requeues the
   trial to be retried (`Trial.PENDING`);
2. then the failed `reset` task's own error callback, `_trial_task_failure`, counts it again, now finds a
   PENDING trial, and ends it `errored` ("The actor is dead because its worker process has died") with 0 epochs
   and no retry, however large `max_failures` is. Had it not, the trial would have waited for ever: it is
   still listed as being reset, so Ray never gives it a worker again.

`retry_trials_whose_worker_dies_in_reset` drops the second report: a worker's death reported for a trial that
no longer holds a worker and is not running was handled by step 1. Trials then retry from scratch (they have
no checkpoint yet) and each death counts once against `max_failures`. tests/test_faults.py kills a worker at
exactly that moment.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ray.tune.schedulers.async_hyperband import _Bracket

_APPLIED = "_rnn_study_reset_fix"


def retry_trials_whose_worker_dies_in_reset() -> None:
    """Patch `TuneController._trial_task_failure` so that a worker dying during a reset is retried (idempotent).

    Raises:
        RuntimeError: the installed Ray lacks the controller methods this fix wraps (another Ray version).
    """
    from ray.exceptions import RayActorError
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.experiment import Trial

    if getattr(TuneController, _APPLIED, False):
        return
    needed = ("_trial_task_failure", "_actor_failed", "_schedule_trial_reset")
    if not all(hasattr(TuneController, name) for name in needed):
        raise RuntimeError(
            f"study/compat.py wraps Ray Tune's TuneController methods {needed}, which this Ray "
            f"version lacks; install the Ray version pyproject.toml pins."
        )
    trial_task_failure = TuneController._trial_task_failure

    def _trial_task_failure(self, trial, exception):
        if isinstance(exception, RayActorError) and trial not in self._trial_to_actor and trial.status != Trial.RUNNING:
            # the reset task of a dead worker: `_actor_failed` has just counted this death and requeued the trial
            self._resetting_trials.discard(trial)
            return
        trial_task_failure(self, trial, exception)

    TuneController._trial_task_failure = _trial_task_failure
    setattr(TuneController, _APPLIED, True)


class FullRungBracket(_Bracket):
    """One ASHA bracket whose rungs give no score to beat (every arrival stops) until `min_rung - 1` trials are
    recorded there; then Ray's cutoff. Arguments after `min_rung`: as Ray's `_Bracket`."""

    def __init__(self, min_rung: int, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.min_rung = min_rung

    def cutoff(self, recorded):
        return math.inf if len(recorded) < self.min_rung - 1 else super().cutoff(recorded)


def use_brackets(scheduler, brackets: list) -> None:
    """Make `brackets` the rungs of Ray's AsyncHyperBandScheduler `scheduler`."""
    scheduler._brackets = list(brackets)


def set_restored_callbacks(tuner, callbacks: list) -> None:
    """The callbacks that `fit()` of a `Tuner.restore`d tuner passes to its run (its run config's)."""
    tuner._local_tuner.get_run_config().callbacks = callbacks


def ray_address_file() -> Path:
    """The file in Ray's temp folder where `ray start` / `ray up` record the last cluster started here."""
    from ray._common.utils import get_ray_address_file

    return Path(get_ray_address_file(None))


def canonical_address(address: str) -> str | None:
    """`address` as Ray writes it (`auto`: the cluster Ray finds on this machine; 127.0.0.1: this node's IP).

    Raises:
        ConnectionError: `auto` and no cluster found. ValueError: not an address.
    """
    from ray._private.services import canonicalize_bootstrap_address

    return canonicalize_bootstrap_address(address)


def saved_trials(filesystem: Any, experiment_path: str) -> dict[str, tuple[str, str | None]] | None:
    """Trial id -> (status, e.g. TERMINATED, ERROR or RUNNING; the folder of its latest checkpoint) in the newest
    experiment state Ray saved to storage: what a `--resume` restores each trial from.

    Args:
        filesystem: pyarrow.fs.FileSystem of the storage.
        experiment_path: the experiment's folder in `filesystem`.

    Returns:
        The trials, or None where no state is saved yet or it cannot be read now (e.g. being written).
    """
    from ray.tune.execution.experiment_state import _find_newest_experiment_checkpoint

    try:
        path = _find_newest_experiment_checkpoint(experiment_path, filesystem)
        if path is None:
            return None
        with filesystem.open_input_stream(path) as f:
            state = json.loads(f.readall())
        # each trial_data item: the trial's state and its run metadata, two JSON texts
        trials = [(json.loads(t), json.loads(m).get("last_result") or {}) for t, m in state["trial_data"]]
        # the last result's checkpoint is the latest: Ray registers it as it takes in the result
        return {t["trial_id"]: (t["status"], last.get("checkpoint_dir_name")) for t, last in trials}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
