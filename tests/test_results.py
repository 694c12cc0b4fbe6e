import math

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from study.results import (
    EPOCHS_SCHEMA,
    PREDICTIONS_SCHEMA,
    SCHEMA_VERSION,
    TRIALS_SCHEMA,
    ResultsError,
    read_study,
    read_table,
    write_json,
    write_table,
)
from study.search.rows import RowContext, trial_row


def _epochs(trial_id, scores):
    return [
        {
            "trial_id": trial_id,
            "epoch": i + 1,
            "train_loss": 1.0,
            "train_macro_f1": 0.3,
            "train_accuracy": 0.4,
            "val_loss": 1.1 - s,
            "val_macro_f1": s,
            "val_accuracy": s + 0.05,
            "val_auc": 0.5 + s / 2,
            "val_f1_per_class": [s, s, s],
            "val_recall_per_class": [s, 0.1, 0.2],
            "epoch_time_s": 0.5,
            "time_total_s": 0.5 * (i + 1),
            "node_id": "n1",
        }
        for i, s in enumerate(scores)
    ]


def test_summary_picks_the_best_and_last_epoch():
    ctx = RowContext(fixed={}, max_epochs=5, seed=0, cpus=1.0, gpus=0.0)  # 4 of 5 epochs: stopped early
    row = trial_row(
        ctx, "t_00003", 3, {"cell": "gru", "lr": 0.01}, _epochs("t_00003", [0.3, 0.5, 0.5, 0.4]), "TERMINATED"
    )
    assert row["best_epoch"] == 2 and row["best_val_macro_f1"] == 0.5  # earliest of the ties
    assert row["last_val_macro_f1"] == 0.4 and row["epochs_run"] == 4
    assert row["params_cell"] == "gru" and row["params_hidden_size"] is None
    assert row["status"] == "stopped_early" and row["time_total_s"] == 2.0


def test_write_read_schema_round_trip(tmp_path):
    epochs = _epochs("t_00001", [0.3, 0.6])
    ctx = RowContext(fixed={}, max_epochs=2, seed=0, cpus=1.0, gpus=0.25)
    trials = [
        trial_row(ctx, "t_00001", 1, {"cell": "lstm", "hidden_size": 16, "attention": True}, epochs, "TERMINATED")
    ]
    preds = [{"trial_id": "t_00001", "epoch": 2, "row": i, "label": i % 3, "probs": [0.2, 0.3, 0.5]} for i in range(4)]
    for name, rows, schema in [
        ("trials.parquet", trials, TRIALS_SCHEMA),
        ("epochs.parquet", epochs, EPOCHS_SCHEMA),
        ("predictions.parquet", preds, PREDICTIONS_SCHEMA),
    ]:
        write_table(rows, tmp_path / name, schema)
        assert pq.read_schema(tmp_path / name).remove_metadata() == schema
        df = read_table(tmp_path / name)
        assert len(df) == len(rows)
    df = read_table(tmp_path / "trials.parquet")
    assert df.loc[0, "params_hidden_size"] == 16 and df.loc[0, "gpus"] == 0.25
    assert math.isclose(df.loc[0, "best_val_macro_f1"], 0.6)
    assert list(read_table(tmp_path / "epochs.parquet").loc[1, "val_f1_per_class"]) == [0.6, 0.6, 0.6]
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "epochs.parquet"
    write_table(_epochs("a_00000", [0.1]), path, EPOCHS_SCHEMA)
    with pytest.raises((pa.ArrowException, TypeError, ValueError)):
        write_table([{"trial_id": "x", "epoch": "not a number"}], path, EPOCHS_SCHEMA)
    assert len(read_table(path)) == 1
    assert not list(tmp_path.glob(".*.tmp"))


def test_read_errors(tmp_path):
    with pytest.raises(ResultsError, match="does not exist"):
        read_table(tmp_path / "trials.parquet")
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "trials.parquet")
    with pytest.raises(ResultsError, match="schema version"):
        read_table(tmp_path / "trials.parquet")
    with pytest.raises(ResultsError, match="not a study folder"):
        read_study(tmp_path)
    write_json({"schema_version": SCHEMA_VERSION + 1}, tmp_path / "study.json")
    with pytest.raises(ResultsError, match="schema version"):
        read_study(tmp_path)
    write_json({"schema_version": SCHEMA_VERSION, "x": float("nan")}, tmp_path / "study.json")
    assert read_study(tmp_path)["x"] is None
