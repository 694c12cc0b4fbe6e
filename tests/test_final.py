"""The final stage: fold tasks side by side on a real Ray, resumable, and the summary that picks the winner."""

import math

import numpy as np
import pandas as pd
import pytest

from study.final import (
    CV,
    FINAL_SCHEMA,
    Candidate,
    FinalPlan,
    candidates,
    run_cv,
    summarise_final,
)

SMALL = {"cell": "gru", "hidden_size": 8, "num_layers": 1, "attention": True, "skip": False, "batch_size": 64}


def _trials(scores):
    return pd.DataFrame(
        {
            "trial_id": [f"t{i}" for i in range(len(scores))],
            "trial_number": range(len(scores)),
            "best_val_macro_f1": scores,
            "params_cell": ["gru"] * len(scores),
            "params_hidden_size": np.arange(8, 8 + len(scores), dtype=np.int64),
            "params_dropout": [None] * len(scores),
        }
    )


def test_candidates_are_the_top_scored_trials_with_plain_values():
    cands = candidates(_trials([0.3, math.nan, 0.5, 0.4]), 2, "best_val_macro_f1", ["cell", "hidden_size", "dropout"])
    assert [(c.trial_id, c.rank, c.search_score) for c in cands] == [("t2", 1, 0.5), ("t3", 2, 0.4)]
    assert cands[0].params == {"cell": "gru", "hidden_size": 10} and type(cands[0].params["hidden_size"]) is int


def _cv_rows(per_candidate):
    rows = []
    for name, (kind, f1s, epochs) in per_candidate.items():
        for k, (f1, e) in enumerate(zip(f1s, epochs, strict=True), start=1):
            rows.append(
                {
                    "candidate": name,
                    "kind": kind,
                    "split": CV,
                    "fold": k,
                    "macro_f1": f1,
                    "auc": 0.6,
                    "accuracy": 0.5,
                    "best_epoch": e,
                }
            )
    return pd.DataFrame(rows).assign(error=None)


def test_summary_picks_the_best_cv_mean_and_the_median_epoch():
    cands = [Candidate("a", 1, 0.55, {}), Candidate("b", 2, 0.50, {})]
    rows = _cv_rows(
        {
            "a": ("rnn", [0.40, 0.41, 0.39], [2, 5, 3]),
            "b": ("rnn", [0.45, 0.46, 0.44], [1, 4, 2]),
            "tfidf_word": ("tfidf_word", [0.30, 0.31, 0.29], [None] * 3),
            "tfidf_char": ("tfidf_char", [0.35, 0.36, 0.34], [None] * 3),
        }
    )
    block = summarise_final(rows, cands, folds=3)
    w = block["winner"]
    assert w["trial_id"] == "b" and w["epochs"] == 2 and w["optimism"] == pytest.approx(0.05)
    assert w["cv"]["mean"] == pytest.approx(0.45) and w["cv"]["low"] < 0.45 < w["cv"]["high"]
    assert block["better_baseline"] == "tfidf_char"
    assert block["comparison"]["macro_f1"]["difference"] == pytest.approx(0.10)
    assert block["comparison"]["macro_f1"]["verdict"] == "better"


def test_a_candidate_with_a_failed_fold_cannot_win():
    cands = [Candidate("a", 1, 0.55, {}), Candidate("b", 2, 0.50, {})]
    rows = _cv_rows({"a": ("rnn", [0.40, 0.41], [2, 2]), "b": ("rnn", [0.45, math.nan], [1, 1])})
    rows.loc[(rows["candidate"] == "b") & (rows["fold"] == 2), "error"] = "NonFiniteLossError: nan"
    block = summarise_final(rows, cands, folds=2)
    assert block["winner"]["trial_id"] == "a"
    assert not next(c for c in block["candidates"] if c["trial_id"] == "b")["complete"]


@pytest.fixture(scope="module")
def ray_2_cpus():
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def demo_labelled(tmp_path_factory):
    from trainables.data import DataSpec, read_labelled
    from trainables.demo import write_demo

    train, _ = write_demo(tmp_path_factory.mktemp("demo"), n_rows=300, seed=0)
    return read_labelled(train, DataSpec())


@pytest.mark.slow
def test_folds_run_side_by_side_and_a_resume_skips_finished_ones(ray_2_cpus, demo_labelled, tmp_path):
    from trainables.preprocess import CleanConfig
    from trainables.vectorize import VectorConfig

    plan = FinalPlan(
        top=2,
        folds=2,
        data_seed=0,
        fixed={**SMALL, "bidirectional": True, "seed": 0, "max_epochs": 2, "num_threads": 1, "device": "cpu"},
        cpus=1,
        gpus=0,
        max_retries=1,
    )
    cands = [Candidate("x", 1, 0.5, {"lr": 3e-3, "dropout": 0.0}), Candidate("y", 2, 0.4, {"lr": 1e-3, "dropout": 0.1})]
    args = (demo_labelled, (), CleanConfig(), VectorConfig(vector_size=8), tmp_path / "w2v")
    rows = []
    run_cv(plan, cands, *args, done=set(), on_row=rows.append)
    df = pd.DataFrame(rows, columns=FINAL_SCHEMA.names)
    assert len(df) == 8 and df["error"].isna().all()  # (2 candidates + 2 baselines) x 2 folds
    assert sorted(df.loc[df["kind"] == "rnn", "best_epoch"].unique()) <= [1, 2]
    assert (df["n_train"] + df["n_held_out"] == len(demo_labelled)).all()
    # concurrency: some two row tasks ran at the same time on the 2 CPUs
    iv = df[["started_at", "finished_at"]].to_numpy()
    overlaps = [(i, j) for i in range(len(iv)) for j in range(i) if iv[i, 0] < iv[j, 1] and iv[j, 0] < iv[i, 1]]
    assert overlaps, iv
    # resume: the finished first fold is not run again
    again = []
    done = {(r["candidate"], CV, 1) for r in rows if r["fold"] == 1}
    run_cv(plan, cands, *args, done=done, on_row=again.append)
    assert sorted((r["candidate"], r["fold"]) for r in again) == sorted(
        (r["candidate"], r["fold"]) for r in rows if r["fold"] == 2
    )
