import numpy as np
import pytest

from trainables.data import DataSpec, read_labelled, stratified_split
from trainables.prepare import prepare
from trainables.preprocess import clean_corpus
from trainables.vectorize import (
    OOV,
    PAD,
    VectorConfig,
    WordVectors,
    auto_epochs,
    embedding_matrix,
    encode_mean,
    encode_sequence,
    train_vectors,
)

CORPUS = [["καλη", "μερα", "ελλαδα"], ["κακη", "μερα"], ["καλη", "ψηφος", "ελλαδα"]] * 20
SMALL = VectorConfig(vector_size=8, min_count=1, epochs=3)


def test_word2vec_is_seeded_and_cached(tmp_path):
    a = train_vectors(CORPUS, SMALL, tmp_path)
    files = list(tmp_path.glob("word2vec-*.npz"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    b = train_vectors(CORPUS, SMALL, tmp_path)  # from the cache: the file is not rewritten
    assert files[0].stat().st_mtime_ns == mtime
    assert a.vocab == b.vocab and np.array_equal(a.vectors, b.vectors)
    files[0].unlink()  # the cache is safe to delete: the same vectors come back
    c = train_vectors(CORPUS, SMALL, tmp_path)
    assert np.array_equal(a.vectors, c.vectors)
    train_vectors(CORPUS, VectorConfig(vector_size=8, min_count=1, epochs=3, seed=1), tmp_path)
    assert len(list(tmp_path.glob("word2vec-*.npz"))) == 2  # another seed, another entry
    assert a.vectors.shape == (len(a.vocab), 8) and a.vectors.dtype == np.float32


def test_damaged_cache_entry_is_retrained(tmp_path):
    a = train_vectors(CORPUS, SMALL, tmp_path)
    next(tmp_path.glob("word2vec-*.npz")).write_bytes(b"not a zip")
    b = train_vectors(CORPUS, SMALL, tmp_path)
    assert np.array_equal(a.vectors, b.vectors)


def test_encode_sequence_pads_truncates_and_marks_unknown():
    wv = WordVectors(("a", "b", "c"), np.eye(3, dtype=np.float32))
    ids, lengths = encode_sequence([["a", "b"], ["c", "zzz", "a", "b"], []], wv, max_len=3)
    assert ids.dtype == np.int32 and ids.shape == (3, 3)
    assert ids[0].tolist() == [2, 3, PAD]
    assert ids[1].tolist() == [4, OOV, 2]  # truncated to max_len, unknown word -> OOV
    assert ids[2].tolist() == [OOV, PAD, PAD]  # an empty tweet keeps one (unknown) token
    assert lengths.tolist() == [2, 3, 1]
    emb = embedding_matrix(wv)
    assert emb.shape == (5, 3)
    assert (emb[PAD] == 0).all()
    np.testing.assert_allclose(emb[OOV], wv.vectors.mean(0))
    np.testing.assert_array_equal(emb[2:], wv.vectors)


def test_encode_mean():
    wv = WordVectors(("a", "b"), np.array([[1, 0], [0, 3]], dtype=np.float32))
    x = encode_mean([["a", "b", "zzz"], ["zzz"]], wv)
    np.testing.assert_allclose(x, [[0.5, 1.5], [0, 0]])


def test_auto_epochs_bounds():
    assert auto_epochs(30_000) == 50
    assert auto_epochs(300_000) == 10
    assert auto_epochs(100_000_000) == 5


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("mode", "tfidf", "`encoding` must be one of"),
        ("kind", "glove", "`vectorizer` must be one of"),
        ("vector_size", 0, "`vector_size` must be >= 1"),
        ("epochs", -1, "`w2v_epochs` must be >= 0"),
    ],
)
def test_config_errors(field, value, message):
    with pytest.raises(ValueError, match=message):
        VectorConfig(**{field: value})


@pytest.fixture(scope="module")
def greek_slice(shared_data_dir):
    data = read_labelled(shared_data_dir / "greek-election-tweets-ys19-2023" / "valid_set.csv", DataSpec())
    rng = np.random.default_rng(0)
    from trainables.data import subset

    small = subset(data, np.sort(rng.choice(len(data), 400, replace=False)))
    return stratified_split(small, 0.25, seed=0)


@pytest.mark.parametrize("mode", ["sequence", "mean"])
def test_prepare_both_modes_on_real_tweets(greek_slice, mode, tmp_path):
    train, valid = greek_slice
    d = prepare(train, valid, (), vectors=VectorConfig(mode=mode, vector_size=16, max_len=20), cache_dir=tmp_path)
    assert d.classes == ("NEGATIVE", "NEUTRAL", "POSITIVE")
    assert len(d.y_train) == len(train) and len(d.y_valid) == len(valid)
    if mode == "sequence":
        assert d.x_train.shape == (len(train), 20) and d.x_train.dtype == np.int32
        assert d.embeddings.shape[1] == 16 and d.input_size == 16
        assert (d.len_train >= 1).all() and (d.len_train <= 20).all()
        assert d.x_train.max() < len(d.embeddings)
    else:
        assert d.x_train.shape == (len(train), 16) and d.embeddings is None and d.input_size == 1
        assert (d.len_train == 16).all()


def test_word2vec_never_sees_validation_texts(greek_slice, tmp_path):
    train, valid = greek_slice
    only_valid = set(w for t in clean_corpus(valid.texts) for w in t) - set(
        w for t in clean_corpus(train.texts) for w in t
    )
    assert only_valid  # the check below means something only if such words exist
    d = prepare(train, valid, (), vectors=VectorConfig(vector_size=8, min_count=1, max_len=64), cache_dir=tmp_path)
    vocab_size = len(d.embeddings) - 2
    wv = train_vectors(clean_corpus(train.texts), VectorConfig(vector_size=8, min_count=1), tmp_path)
    assert vocab_size == len(wv.vocab)
    assert not only_valid & set(wv.vocab)
    # every validation-only word was encoded as the unknown token
    tokens = clean_corpus(valid.texts)
    for row, toks in zip(d.x_valid, tokens):
        for pos, tok in enumerate(toks[:64]):
            if tok in only_valid:
                assert row[pos] == OOV
