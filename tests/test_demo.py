"""Tests for trainables/demo.py: determinism, realistic surface features, learnable but not trivial."""

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

from trainables.data import read_labelled, read_unlabelled
from trainables.demo import DEMO_CLASSES, make_demo_frame, write_demo


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_demo_frame(2000, seed=0)


def test_deterministic_per_seed(frame):
    pd.testing.assert_frame_equal(make_demo_frame(2000, seed=0), frame)
    assert not make_demo_frame(2000, seed=1)["Text"].equals(frame["Text"])


def test_columns_classes_and_parties(frame):
    assert list(frame.columns) == ["New_ID", "Text", "Sentiment", "Party"]
    shares = frame["Sentiment"].value_counts(normalize=True)
    assert set(shares.index) == set(DEMO_CLASSES) and shares.min() > 0.28
    assert set(frame["Party"]) == {"SYRIZA", "ND", "PASOK", "KKE", "DIEM", "ELL_LYSI"}
    assert frame["Party"].value_counts().index[0] == "SYRIZA"
    assert sorted(frame["New_ID"]) == list(range(1, 2001))


def test_id_does_not_leak_the_label(frame):
    order = frame.sort_values("New_ID")["Sentiment"]
    # In the original the ids come in blocks of one label; here the first third must be mixed.
    assert order.iloc[: len(order) // 3].value_counts(normalize=True).min() > 0.25


def test_texts_give_every_cleaning_step_work(frame):
    texts = frame["Text"]
    for pattern in (
        r"https://t\.co/\w{10}",
        r"@\w+",
        r"#εκλογές2019",
        r"[άέήίόύώ]",
        r"\d",
        r"[Α-Ω]{3,}",
        "\n",
    ):
        assert texts.str.contains(pattern).any(), pattern
    assert texts.str.contains(r"https://t\.co/").mean() > 0.3


def test_learnable_but_not_trivial(frame):
    pipe = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=1000))
    cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    f1 = cross_val_score(pipe, frame["Text"], frame["Sentiment"], cv=cv, scoring="f1_macro").mean()
    assert 0.5 < f1 < 0.9, f1


def test_write_demo_reads_back_and_is_reused(tmp_path):
    train_path, unlabelled_path = write_demo(tmp_path / "demo", n_rows=300, seed=3)
    data = read_labelled(train_path)
    assert len(data) == 300 and data.classes == DEMO_CLASSES
    assert np.array_equal(
        data.labels,
        pd.Series(make_demo_frame(300, seed=3)["Sentiment"]).map({c: i for i, c in enumerate(DEMO_CLASSES)}).to_numpy(),
    )
    unlabelled = pd.read_csv(unlabelled_path)
    assert list(unlabelled.columns) == ["New_ID", "Text", "Party"] and len(unlabelled) == 150
    assert len(read_unlabelled(unlabelled_path)) == 150
    assert not set(unlabelled["Text"]) & set(pd.read_csv(train_path)["Text"])

    mtimes = [p.stat().st_mtime_ns for p in (train_path, unlabelled_path)]
    assert write_demo(tmp_path / "demo", n_rows=300, seed=3) == (train_path, unlabelled_path)
    assert [p.stat().st_mtime_ns for p in (train_path, unlabelled_path)] == mtimes
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["train.csv", "unlabelled.csv"]


def test_argument_validation():
    with pytest.raises(ValueError, match="`n_rows` must be at least 1"):
        make_demo_frame(0)
    with pytest.raises(ValueError, match=r"`label_noise` must be in \[0, 1\]"):
        make_demo_frame(10, label_noise=1.5)
