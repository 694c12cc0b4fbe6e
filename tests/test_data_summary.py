"""trainables/summary.py: what the driver keeps for the report's data section, from the data it encoded."""

import numpy as np
import pytest

from study.results import read_table, write_table
from trainables.data import LabelledData
from trainables.prepare import prepare
from trainables.preprocess import CleanConfig, clean_corpus
from trainables.summary import (
    CLEAN,
    DATA_SCHEMA,
    MAP,
    RAW,
    known_rows,
    mean_vectors,
    raw_tokens,
    sample_rows,
    summarise_data,
    token_frequencies,
)
from trainables.vectorize import VectorConfig, encode_mean, train_vectors

TEXTS = (
    "Η ΝΔ κερδίζει τις εκλογές",
    "ο ΣΥΡΙΖΑ χάνει τις εκλογές",
    "καλή μέρα σε όλους",
    "!!! ???",  # nothing left after cleaning: no mean vector
    "οι εκλογές είναι αύριο, καλή επιτυχία",
    "κακή μέρα για τον ΣΥΡΙΖΑ",
)


def _split(texts=TEXTS):
    labels = np.arange(len(texts), dtype=np.int64) % 2
    return LabelledData(texts, labels, ("NEG", "POS"), None, "test")


@pytest.mark.parametrize("mode", ["sequence", "mean"])
def test_mean_vectors_are_the_study_word2vec_means(mode):
    """The map's vectors come from the encoded arrays and equal encode_mean over the same Word2Vec."""
    vectors = VectorConfig(mode=mode, vector_size=8, min_count=1, epochs=5, max_len=16)
    data = prepare(_split(), _split(), vectors=vectors)
    known = known_rows(data)
    assert known.tolist() == [True, True, True, False, True, True]
    tokens = clean_corpus(TEXTS, CleanConfig())
    expected = encode_mean(tokens, train_vectors(tokens, vectors))  # the same seeded vectors (no cache)
    rows = np.flatnonzero(known)
    np.testing.assert_allclose(mean_vectors(data, rows), expected[rows], rtol=1e-5, atol=1e-6)


def test_sample_rows_is_seeded_and_skips_rows_without_vectors():
    known = np.arange(100) % 10 != 0
    a, b = sample_rows(known, 30, seed=1), sample_rows(known, 30, seed=1)
    assert a.tolist() == b.tolist() and len(a) == 30 and known[a].all() and (np.diff(a) > 0).all()
    assert sample_rows(known, 30, seed=2).tolist() != a.tolist()
    assert sample_rows(known, 1000).tolist() == np.flatnonzero(known).tolist()


def test_summary_rows_round_trip_through_parquet(tmp_path):
    train = _split()
    data = prepare(train, train, vectors=VectorConfig(vector_size=8, min_count=1, epochs=5, max_len=16))
    path = tmp_path / "data.parquet"
    write_table(summarise_data(train, data, CleanConfig(), seed=0), path, DATA_SCHEMA)
    d = read_table(path, DATA_SCHEMA)
    raw = d.loc[d["kind"] == RAW, ["token", "count"]].values.tolist()
    assert raw[:2] == [["εκλογές", 3], ["ΣΥΡΙΖΑ", 2]]  # most frequent first, ties in alphabetical order
    assert raw == token_frequencies(raw_tokens(TEXTS)).values.tolist()
    clean = d.loc[d["kind"] == CLEAN, ["token", "count"]].values.tolist()
    assert clean == token_frequencies(clean_corpus(TEXTS, CleanConfig())).values.tolist()
    assert ["νδ", 1] in clean and not any(t in ("τις", "!!!") for t, _ in clean)  # lowercased, stop words gone
    points = d[d["kind"] == MAP]
    assert points["label"].tolist() == [0, 1, 0, 0, 1]  # the five tweets with a known word, in order
    assert np.stack(points["vector"].to_numpy()).shape == (5, 8)
