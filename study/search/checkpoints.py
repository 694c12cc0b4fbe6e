"""What a study keeps of its trials' checkpoints, and what they cost on disk.

While a trial runs, Ray keeps its latest checkpoint (what a retry needs) and its best one (`checkpoint_config`).
Once every trial has ended, `prune` leaves of each trial only what the results need: its latest checkpoint's
`history.json` (the epochs a killed worker never got logged, which `rows.rows_from_storage` reads again on a
`--resume`), the best checkpoint's `val_probs.npy` for the trials predictions.parquet holds, and the best
checkpoint whole for the top `--keep-checkpoints` trials. Model and optimiser states of every other trial go.
`disk_block` is study.json's `disk` block: checkpoint bytes written per trial-epoch and the folder's size.

Not here: writing checkpoints (trainables/trainable.py), reading them into rows (rows.py).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from study.search.rows import StoredTrial, top_trials
from trainables.metrics import MODE
from trainables.trainable import CHECKPOINT_SCORE, HISTORY_FILE, PROBS_FILE, STATE_FILE

log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint_"  # Ray's name of a checkpoint folder inside a trial's folder


def checkpoint_config():
    """Ray's CheckpointConfig of a study: a trial's best checkpoint by validation macro-F1, and its latest."""
    from ray import tune

    # Ray always keeps the latest beside the `num_to_keep` best
    return tune.CheckpointConfig(
        num_to_keep=1, checkpoint_score_attribute=CHECKPOINT_SCORE, checkpoint_score_order=MODE
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


def _folders(stored: StoredTrial) -> tuple[str, ...]:
    from pyarrow import fs as pafs

    try:
        infos = stored.filesystem.get_file_info(pafs.FileSelector(stored.path, allow_not_found=True))
    except OSError as e:
        log.warning("Cannot list the checkpoints of %s: %s", stored.path, e)
        return ()
    dirs = (i.base_name for i in infos if i.type == pafs.FileType.Directory)
    return tuple(sorted(d for d in dirs if d.startswith(CHECKPOINT_PREFIX)))


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
    from study.results import TrialStatus

    ended = [t["trial_id"] for t in trials if t["status"] != TrialStatus.RUNNING and t["trial_id"] in stored]
    whole = [t for t in top_trials(trials, keep_checkpoints) if t in ended and stored[t].best is not None]
    found = [TrialCheckpoints(t, _folders(stored[t]), _name(stored[t].latest), _name(stored[t].best)) for t in ended]
    for r in plan_removals(found, whole, top_trials(trials, keep_predictions)):
        s = stored[r.trial_id]
        path = f"{s.path.rstrip('/')}/{r.folder}"
        try:
            if r.files is None:
                s.filesystem.delete_dir(path)
            else:
                for f in r.files:
                    if s.filesystem.get_file_info(f"{path}/{f}").is_file:
                        s.filesystem.delete_file(f"{path}/{f}")
        except OSError as e:  # what is left costs disk, not results
            log.warning("Could not remove checkpoint files <path=%s>: %s", path, e)
    return len(whole)


def folder_bytes(folder: str | Path) -> int:
    """The bytes of every file under `folder` (links not followed)."""
    total = 0
    for root, _, files in os.walk(folder):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:  # removed meanwhile
                pass
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
