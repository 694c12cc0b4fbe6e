"""The results schema (versioned, fixed columns) and atomic Parquet/JSON writing and reading.

`results/<name>/` holds trials.parquet (a row per trial), epochs.parquet (a row per trial and epoch),
predictions.parquet (validation probabilities at the best epoch of the top trials) and study.json.
Every file is written to a temporary name in the same folder and renamed, so a reader sees either the
previous complete file or the new one. Reports read only these files, never Ray's objects.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from search_spaces.rnn import HYPERPARAMETERS
from trainables.files import atomic_write, json_text, write_text
from trainables.metrics import METRIC

SCHEMA_VERSION = 3  # 3: final.parquet's epoch chosen on an inner split, raw-text baselines
TRIALS_FILE, EPOCHS_FILE, PREDICTIONS_FILE = "trials.parquet", "epochs.parquet", "predictions.parquet"
STUDY_FILE, OPTUNA_FILE, FINAL_FILE = "study.json", "optuna.db", "final.parquet"


class ResultsError(ValueError):
    """A results folder or file that cannot be read; the message names it and the fix."""


class TrialStatus(enum.StrEnum):
    COMPLETED = "completed"  # ran every epoch
    STOPPED_EARLY = "stopped_early"  # stopped by ASHA
    ERRORED = "errored"  # failed after its retries
    RUNNING = "running"  # only in the files of a study still running or interrupted


# Every hyperparameter a search space may set (search_spaces.HYPERPARAMETERS), with its Arrow type.
_ARROW = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
PARAM_TYPES: dict[str, pa.DataType] = {name: _ARROW[kind] for name, kind in HYPERPARAMETERS.items()}
SUMMARY_METRICS = (METRIC, "val_auc", "val_accuracy", "val_loss")
BEST_METRIC = f"best_{METRIC}"  # the trials.parquet column that ranks trials

TRIALS_SCHEMA = pa.schema(
    [
        ("trial_id", pa.string()),
        ("trial_number", pa.int64()),
        ("status", pa.string()),
        *[(f"params_{k}", t) for k, t in PARAM_TYPES.items()],
        *[(f"best_{m}", pa.float64()) for m in SUMMARY_METRICS],
        ("best_epoch", pa.int64()),
        *[(f"last_{m}", pa.float64()) for m in SUMMARY_METRICS],
        ("epochs_run", pa.int64()),
        ("retries", pa.int64()),  # restarts after a failure (a killed worker, a lost node), from its checkpoint if any
        ("time_total_s", pa.float64()),
        ("node_id", pa.string()),
        ("hostname", pa.string()),
        ("cpus", pa.float64()),
        ("gpus", pa.float64()),
        ("seed", pa.int64()),
        ("error", pa.string()),
    ]
)

EPOCH_METRICS = ("train_loss", "train_macro_f1", "train_accuracy", "val_loss", METRIC, "val_accuracy", "val_auc")
EPOCHS_SCHEMA = pa.schema(
    [
        ("trial_id", pa.string()),
        ("epoch", pa.int64()),
        *[(m, pa.float64()) for m in EPOCH_METRICS],
        ("val_f1_per_class", pa.list_(pa.float64())),
        ("val_recall_per_class", pa.list_(pa.float64())),
        ("epoch_time_s", pa.float64()),
        ("time_total_s", pa.float64()),
        ("node_id", pa.string()),
    ]
)

PREDICTIONS_SCHEMA = pa.schema(
    [
        ("trial_id", pa.string()),
        ("epoch", pa.int64()),
        ("row", pa.int64()),  # position in the validation set
        ("label", pa.int64()),  # true class index
        ("probs", pa.list_(pa.float32())),  # (C,) class probabilities
    ]
)

# The final stage (study/final/stage.py): a row per candidate configuration or baseline and fold, and on the test set.
# What one fold of a cross-validated run yields: the final stage's rows and an ablation's rows end with these.
FOLD_FIELDS = [
    ("n_train", pa.int64()),
    ("n_held_out", pa.int64()),
    *[(m, pa.float64()) for m in ("macro_f1", "auc", "accuracy", "loss")],
    ("best_epoch", pa.int64()),  # the epoch chosen on the fold's inner validation split; null for baselines
    ("epochs", pa.int64()),  # epochs run
    ("curve", pa.list_(pa.float64())),  # the held-out macro-F1 of every epoch; null for baselines
    ("inner_curve", pa.list_(pa.float64())),  # the inner validation split's macro-F1 of every epoch
    ("held_out_best_macro_f1", pa.float64()),  # the old rule: the held-out fold's own best epoch (optimistic)
    ("c", pa.float64()),  # a baseline's inverse regularisation strength, chosen by inner CV
    ("started_at", pa.float64()),  # Unix seconds, in the task
    ("finished_at", pa.float64()),
    ("time_s", pa.float64()),
    ("hostname", pa.string()),
    ("node_id", pa.string()),  # the Ray node the task ran on; null for what the driver scored
    ("error", pa.string()),
]

FINAL_SCHEMA = pa.schema(
    [
        ("candidate", pa.string()),  # the trial id of a searched configuration, or a baseline's name
        ("kind", pa.string()),  # "rnn" | a baseline's name (trainables/baseline.py BASELINES)
        ("rank", pa.int64()),  # 1 = the search's best; null for baselines
        ("split", pa.string()),  # "cv" | "test"
        ("fold", pa.int64()),  # 1-based; 0 on the test set
        *FOLD_FIELDS,
    ]
)

SCHEMAS = {
    TRIALS_FILE: TRIALS_SCHEMA,
    EPOCHS_FILE: EPOCHS_SCHEMA,
    PREDICTIONS_FILE: PREDICTIONS_SCHEMA,
    FINAL_FILE: FINAL_SCHEMA,
}


def _cell(value: Any, kind: pa.DataType) -> Any:
    """A missing value as null: pandas turns None into NaN in numeric columns, which int columns refuse."""
    if isinstance(value, float) and math.isnan(value) and not pa.types.is_floating(kind):
        return None
    if hasattr(value, "item") and not hasattr(value, "__len__"):  # numpy scalars
        return value.item()
    return value


def write_table(rows: Iterable[dict[str, Any]], path: Path, schema: pa.Schema) -> None:
    """Write rows (dicts keyed by column name; missing keys become null) as Parquet with `schema`."""
    rows = list(rows)
    columns = {f.name: [_cell(r.get(f.name), f.type) for r in rows] for f in schema}
    table = pa.Table.from_pydict(columns, schema=schema.with_metadata({"schema_version": str(SCHEMA_VERSION)}))
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def read_table(path: Path, schema: pa.Schema | None = None) -> pd.DataFrame:
    """Read one of the results files (or another file of `schema`), checking its schema version and columns.

    Raises:
        ResultsError: missing file, unreadable file, unknown schema version or columns.
    """
    path = Path(path)
    schema = schema or SCHEMAS.get(path.name)
    if schema is None:
        raise ResultsError(f"{str(path)!r} is not a results file; expected one of {sorted(SCHEMAS)}.")
    if not path.is_file():
        raise ResultsError(
            f"{str(path)!r} does not exist; is {str(path.parent)!r} a study folder written by `python -m study.run`?"
        )
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as e:
        raise ResultsError(
            f"{str(path)!r} is not a readable Parquet file ({e}); rerun or `--resume` the study."
        ) from None
    version = (table.schema.metadata or {}).get(b"schema_version", b"?").decode()
    if version != str(SCHEMA_VERSION):
        raise ResultsError(
            f"{str(path)!r} has results schema version {version}, but this code reads version "
            f"{SCHEMA_VERSION}; use the matching version of this tool."
        )
    if table.schema.remove_metadata() != schema:
        raise ResultsError(f"{str(path)!r} does not have the expected columns of schema version {SCHEMA_VERSION}.")
    return table.to_pandas()


def write_json(obj: dict[str, Any], path: Path) -> None:
    write_text(path, json_text(obj, indent=2) + "\n")


def read_study(folder: Path) -> dict[str, Any]:
    """study.json of a results folder, checked for its schema version."""
    path = Path(folder) / STUDY_FILE
    if not Path(folder).is_dir():
        raise ResultsError(f"{str(folder)!r} is not a folder; give a study folder such as results/<name>.")
    if not path.is_file():
        raise ResultsError(
            f"{str(folder)!r} is not a study folder: it has no {STUDY_FILE}. "
            "Give a folder written by `python -m study.run`."
        )
    try:
        study = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ResultsError(f"{str(path)!r} is not valid JSON ({e}).") from None
    if study.get("schema_version") != SCHEMA_VERSION:
        raise ResultsError(
            f"{str(path)!r} has results schema version {study.get('schema_version')!r}, but this "
            f"code reads version {SCHEMA_VERSION}; use the matching version of this tool."
        )
    return study
