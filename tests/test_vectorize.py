from dataclasses import replace

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
    assert auto_epochs(300_000, "fasttext") == 5 and auto_epochs(30_000, "fasttext") == 25  # FT_PASSES of it


def test_the_ngram_table_holds_twice_the_vocabularys_ngrams_within_its_bounds(monkeypatch):
    import trainables.vectorize as vz
    from trainables.vectorize import ngram_table_size

    # "ab" with 3..4-grams: <ab, ab>, <ab> -> 3 n-grams; the table's floor is 2^12
    assert ngram_table_size(["ab"], 3, 4) == 1 << 12
    words = [f"w{i:05d}" for i in range(20_000)]  # tens of thousands of distinct n-grams in all
    distinct = {w[i : i + n] for w in (f"<{w}>" for w in words) for n in (3, 4) for i in range(len(w) - n + 1)}
    size = ngram_table_size(words, 3, 4)
    assert size >= 2 * len(distinct) > size // 2 and size & (size - 1) == 0  # the smallest power of two
    monkeypatch.setattr(vz, "FT_MAX_BUCKETS", 1 << 14)  # the cap, reached without a huge vocabulary
    assert ngram_table_size(words, 3, 4) == 1 << 14


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("mode", "tfidf", "`encoding` must be one of"),
        ("kind", "glove", "`vectorizer` must be one of"),
        ("vector_size", -1, "`vector_size` must be >= 0"),
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


# ------------------------------------------------------------------------------------------- FastText

STEMS = ["ψηφιζω", "ψηφιζουμε", "ψηφιζετε", "ψηφιζουν", "ψηφιζει"]  # inflections of one verb
OTHER = ["θαλασσα", "ουρανος", "βουνο", "ποταμι", "δασος", "λιμανι", "καραβι", "ηλιος"]


def _fasttext_corpus():
    rng = np.random.default_rng(0)
    corpus = []
    for _ in range(400):
        corpus.append(list(rng.choice(STEMS, 2)) + ["εκλογες", "σημερα"])
        corpus.append(list(rng.choice(OTHER, 3)) + ["καλοκαιρι"])
    return corpus


FT = VectorConfig(kind="fasttext", vector_size=24, min_count=1, epochs=5, window=3)


def _cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_fasttext_gives_an_unseen_inflected_word_a_vector_close_to_its_stems(tmp_path):
    wv = train_vectors(_fasttext_corpus(), FT, tmp_path)
    assert "ψηφιζατε" not in wv.vocab and wv.ngrams is not None
    unseen = wv.ngrams.vector("ψηφιζατε")  # a form the corpus never has
    assert unseen is not None and np.abs(unseen).sum() > 0
    index = wv.index()
    stem = wv.vectors[index["ψηφιζετε"]]
    unrelated = [wv.vectors[index[w]] for w in OTHER]
    assert _cosine(unseen, stem) > max(_cosine(unseen, u) for u in unrelated)
    assert _cosine(unseen, stem) > 0.5
    # the kept buckets are exactly those of the vocabulary's n-grams, the only ones FastText trains
    from trainables.vectorize import ngram_buckets

    g = wv.ngrams
    np.testing.assert_array_equal(g.ids, ngram_buckets(wv.vocab, g.min_n, g.max_n, g.buckets))
    assert wv.ngrams.vector("qqq") is None  # no n-gram in common with the corpus: unknown


def test_fasttext_vectors_are_cached_with_their_ngrams_under_their_own_key(tmp_path):
    a = train_vectors(_fasttext_corpus(), FT, tmp_path)
    files = list(tmp_path.glob("fasttext-*.npz"))
    assert len(files) == 1
    b = train_vectors(_fasttext_corpus(), FT, tmp_path)  # from the cache
    assert a.vocab == b.vocab and np.array_equal(a.vectors, b.vectors)
    np.testing.assert_array_equal(a.ngrams.ids, b.ngrams.ids)
    np.testing.assert_array_equal(a.ngrams.vectors, b.ngrams.vectors)
    train_vectors(_fasttext_corpus(), replace(FT, max_n=5), tmp_path)  # another n-gram range
    train_vectors(_fasttext_corpus(), replace(FT, kind="word2vec"), tmp_path)
    assert len(list(tmp_path.glob("fasttext-*.npz"))) == 2 and len(list(tmp_path.glob("word2vec-*.npz"))) == 1


def test_extended_gives_rows_to_ngram_words_only_and_encodings_use_them(tmp_path):
    wv = train_vectors(_fasttext_corpus(), FT, tmp_path)
    tokens = [["ψηφιζατε", "qqq", "εκλογες"]]
    ext = wv.extended(tokens)
    assert ext.vocab[: len(wv.vocab)] == wv.vocab and ext.vocab[len(wv.vocab) :] == ("ψηφιζατε",)
    np.testing.assert_array_equal(ext.vectors[-1], wv.ngrams.vector("ψηφιζατε"))
    ids, _ = encode_sequence(tokens, ext, max_len=4)
    assert ids[0].tolist() == [len(wv.vocab) + 2, OOV, wv.index()["εκλογες"] + 2, PAD]
    mean = encode_mean(tokens, wv)  # the mean encoding applies the same rule by itself
    np.testing.assert_allclose(mean[0], (ext.vectors[-1] + wv.vectors[wv.index()["εκλογες"]]) / 2, rtol=1e-6)
    w2v = train_vectors(_fasttext_corpus(), VectorConfig(vector_size=8, min_count=1, epochs=1), tmp_path)
    assert w2v.extended(tokens) is w2v  # Word2Vec has no n-gram vectors: unseen words stay unknown


def test_prepare_with_fasttext_gives_held_out_words_their_ngram_rows(greek_slice, tmp_path):
    train, valid = greek_slice
    vectors = VectorConfig(kind="fasttext", vector_size=8, min_count=2, epochs=2, max_len=64)
    d = prepare(train, valid, (), vectors=vectors, cache_dir=tmp_path)
    plain = prepare(train, valid, (), vectors=VectorConfig(vector_size=8, min_count=2, epochs=2), cache_dir=tmp_path)
    assert (d.x_valid == OOV).sum() < (plain.x_valid == OOV).sum() / 5  # most unseen words now have vectors
    assert d.embeddings.shape[0] > plain.embeddings.shape[0]
