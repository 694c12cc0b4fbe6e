"""What a study keeps of its trials' checkpoints, and what they cost on disk.

A `--resume` after the driver dies restores each unfinished trial from the latest checkpoint named in the
experiment state Ray last saved, which can be older than the trial's last one. So no checkpoint leaves while that
state may still restore it. (Ray's own `num_to_keep` deletes a superseded checkpoint before that state stops naming
it: a driver killed in between left a trial that could not be resumed. `checkpoint_config` has Ray keep them all.)
`CheckpointPruner` removes, while the study runs, a running trial's checkpoints older than the one that state
names (its best stays), and once the state records a trial's end, all but what the results need: its latest
checkpoint's `history.json` (the epochs a killed worker never got logged, which `rows.rows_from_storage` reads
again on a `--resume`), the best checkpoint's `val_probs.npy` while the trial is among the top
`--keep-predictions`, and the best checkpoint whole while among the top `--keep-checkpoints`. `prune` does the
same for every ended trial at the study's end, when the top trials are final. `disk_block` is study.json's `disk`
block: checkpoint bytes written per trial-epoch and the folder's size.

Not here: writing checkpoints (trainables/trainable.py), reading them into rows (rows.py).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune

from study.compat import saved_trials
from study.results import BEST_METRIC, TrialStatus
from study.search.rows import StoredTrial, top_trials
from trainables.metrics import METRIC, MODE
from trainables.trainable import CHECKPOINT_SCORE, HISTORY_FILE, PROBS_FILE, STATE_FILE

log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint_"  # Ray's name of a checkpoint folder inside a trial's folder
CHECKPOINT_DIR_NAME = "checkpoint_dir_name"  # the result's key Ray adds: the folder of the result's checkpoint
ENDED = ("TERMINATED", "ERROR")  # Ray's statuses of a trial that `--resume` does not run again


def checkpoint_config():
    """Ray's CheckpointConfig of a study: every checkpoint kept (the module docstring says why), ranked by
    validation macro-F1 (ties: the earlier epoch), so that a trial's best checkpoint is its best epoch's."""
    return tune.CheckpointConfig(
        num_to_keep=None, checkpoint_score_attribute=CHECKPOINT_SCORE, checkpoint_score_order=MODE
    )


@dataclass(frozen=True)
class TrialCheckpoints:
    """A trial's checkpoint folders by name (e.g. checkpoint_000002), as `plan_removals` reads them."""

    trial_id: str
    folders: tuple[str, ...]  # every checkpoint folder in the trial's folder on storage
    latest: str | None  # Ray's latest checkpoint
    best: str | None  # the checkpoint of the best epoch


@dataclass(frozen=True)
class Removal:
    """Files to remove from one checkpoint folder of a trial; `files` None: the whole folder."""

    trial_id: str
    folder: str
    files: tuple[str, ...] | None


def plan_removals(trials: list[TrialCheckpoints], keep_whole: list[str], keep_probs: list[str]) -> list[Removal]:
    """What to remove from ended trials' checkpoints.

    Args:
        trials: the ended trials' checkpoint folders.
        keep_whole: ids of the trials whose best checkpoint stays whole (`--keep-checkpoints`).
        keep_probs: ids of the trials whose best checkpoint keeps its validation probabilities (predictions).

    Returns:
        A Removal per checkpoint folder that loses something: a folder that is neither a trial's latest nor a
        best kept goes whole; the latest keeps its history, a best in `keep_probs` its probabilities.
    """
    whole, probs = set(keep_whole), set(keep_probs)
    out = []
    for t in trials:
        for folder in t.folders:
            if folder == t.best and t.trial_id in whole:
                continue
            keep = {HISTORY_FILE} if folder == t.latest else set()
            if folder == t.best and t.trial_id in probs:
                keep.add(PROBS_FILE)
            files = tuple(f for f in (STATE_FILE, PROBS_FILE, HISTORY_FILE) if f not in keep) if keep else None
            out.append(Removal(t.trial_id, folder, files))
    return out


def _name(checkpoint: Any) -> str | None:
    return None if checkpoint is None else checkpoint.path.rstrip("/").rsplit("/", 1)[-1]


def _folders(filesystem: Any, path: str) -> tuple[str, ...]:
    """The checkpoint folders in a trial's folder `path` on `filesystem` (pyarrow)."""
    from pyarrow import fs as pafs

    try:
        infos = filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except OSError as e:
        log.warning("Cannot list the checkpoints of %s: %s", path, e)
        return ()
    dirs = (i.base_name for i in infos if i.type == pafs.FileType.Directory)
    return tuple(sorted(d for d in dirs if d.startswith(CHECKPOINT_PREFIX)))


def remove(plan: list[Removal], where: dict[str, tuple[Any, str]]) -> None:
    """Carry out `plan`; `where`: trial id -> (its storage's pyarrow filesystem, its folder there)."""
    for r in plan:
        filesystem, folder = where[r.trial_id]
        path = f"{folder.rstrip('/')}/{r.folder}"
        try:
            if r.files is None:
                filesystem.delete_dir(path)
            else:
                for f in r.files:
                    if filesystem.get_file_info(f"{path}/{f}").is_file:
                        filesystem.delete_file(f"{path}/{f}")
        except OSError as e:  # what is left costs disk, not results
            log.warning("Could not remove checkpoint files <path=%s>: %s", path, e)


def prune(trials: list[dict], stored: dict[str, StoredTrial], keep_checkpoints: int, keep_predictions: int) -> int:
    """Remove from ended trials' checkpoints what the results no longer need (see the module docstring).

    Args:
        trials: trials.parquet's rows; only ended trials (not `running`) are pruned.
        stored: trial id -> where its checkpoints are (`rows.rows_from_storage`).
        keep_checkpoints: the top trials (by best validation macro-F1) whose best checkpoint stays whole.
        keep_predictions: the top trials whose best checkpoint keeps its validation probabilities.

    Returns:
        The number of trials whose best checkpoint is kept whole.
    """
    ended = [t["trial_id"] for t in trials if t["status"] != TrialStatus.RUNNING and t["trial_id"] in stored]
    whole = [t for t in top_trials(trials, keep_checkpoints) if t in ended and stored[t].best is not None]
    found = [
        TrialCheckpoints(t, _folders(s.filesystem, s.path), _name(s.latest), _name(s.best))
        for t, s in ((t, stored[t]) for t in ended)
    ]
    plan = plan_removals(found, whole, top_trials(trials, keep_predictions))
    remove(plan, {t: (stored[t].filesystem, stored[t].path) for t in ended})
    return len(whole)


def _best(scores: dict[str, float], folders: list[str]) -> str:
    """The folder of the highest score among `folders` (ties: the earlier checkpoint), as Ray ranks them."""
    return max(folders, key=lambda f: (scores[f], -int(f.removeprefix(CHECKPOINT_PREFIX))))


class CheckpointPruner(tune.Callback):
    """Removes trials' checkpoints while the study runs, never one that Ray's saved experiment state may restore
    (the module docstring says why that state, not the trial's last report, decides):

    - of a running trial: the checkpoints older than the latest that the saved state names, except the best (the
      best so far, and the best up to that latest, which a restored run would rank best);
    - of an ended trial, once the saved state records its end: as `prune` does at the study's end. It ranks the
      ended trials it has seen: a trial outside their top `keep` can never be among the study's top (an ended
      trial's best is final).

    Only trials whose every checkpoint it saw reported in this run; a trial resumed from an earlier run's
    checkpoint waits for `prune` at the study's end. It reads the saved state every `every_s` seconds at most.
    """

    def __init__(self, keep_checkpoints: int, keep_predictions: int, every_s: float = 5.0):
        self.keep_checkpoints, self.keep_predictions, self.every_s = keep_checkpoints, keep_predictions, every_s
        self.scores: dict[str, dict[str, float] | None] = {}  # trial id -> folder -> score (None: seen in part)
        self.best: dict[str, float] = {}  # trial id -> its best validation macro-F1 so far
        self.trials: dict[str, Any] = {}  # trial id -> its Ray Trial, for the trials pruned here and not done
        self.ended: set[str] = set()  # of `trials`, those that have ended
        self.removed: dict[str, set[str]] = {}  # trial id -> its folders removed while it ran
        self.pruned: list[dict] = []  # the ended trials pruned, as top_trials reads them
        self._last = 0.0

    def on_trial_result(self, iteration, trials, trial, result, **info):
        tid, folder = trial.trial_id, result.get(CHECKPOINT_DIR_NAME)
        if tid not in self.scores:  # its first report in this run: the whole trial only if it is epoch 1's
            self.scores[tid] = {} if int(result.get("epoch", 0)) == 1 else None
        if self.scores[tid] is not None and folder:
            self.trials[tid] = trial
            self.scores[tid].pop(folder, None)  # the last report of a folder counts
            score, metric = float(result[CHECKPOINT_SCORE]), float(result[METRIC])
            self.scores[tid][folder] = -math.inf if math.isnan(score) else score  # NaN ranks last, as in Ray
            self.best[tid] = max(self.best.get(tid, -math.inf), -math.inf if math.isnan(metric) else metric)
            self.removed.setdefault(tid, set()).discard(folder)

    def on_trial_complete(self, iteration, trials, trial, **info):
        if trial.trial_id in self.trials:
            self.ended.add(trial.trial_id)

    on_trial_error = on_trial_complete

    def on_step_end(self, iteration, trials, **info):
        if self.trials and time.monotonic() - self._last >= self.every_s:
            self._last = time.monotonic()
            self.prune_saved()

    def prune_saved(self) -> None:
        """Remove what the saved experiment state no longer needs (see the class docstring)."""
        storage = next(iter(self.trials.values())).storage
        saved = saved_trials(storage.storage_filesystem, storage.experiment_fs_path) or {}
        where = {tid: (t.storage.storage_filesystem, t.path) for tid, t in self.trials.items()}
        plan, found = [], []
        for tid in where:
            status, latest = saved.get(tid, (None, None))
            scores, folders = self.scores[tid], list(self.scores[tid])
            if tid in self.ended and status in ENDED:
                found.append(TrialCheckpoints(tid, _folders(*where[tid]), folders[-1], _best(scores, folders)))
                self.pruned.append({"trial_id": tid, BEST_METRIC: self.best[tid]})
            elif latest in scores:  # running, or its end not saved yet
                upto = folders[: folders.index(latest) + 1]
                keep = {latest, _best(scores, upto), _best(scores, folders)}
                gone = [f for f in upto if f not in keep and f not in self.removed[tid]]
                plan += [Removal(tid, f, None) for f in gone]
                self.removed[tid].update(gone)
        plan += plan_removals(
            found, top_trials(self.pruned, self.keep_checkpoints), top_trials(self.pruned, self.keep_predictions)
        )
        remove(plan, where)
        for t in found:
            del self.trials[t.trial_id]

    def __getstate__(self) -> dict[str, Any]:  # Ray pickles callbacks into tuner.pkl: keep it small
        return {**self.__dict__, "scores": {}, "best": {}, "trials": {}, "ended": set(), "removed": {}, "pruned": []}


def folder_bytes(folder: str | Path) -> int:
    """The bytes of every file under `folder` (links not followed)."""
    total = 0
    for root, _, files in os.walk(folder):
        for f in files:
            with contextlib.suppress(OSError):  # removed meanwhile
                total += os.lstat(os.path.join(root, f)).st_size
    return total


def disk_block(stored: dict[str, StoredTrial], folder: Path, kept: int) -> dict[str, Any]:
    """study.json's `disk` block: the checkpoints written (bytes, count, bytes per trial-epoch), the trials whose
    best checkpoint is kept, and the study folder's size."""
    sizes = [b for s in stored.values() for b in s.checkpoint_bytes]
    return {
        "checkpoints_written": len(sizes),
        "checkpoint_bytes_written": sum(sizes),
        "checkpoint_bytes_per_trial_epoch": sum(sizes) / len(sizes) if sizes else None,
        "checkpoints_kept": kept,
        "folder_bytes": folder_bytes(folder),
    }
