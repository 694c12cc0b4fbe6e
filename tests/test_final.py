"""The final stage: fold tasks side by side on a real Ray, resumable, and the summary that picks the winner."""

import math

import numpy as np
import pandas as pd
import pytest

from study.final.stage import FinalPlan, candidates, run_cv
from study.final.summary import CV, Candidate, summarise_final
from study.final.summary import TEST as TEST_SPLIT
from study.results import FINAL_SCHEMA
from trainables.baseline import BASELINES
from trainables.inputs import StudyData

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
                    "held_out_best_macro_f1": f1 + 0.02,  # the old rule: each fold's best epoch on itself
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
    assert w["cv_held_out_epoch"]["mean"] == pytest.approx(0.47) and "inner validation split" in block["scored_by"]
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
    data = StudyData(demo_labelled, (), CleanConfig(), VectorConfig(vector_size=8), tmp_path / "w2v")
    rows = []
    run_cv(plan, cands, data, done=set(), on_row=rows.append)
    df = pd.DataFrame(rows, columns=FINAL_SCHEMA.names)
    assert len(df) == 10 and df["error"].isna().all()  # (2 candidates + 3 baselines) x 2 folds
    rnn = df[df["kind"] == "rnn"]
    assert sorted(rnn["best_epoch"].unique()) <= [1, 2]
    assert (rnn["held_out_best_macro_f1"] >= rnn["macro_f1"]).all()
    assert (df["n_train"] + df["n_held_out"] == len(demo_labelled)).sum() == 6  # the baselines train on every row
    assert (rnn["n_train"] + rnn["n_held_out"] < len(demo_labelled)).all()  # the inner split chooses the epoch
    # that tasks run side by side is tested without a clock in test_resources (two tasks that wait for each other)
    # resume: the finished first fold is not run again
    again = []
    done = {(r["candidate"], CV, 1) for r in rows if r["fold"] == 1}
    run_cv(plan, cands, data, done=done, on_row=again.append)
    assert sorted((r["candidate"], r["fold"]) for r in again) == sorted(
        (r["candidate"], r["fold"]) for r in rows if r["fold"] == 2
    )


@pytest.mark.slow
def test_the_baselines_read_the_raw_texts_of_each_fold(ray_2_cpus, tmp_path):
    """The label lives only in stop words and punctuation, which the RNN's cleaning removes: the final stage's
    baselines, fed the raw texts, separate the classes in every fold."""
    from trainables.data import LabelledData
    from trainables.preprocess import CleanConfig
    from trainables.vectorize import VectorConfig

    labels = np.arange(60, dtype=np.int64) % 2
    words = [f"ψηφος{chr(0x3B1 + i % 24)}{chr(0x3B1 + i // 24)}" for i in range(60)]  # distinct once cleaned
    texts = tuple(f"{'και το' if y == 0 else 'ΌΧΙ!!'} {w}" for w, y in zip(words, labels))
    data = LabelledData(texts, labels, ("a", "b"), None, "cues.csv")
    plan = FinalPlan(top=0, folds=2, data_seed=0, fixed={"seed": 0}, cpus=1, gpus=0, max_retries=0)
    rows = []
    run_cv(plan, [], StudyData(data, (), CleanConfig(), VectorConfig(vector_size=8), tmp_path), set(), rows.append)
    assert sorted((r["candidate"], r["fold"]) for r in rows) == sorted((b, k) for b in BASELINES for k in (1, 2))
    assert all(r["macro_f1"] == 1.0 and r["c"] > 0 for r in rows), rows


@pytest.mark.slow
def test_each_fold_encodes_each_candidates_own_representation_once(ray_2_cpus, demo_labelled, tmp_path):
    from trainables.preprocess import CleanConfig
    from trainables.vectorize import VectorConfig

    fixed = {**SMALL, "bidirectional": True, "seed": 0, "max_epochs": 1, "num_threads": 1, "device": "cpu"}
    plan = FinalPlan(top=3, folds=2, data_seed=0, fixed=fixed, cpus=1, gpus=0, max_retries=1)
    fasttext = {"vectorizer": "fasttext", "vector_size": 12, "window": 5, "sg": False, "min_count": 2}
    cands = [
        Candidate("plain", 1, 0.5, {"lr": 3e-3}),  # the study's own representation
        Candidate("ft-a", 2, 0.4, {"lr": 3e-3, **fasttext}),
        Candidate("ft-b", 3, 0.3, {"lr": 1e-3, **fasttext}),  # the same representation as ft-a
    ]
    cache = tmp_path / "vectors"
    rows = []
    vectors = VectorConfig(vector_size=8, epochs=1)
    run_cv(plan, cands, StudyData(demo_labelled, (), CleanConfig(), vectors, cache), set(), rows.append, baselines=())
    assert len(rows) == 6 and all(r["error"] is None for r in rows)
    # one set of vectors per (fold, representation): 2 folds x (word2vec 8-d, fasttext 12-d)
    assert len(list(cache.glob("word2vec-*.npz"))) == 2 and len(list(cache.glob("fasttext-*.npz"))) == 2


def _study_config(tmp_path, name, **kw):
    from study.config import StudyConfig

    base = dict(
        space="smoke",
        num_samples=3,
        max_epochs=2,
        demo_rows=400,
        vector_size=16,
        final_top=2,
        final_folds=2,
        test_fraction=0.25,
        name=name,
        results_dir=str(tmp_path),
    )
    return StudyConfig.from_settings(**{**base, **kw})


@pytest.mark.slow
def test_a_study_ends_with_its_answer_a_baseline_and_a_saved_model(ray_2_cpus, tmp_path):
    import json

    from study.results import read_table
    from study.search.driver import run_study
    from trainables.data import DataSpec, read_labelled
    from trainables.demo import write_demo
    from trainables.saved_model import load_model

    outcome = run_study(_study_config(tmp_path, "answer"))
    folder = outcome.folder
    study = json.loads((folder / "study.json").read_text())
    final = study["final"]
    assert study["status"] == "completed" and final == outcome.info["final"]
    rows = read_table(folder / "final.parquet")
    cv = rows[rows["split"] == CV]
    # (2 candidates + 3 baselines) x 2 folds on the 300 labelled rows; the 100 test rows never in a fold
    assert len(cv) == 10 and not cv.duplicated(["candidate", "fold"]).any()
    base = cv[cv["kind"] != "rnn"]
    assert (base["n_train"] + base["n_held_out"] == 300).all() and cv["error"].isna().all()
    iv = cv[["started_at", "finished_at"]].to_numpy()
    assert any(iv[i, 0] < iv[j, 1] and iv[j, 0] < iv[i, 1] for i in range(len(iv)) for j in range(i))
    # the winner, its epochs and the optimism of its search score
    w = final["winner"]
    mine = cv[cv["candidate"] == w["trial_id"]]
    assert w["cv"]["mean"] == pytest.approx(mine["macro_f1"].mean())
    assert w["epochs"] == int(round(mine["best_epoch"].median()))
    best = outcome.trials.sort_values("best_val_macro_f1", ascending=False).iloc[0]
    assert final["candidates"][0]["trial_id"] == best["trial_id"]
    assert w["optimism"] == pytest.approx(w["search_score"] - w["cv"]["mean"])
    assert final["better_baseline"] in BASELINES
    assert final["better_baseline"] == max(final["baselines"], key=lambda b: final["baselines"][b]["cv"]["mean"])
    assert final["comparison"]["macro_f1"]["verdict"] in ("better", "not distinguishable", "worse")
    # the test set: the saved model's score is the headline, and the baselines score it too
    test = rows[rows["split"] == TEST_SPLIT].set_index("candidate")
    assert set(test.index) == {w["trial_id"], *BASELINES} and (test["n_held_out"] == 100).all()
    assert study["data"]["accounting"]["sizes"] == {"train": 240, "valid": 60, "test": 100}
    assert final["headline"] == {"source": "test", "n": 100, **final["test"]["model"]}
    # the saved model gives the test score it was credited with
    train_csv, _ = write_demo(tmp_path / "demo", n_rows=400, seed=0)
    from trainables.data import stratified_split

    _, held_out = stratified_split(read_labelled(train_csv, DataSpec()), 0.25, seed=0)
    model = load_model(folder / "model")
    from trainables.metrics import classification_metrics

    f1 = classification_metrics(held_out.labels, model.predict_proba(list(held_out.texts)))["val_macro_f1"]
    assert f1 == pytest.approx(final["test"]["model"]["macro_f1"])
    assert model.info["provenance"]["trial_id"] == w["trial_id"] and model.info["provenance"]["epochs"] == w["epochs"]


@pytest.mark.slow
def test_an_interrupted_final_stage_resumes_without_redoing_finished_folds(ray_2_cpus, tmp_path):
    from dataclasses import replace

    from study.results import read_table
    from study.search.driver import StudyInterrupted, run_study

    cfg = _study_config(tmp_path, "resumed", test_fraction=0.0)
    written = []

    def interrupt_after_three(phase):
        if phase == "final-row":
            written.append(phase)
            if len(written) == 3:
                raise KeyboardInterrupt  # the moment Ctrl-C lands: right after the third row is on disk

    with pytest.raises(StudyInterrupted, match="final stage"):
        run_study(cfg, on_phase=interrupt_after_three)
    first = read_table(tmp_path / "resumed" / "final.parquet")
    assert len(first) == 3
    outcome = run_study(replace(cfg, resume="resumed"))
    rows = read_table(outcome.folder / "final.parquet")
    assert len(rows) == 10 and not rows.duplicated(["candidate", "split", "fold"]).any()
    kept = rows.merge(first, on=["candidate", "fold"], suffixes=("", "_first"))
    assert len(kept) == 3 and (kept["started_at"] == kept["started_at_first"]).all()  # not run again
    assert outcome.info["status"] == "completed" and outcome.info["final"]["winner"] is not None
    assert (outcome.folder / "model" / "weights.pt").is_file()
