"""Rebuild an Optuna study from the Parquet rows: for `optuna.db` (optuna-dashboard) and for the report.

The study is made from trials.parquet, so Optuna's history always agrees with it: one Optuna trial per row,
COMPLETE with its best validation macro-F1, PRUNED when ASHA stopped it, FAIL when it errored.
"""

from __future__ import annotations

import errno
import math
import os
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import sqlalchemy.exc
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import TrialState

from study.results import BEST_METRIC, TrialStatus
from trainables.files import atomic_write
from trainables.metrics import METRIC

STATES = {
    TrialStatus.COMPLETED.value: TrialState.COMPLETE,
    TrialStatus.STOPPED_EARLY.value: TrialState.PRUNED,
    TrialStatus.ERRORED.value: TrialState.FAIL,
    TrialStatus.RUNNING.value: TrialState.FAIL,  # never finished: not a result to learn from
}


def _native(value: Any, dist: BaseDistribution) -> Any:
    """A Parquet cell as the Python value the distribution holds (numpy scalars are not choices)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(dist, CategoricalDistribution):
        equal = [c for c in dist.choices if c == value]  # 1 == True: the choice of the value's own type first
        return next((c for c in equal if type(c) is type(value)), equal[0] if equal else value)
    return value


def build_study(
    trials: pd.DataFrame,
    epochs: pd.DataFrame,
    params: dict[str, BaseDistribution],
    study_name: str = "study",
    storage: str | optuna.storages.BaseStorage | None = None,
) -> optuna.Study:
    """An Optuna study with one trial per row of `trials`, in trial order.

    Args:
        trials: trials.parquet rows.
        epochs: epochs.parquet rows (the per-epoch validation macro-F1 become intermediate values).
        params: the searched distributions (the search space's `params`).
        study_name: the Optuna study name.
        storage: an Optuna storage URL; None keeps it in memory.
    """
    study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize", load_if_exists=False)
    by_trial = {tid: g.sort_values("epoch") for tid, g in epochs.groupby("trial_id")} if len(epochs) else {}
    for row in trials.sort_values("trial_number").to_dict("records"):
        state = STATES[row["status"]]
        value = row[BEST_METRIC]
        if state == TrialState.COMPLETE and (value is None or not math.isfinite(value)):
            state = TrialState.FAIL
        g = by_trial.get(row["trial_id"])
        scores = zip(g["epoch"], g[METRIC], strict=False) if g is not None else ()
        intermediate = {int(e): float(v) for e, v in scores if v is not None and math.isfinite(v)}
        study.add_trial(
            optuna.trial.create_trial(
                params={k: _native(row[f"params_{k}"], d) for k, d in params.items()},
                distributions=params,
                value=float(value) if state == TrialState.COMPLETE else None,
                state=state,
                intermediate_values=intermediate,
                user_attrs={"trial_id": row["trial_id"], "status": row["status"], "epochs_run": int(row["epochs_run"])},
            )
        )
    return study


def write_optuna_db(
    trials: pd.DataFrame, epochs: pd.DataFrame, params: dict[str, BaseDistribution], path: Path, study_name: str
) -> None:
    """Write the study as a fresh SQLite file (temporary name, then rename) for `optuna-dashboard`."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def write(tmp: str) -> None:
        # RDBStorage's own public handle, so its session can be closed before the rename
        storage = optuna.storages.RDBStorage(f"sqlite:///{tmp}")
        build_study(trials, epochs, params, study_name, storage=storage)
        storage.remove_session()
        storage.engine.dispose()

    try:
        atomic_write(path, write)
    except sqlalchemy.exc.SQLAlchemyError as e:  # a full disk or unwritable folder, said the SQLite way
        said = str(e.orig if hasattr(e, "orig") else e)
        if "disk is full" in said:  # the same words as every other write that meets a full disk
            raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (SQLite: {said}) writing {path}") from e
        raise OSError(f"could not write {path}: {said}") from e
