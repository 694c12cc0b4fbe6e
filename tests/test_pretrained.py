"""Pretrained vectors from files made here (nothing is downloaded): every format, coverage, refusals."""

from pathlib import Path

import numpy as np
import pytest

from study.run import main as run_main
from trainables.data_settings import DataSettings
from trainables.inputs import load_dataset
from trainables.pretrained import VectorsError, coverage, read_vectors_file, restrict
from trainables.vectorize import WordVectors

WORDS = ["καλη", "μερα", "ελλαδα", "ψηφος", "κακη", "σημερα", "εκλογες", "θαλασσα"]


def _keyed(dim: int = 8):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=dim)
    kv.add_vectors(WORDS, np.random.default_rng(0).normal(size=(len(WORDS), dim)).astype(np.float32))
    return kv


def _fasttext_bin(path: Path, dim: int = 8) -> None:
    from gensim.models import FastText
    from gensim.models.fasttext import save_facebook_model

    corpus = [WORDS[:4], WORDS[4:], ["ψηφιζουμε", "ψηφιζετε", "σημερα"]] * 30
    model = FastText(corpus, vector_size=dim, min_count=1, epochs=3, workers=1, seed=0, bucket=1000)
    save_facebook_model(model, str(path))


def _write(fmt: str, folder: Path, dim: int = 8) -> Path:
    if fmt == "fasttext-bin":
        path = folder / "model.bin"
        _fasttext_bin(path, dim)
        return path
    kv = _keyed(dim)
    if fmt == "gensim-kv":
        path = folder / "vectors.kv"
        kv.save(str(path), separately=["vectors"])  # as gensim keeps a large matrix: a .npy beside the file
        return path
    path = folder / {"word2vec-text": "vectors.txt", "fasttext-vec": "wiki.vec", "word2vec-binary": "vectors.bin"}[fmt]
    kv.save_word2vec_format(str(path), binary=fmt == "word2vec-binary")
    return path


@pytest.mark.parametrize("fmt", ["word2vec-text", "word2vec-binary", "fasttext-vec", "fasttext-bin", "gensim-kv"])
def test_every_format_loads_with_its_vectors(tmp_path, fmt):
    path = _write(fmt, tmp_path)
    read = read_vectors_file(path)
    assert read.format == ("word2vec-text" if fmt == "fasttext-vec" else fmt)
    assert read.dimension == 8
    table = restrict(read, ["καλη", "μερα", "αγνωστη"])
    assert set(table.vocab) == {"καλη", "μερα"} and table.vectors.shape == (2, 8)
    assert table.vectors.dtype == np.float32
    if fmt == "fasttext-bin":
        assert table.ngrams is not None and table.ngrams.vector("ψηφιζατε") is not None  # n-grams of a new word
    else:
        assert table.ngrams is None
        expected = _keyed()
        for w, v in zip(table.vocab, table.vectors, strict=True):
            np.testing.assert_allclose(v, expected[w], rtol=1e-6)
    if fmt == "gensim-kv":
        assert isinstance(read.keyed.vectors, np.memmap)  # memory-mapped, not read whole


def test_coverage_counts_tokens_and_types():
    table = WordVectors(("καλη", "μερα"), np.ones((2, 4), np.float32))
    tokens = [["καλη", "μερα", "καλη"], ["αγνωστη", "καλη"]]
    c = coverage(table, tokens)
    assert c["tokens"] == 5 and c["types"] == 3
    assert c["tokens_found"] == pytest.approx(4 / 5) and c["types_found"] == pytest.approx(2 / 3)
    assert c["tokens_with_ngrams"] == c["tokens_found"]  # no n-gram vectors


def _labelled(tmp_path: Path) -> Path:
    path = tmp_path / "train.csv"
    texts, labels = ["Καλή μέρα", "Κακή ψήφος", "Εκλογές σήμερα άγνωστη"], ["NEGATIVE", "NEUTRAL", "POSITIVE"]
    # each text 10 times, each time with its first word repeated once more: the same words, distinct texts (identical
    # texts would stay on one side of the split)
    rows = "".join(
        f"{texts[i % 3]}{(' ' + texts[i % 3].split()[0]) * (i // 3)},ND,{labels[i % 3]}\n" for i in range(30)
    )
    path.write_text("Text,Party,Sentiment\n" + rows, encoding="utf-8")
    return path


def test_a_study_reads_the_file_once_keeps_its_words_and_measures_coverage(tmp_path):
    vectors = _write("word2vec-text", tmp_path)
    settings = DataSettings.from_settings(train=str(_labelled(tmp_path)), vectors=str(vectors), prepend_party=False)
    ds = load_dataset(settings, tmp_path / "cache")
    cover = ds.vectors["coverage"]
    # training texts: "καλη μερα", "κακη ψηφος", "εκλογες σημερα αγνωστη" (stop words kept: none here)
    assert cover["types"] == 7 and cover["types_found"] == pytest.approx(6 / 7)
    assert ds.vectors["dimension"] == 8 and ds.vectors["words_kept"] == 6 and ds.vectors["words_in_file"] == 8
    assert set(ds.unlabelled.pretrained.vocab) == {"καλη", "μερα", "κακη", "ψηφος", "εκλογες", "σημερα"}
    assert settings.vector_config.vector_size == 0  # the file's dimension

    from trainables.prepare import prepare

    data = prepare(ds.train, ds.valid, ds.unlabelled, settings.clean_config(), settings.vector_config)
    assert data.embeddings.shape == (6 + 2, 8)


def _bad(tmp_path: Path, kind: str) -> Path:
    text = _write("word2vec-text", tmp_path)
    lines = text.read_text(encoding="utf-8").splitlines()
    if kind == "header says more":
        text.write_text("\n".join(["12 8", *lines[1:]]) + "\n", encoding="utf-8")
    elif kind == "header says fewer":
        text.write_text("\n".join(["5 8", *lines[1:]]) + "\n", encoding="utf-8")
    elif kind == "a short row":
        text.write_text("\n".join([*lines[:3], " ".join(lines[3].split()[:5]), *lines[4:]]) + "\n", encoding="utf-8")
    elif kind == "not numbers":
        text.write_text("\n".join([*lines[:2], "καλη " + " ".join(["x"] * 8), *lines[3:]]) + "\n", encoding="utf-8")
    elif kind == "truncated binary":
        binary = _write("word2vec-binary", tmp_path)
        binary.write_bytes(binary.read_bytes()[:-40])
        return binary
    elif kind == "truncated fasttext":
        ft = _write("fasttext-bin", tmp_path)
        ft.write_bytes(ft.read_bytes()[:1000])
        return ft
    elif kind == "empty":
        text.write_bytes(b"")
    return text


BAD = {
    "header says more": "cannot be read as word2vec-text",
    "header says fewer": "header says 5 words, but the file has 8 vector lines",
    "a short row": "cannot be read as word2vec-text",
    "not numbers": "cannot be read as word2vec-text",
    "truncated binary": "cannot be read as word2vec-binary",
    "truncated fasttext": "cannot be read as fasttext-bin",
    "empty": "is empty",
}


@pytest.mark.parametrize("kind", list(BAD))
def test_a_bad_vectors_file_is_refused_before_ray_with_exit_2_and_nothing_written(tmp_path, capsys, kind):
    vectors = _bad(tmp_path, kind)
    results = tmp_path / "results"
    args = ["--train", str(_labelled(tmp_path)), "--vectors", str(vectors), "--results-dir", str(results)]
    assert run_main(args) == 2
    assert BAD[kind] in capsys.readouterr().err.replace("\n", "")
    assert not results.exists()
    with pytest.raises(VectorsError):
        read_vectors_file(vectors)


def test_a_vector_size_that_disagrees_with_the_file_and_a_space_that_trains_vectors_are_refused(tmp_path, capsys):
    vectors = _write("word2vec-text", tmp_path)
    base = ["--train", str(_labelled(tmp_path)), "--vectors", str(vectors), "--results-dir", str(tmp_path / "r")]
    assert run_main([*base, "--vector-size", "16"]) == 2
    assert "`vector_size` is 16, but the vectors in" in capsys.readouterr().err.replace("\n", "")
    assert run_main([*base, "--space", "wide"]) == 2
    assert "searches the settings of trained vectors" in capsys.readouterr().err.replace("\n", "")
    assert not (tmp_path / "r").exists()
