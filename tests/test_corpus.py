"""Unlabelled text from several files (CSV and .txt), cleaned once into the token cache and streamed."""

import os
import pickle

import numpy as np
import pytest

from study.config import build_config
from trainables.corpus import corpus_key, file_fingerprint, token_corpus
from trainables.data import DataError, DataSpec
from trainables.data_settings import DataSettings
from trainables.inputs import load_dataset
from trainables.preprocess import CleanConfig, clean_corpus
from trainables.vectorize import VectorConfig, train_vectors

SPEC = DataSpec(text_column="Text", party_column="Party")


def _files(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("Text,Party\nΚαλή μέρα στην Ελλάδα,ND\nΚακή ψήφος σήμερα,SYRIZA\n   ,ND\n", encoding="utf-8")
    b = tmp_path / "b.txt"
    b.write_bytes("\ufeffΗ θάλασσα είναι ήσυχη\r\n\nΟ ουρανός σήμερα\n".encode())
    c = tmp_path / "c.csv"  # another source: its own text column, no party column
    c.write_text("id,body\n1,Βουνό και ποτάμι\n2,Λιμάνι και καράβι\n", encoding="utf-8")
    return a, b, c


def test_several_files_are_cleaned_into_one_streamed_corpus(tmp_path):
    a, b, _ = _files(tmp_path)
    corpus = token_corpus([a, b], SPEC, CleanConfig(), tmp_path / "cache")
    expected = clean_corpus(
        ["ND Καλή μέρα στην Ελλάδα", "SYRIZA Κακή ψήφος σήμερα", "Η θάλασσα είναι ήσυχη", "Ο ουρανός σήμερα"]
    )
    assert list(corpus) == [t for t in expected if t]
    assert corpus.n_texts == 4 and corpus.n_tokens == sum(map(len, expected))  # the empty CSV text is dropped
    assert not isinstance(corpus, list | tuple)
    assert list(corpus) == list(corpus)  # restartable: every pass reads it afresh
    assert iter(corpus) is not iter(corpus)
    assert isinstance(corpus.data, np.memmap)  # read from the cache file, not held in memory
    copy = pickle.loads(pickle.dumps(corpus))  # as Ray ships it: the bytes, not the path
    assert not isinstance(copy.data, np.memmap) and list(copy) == list(corpus)


def test_a_corpus_is_streamed_in_blocks_across_line_ends(tmp_path, monkeypatch):
    import trainables.corpus as corpus_module

    a, b, _ = _files(tmp_path)
    corpus = token_corpus([a, b], SPEC, CleanConfig(), None)
    whole = list(corpus)
    monkeypatch.setattr(corpus_module, "CHUNK_BYTES", 7)  # blocks that end inside words and lines
    assert list(corpus) == whole


def test_the_token_file_is_reused_and_rebuilt_when_one_file_changes(tmp_path):
    a, b, _ = _files(tmp_path)
    cache = tmp_path / "cache"
    first = token_corpus([a, b], SPEC, CleanConfig(), cache)
    token_file = cache / "corpus" / f"{first.key}.tokens"
    mtime = token_file.stat().st_mtime_ns
    again = token_corpus([a, b], SPEC, CleanConfig(), cache)
    assert again.key == first.key and token_file.stat().st_mtime_ns == mtime  # not rewritten
    before = file_fingerprint(b)
    b.write_text(b.read_text(encoding="utf-8") + "Νέο κείμενο εδώ\n", encoding="utf-8")
    assert file_fingerprint(b) != before
    changed = token_corpus([a, b], SPEC, CleanConfig(), cache)
    assert changed.key != first.key and changed.n_texts == first.n_texts + 1
    # the vectors' cache key follows the corpus key
    from trainables.vectorize import corpus_fingerprint

    cfg = VectorConfig(vector_size=8)
    assert corpus_fingerprint([["a"]], cfg, first) != corpus_fingerprint([["a"]], cfg, changed)
    # so does a change of cleaning or of columns
    assert corpus_key([a, b], SPEC, CleanConfig(remove_stopwords=False)) != changed.key
    assert corpus_key([a, b], DataSpec(text_column="Text", party_column=""), CleanConfig()) != changed.key


def test_word2vec_streams_the_corpus(tmp_path):
    a, b, c = _files(tmp_path)
    corpus = token_corpus([b, c], DataSpec(text_column="body", party_column=""), CleanConfig(), tmp_path)
    wv = train_vectors([["καλη", "μερα"]], VectorConfig(vector_size=8, min_count=1, epochs=2), tmp_path, corpus)
    assert {"θαλασσα", "βουνο", "λιμανι", "καλη"} <= set(wv.vocab)


def test_unlabelled_files_and_their_text_column_from_the_settings(tmp_path):
    a, b, c = _files(tmp_path)
    train = tmp_path / "train.csv"
    rows = "".join(f"κείμενο{chr(0x3B1 + i)} καλό,ND,{['NEGATIVE', 'NEUTRAL', 'POSITIVE'][i % 3]}\n" for i in range(30))
    train.write_text("Text,Party,Sentiment\n" + rows, encoding="utf-8")
    flags = {"train": str(train), "unlabelled": f"{b},{c}", "unlabelled_text_column": "body"}
    settings = build_config(flags, None, DataSettings)
    assert settings.unlabelled == (str(b), str(c))
    ds = load_dataset(settings, tmp_path / "cache")
    assert ds.unlabelled.n_texts == 4 and ds.unlabelled_paths == (str(b), str(c))
    toml = tmp_path / "s.toml"
    toml.write_text(f'train = "{train}"\nunlabelled = ["{a}", "{b}"]\n', encoding="utf-8")
    from_file = build_config({}, str(toml), DataSettings)
    assert from_file.unlabelled == (str(a), str(b))


@pytest.mark.parametrize(
    ("content", "column", "message"),
    [
        (b"id,body\n1,x\n", "Text", "has no column 'Text'.*`--unlabelled-text-column`"),
        (b"Text,n\n  ,1\n,2\n", "Text", "every text in column 'Text' is empty"),
        ("Text\nκαλή\n".encode("cp1253"), "Text", "not UTF-8"),
    ],
    ids=["no column", "only empty texts", "not utf-8"],
)
def test_a_bad_unlabelled_file_is_refused_and_leaves_no_token_file(tmp_path, content, column, message):
    path = tmp_path / "u.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        token_corpus([path], DataSpec(text_column=column, party_column=""), CleanConfig(), tmp_path / "cache")
    assert not list((tmp_path / "cache" / "corpus").glob("*.tokens"))


def test_a_bad_txt_file_and_a_missing_file_are_refused(tmp_path):
    bad = tmp_path / "u.txt"
    bad.write_bytes("καλή\n".encode() + "κακή\n".encode("cp1253"))
    with pytest.raises(DataError, match=r"u.txt is not UTF-8: .* on line 2"):
        token_corpus([bad], SPEC, CleanConfig(), tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        token_corpus([tmp_path / "missing.txt"], SPEC, CleanConfig(), tmp_path)


def test_a_large_file_is_fingerprinted_by_samples(tmp_path):
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * (5 << 20))
    before = file_fingerprint(big)
    with open(big, "r+b") as fh:  # a change inside a sampled block, same size and mtime
        fh.seek(0)
        fh.write(b"y")
    os.utime(big, ns=(before["mtime_ns"], before["mtime_ns"]))
    assert file_fingerprint(big)["sample_sha256"] != before["sample_sha256"]
