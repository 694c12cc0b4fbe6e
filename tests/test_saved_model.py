"""Tests for trainables/saved_model.py on real Greek tweets: a model saved from a training state and reloaded in a
fresh process gives the validation probabilities `fit` reported for the same weights, in both vectorizer modes;
the final model trains on every labelled row; the folder's format, versions and atomic replacement."""

from __future__ import annotations

import copy
import itertools
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from trainables.data import DataSpec, read_labelled, subset
from trainables.hparams import HParams
from trainables.prepare import prepare_with_vectors
from trainables.preprocess import CleanConfig, clean_corpus
from trainables.saved_model import (
    CONFIG_FILE,
    FORMAT_VERSION,
    HALF_ATOL,
    VECTORS_FILE,
    VOCAB_FILE,
    WEIGHTS_FILE,
    ModelError,
    final_model_from_state,
    load_model,
    save_model,
    train_final_model,
)
from trainables.train import EMBEDDING, fit
from trainables.vectorize import VectorConfig, embedding_matrix

REPO = Path(__file__).resolve().parents[1]
GREEK = "greek-election-tweets-ys19-2023/valid_set.csv"

# sequence: ids, a stacked bidirectional LSTM with attention; mean: the mean vector as steps, a GRU without it
SETTINGS = {
    "sequence": (
        HParams(cell="lstm", hidden_size=8, num_layers=2, attention=True, batch_size=64, lr=3e-3, num_threads=1),
        VectorConfig(mode="sequence", vector_size=16, epochs=5, max_len=24),
    ),
    "mean": (
        HParams(cell="gru", hidden_size=8, num_layers=1, attention=False, batch_size=64, lr=3e-3, num_threads=1),
        VectorConfig(mode="mean", vector_size=16, epochs=5),
    ),
    "fasttext": (
        HParams(
            cell="gru", hidden_size=8, num_layers=1, batch_size=64, lr=3e-3, num_threads=1, freeze_embeddings=False
        ),
        VectorConfig(mode="sequence", kind="fasttext", vector_size=16, epochs=3, max_len=24),
    ),
}


@pytest.fixture(scope="module")
def greek(shared_data_dir):
    """The real file read raw (for texts and parties as a user has them) and as labelled data; 600 seeded rows."""
    path = shared_data_dir / GREEK
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    data = read_labelled(path)
    assert len(data) == len(frame)  # nothing dropped: row i of the file is row i of `data`
    rows = np.random.default_rng(0).permutation(len(data))[:600]
    return frame, data, rows[:450], rows[450:]


PREDICT_ELSEWHERE = """
import json, sys
import numpy as np
from trainables.saved_model import load_model
for line in sys.stdin:  # a request a line: [model folder, rows.json, out.npy]
    folder, rows, out = json.loads(line)
    rows = json.loads(open(rows, encoding="utf-8").read())
    np.save(out, load_model(folder).predict_proba(rows["texts"], rows["parties"]))
    print(out, flush=True)
"""


@pytest.fixture(scope="module")
def predict_elsewhere(tmp_path_factory):
    """`load_model(folder).predict_proba(texts, parties)` in another Python process, started once for the module
    (it shares nothing with this one; each call loads its folder afresh there)."""
    log = tmp_path_factory.mktemp("elsewhere") / "stderr.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", PREDICT_ELSEWHERE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
        )

    def predict(folder: Path, texts: list[str], parties: list[str], tmp: Path) -> np.ndarray:
        rows, out = tmp / "rows.json", tmp / "probs.npy"
        rows.write_text(json.dumps({"texts": texts, "parties": parties}, ensure_ascii=False), encoding="utf-8")
        proc.stdin.write(json.dumps([str(folder), str(rows), str(out)]) + "\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == str(out), log.read_text()[-3000:]
        return np.load(out)

    yield predict
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]


@pytest.mark.parametrize("mode", ["sequence", "mean", "fasttext"])
def test_saved_model_reloaded_elsewhere_gives_the_validation_probabilities_of_its_weights(
    greek, predict_elsewhere, mode, tmp_path
):
    frame, data, train_rows, valid_rows = greek
    hp, vectors = SETTINGS[mode]
    train, valid = subset(data, train_rows[:200]), subset(data, valid_rows)  # as `saved`: 200 rows train it
    encoded, words = prepare_with_vectors(train, valid, (), CleanConfig(), vectors)
    at_epoch: dict[int, tuple] = {}
    fit(replace(hp, max_epochs=3), encoded, lambda r: at_epoch.update({r.metrics["epoch"]: (r.val_probs, r.state())}))
    val_probs, state = at_epoch[2]  # not the last epoch: the saved weights must be that epoch's
    model = final_model_from_state(hp, state, encoded, words, DataSpec(), CleanConfig(), vectors, len(train))
    folder = save_model(tmp_path / "model", model, {"study": "test"})

    raw = frame.iloc[valid_rows]
    texts, parties = raw["Text"].tolist(), raw["Party"].tolist()
    assert load_model(folder).compose(texts, parties) == list(valid.texts)  # the party prefix as in training
    probs = predict_elsewhere(folder, texts, parties, tmp_path)

    assert probs.shape == (len(valid), 3)
    # the saved float16 vectors: as the `mean` input, or as the frozen embedding matrix
    np.testing.assert_allclose(probs, val_probs, rtol=0, atol=HALF_ATOL)
    assert not np.allclose(probs, at_epoch[3][0], atol=1e-4)  # the test tells epochs apart


@pytest.fixture(scope="module")
def saved(greek, tmp_path_factory) -> Path:
    """A small sequence-mode model saved from one epoch of training."""
    _, data, train_rows, valid_rows = greek
    hp, vectors = SETTINGS["sequence"]
    train, valid = subset(data, train_rows[:200]), subset(data, valid_rows)
    encoded, words = prepare_with_vectors(train, valid, (), CleanConfig(), vectors)
    states = []
    fit(replace(hp, max_epochs=1), encoded, lambda r: states.append(r.state()))
    model = final_model_from_state(hp, states[0], encoded, words, DataSpec(), CleanConfig(), vectors, len(train))
    return save_model(tmp_path_factory.mktemp("saved") / "model", model, {"study": "fixture"})


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "copy"))


def test_the_folder_holds_json_text_npy_and_weights_only(saved):
    assert sorted(p.name for p in saved.iterdir()) == sorted([CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE, VECTORS_FILE])
    info = json.loads((saved / CONFIG_FILE).read_text(encoding="utf-8"))
    assert info["format_version"] == FORMAT_VERSION
    assert info["classes"] == ["NEGATIVE", "NEUTRAL", "POSITIVE"]
    assert info["vectorizer"]["mode"] == "sequence" and info["vectorizer"]["max_len"] == 24
    assert info["texts"]["party_column"] == "Party" and info["texts"]["prepend_party"] is True
    assert info["hparams"]["cell"] == "lstm" and info["model"]["input_size"] == 16
    provenance = info["provenance"]
    assert provenance["study"] == "fixture" and provenance["training_rows"] == 200 and provenance["epochs"] == 1
    assert provenance["packages"]["torch"] and provenance["created_at"].endswith("+00:00")
    vocab = (saved / VOCAB_FILE).read_text(encoding="utf-8").split("\n")[:-1]
    assert np.load(saved / VECTORS_FILE, allow_pickle=False).shape == (len(vocab), 16)
    model = load_model(saved)
    assert EMBEDDING not in torch.load(saved / WEIGHTS_FILE, weights_only=True)  # frozen: vectors.npy's
    assert model.network.embedding.weight.shape == (len(vocab) + 2, 16)


def test_another_format_version_is_refused_with_the_readable_ones(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    info = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    (folder / CONFIG_FILE).write_text(json.dumps({**info, "format_version": 99}), encoding="utf-8")
    with pytest.raises(ModelError, match=r"format version 99, .* reads format version\(s\) 4\b"):
        load_model(folder)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / WEIGHTS_FILE).unlink(), "damaged or incomplete"),
        (lambda f: (f / CONFIG_FILE).unlink(), "is not a model folder: it has no model.json"),
        (lambda f: (f / CONFIG_FILE).write_text("{not json"), "cannot be read as JSON"),
        (lambda f: (f / VOCAB_FILE).write_text("one\nword\n"), "damaged or incomplete"),
        (lambda f: shutil.rmtree(f), "does not exist"),
    ],
    ids=["no weights", "no model.json", "bad json", "short vocabulary", "no folder"],
)
def test_a_damaged_folder_is_refused_with_a_message(saved, tmp_path, damage, message):
    folder = _copy(saved, tmp_path)
    damage(folder)
    with pytest.raises(ModelError, match=message):
        load_model(folder)


def test_saving_again_replaces_the_folder_as_a_whole_and_leaves_nothing_else(saved, tmp_path):
    model_dir = _copy(saved, tmp_path).rename(tmp_path / "model")
    (model_dir / "stale.txt").write_text("from an older model")
    loaded = load_model(model_dir)
    again = final_model_from_state(
        loaded.hp,
        {"model": loaded.network.state_dict(), "epoch": 1},
        _encoded_like(loaded),
        loaded.words,
        loaded.spec,
        loaded.clean,
        loaded.vectors,
        7,
    )
    save_model(model_dir, again, {"study": "second", "cv_std": float("nan"), "cv_mean": np.float32(0.5)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temporary or old folder left
    assert not (model_dir / "stale.txt").exists()
    info = json.loads((model_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    assert info["provenance"]["study"] == "second" and info["provenance"]["training_rows"] == 7
    assert info["provenance"]["cv_std"] is None and info["provenance"]["cv_mean"] == 0.5  # strict JSON
    texts = ["Ωραία μέρα για εκλογές", "Ντροπή σας"]
    np.testing.assert_array_equal(load_model(model_dir).predict_proba(texts), loaded.predict_proba(texts))


def _encoded_like(loaded):
    """An EncodedData that carries a loaded model's embedding matrix and classes (no rows)."""
    from trainables.prepare import EncodedData

    empty = np.zeros((0, loaded.vectors.max_len), np.int32)
    no_len = np.zeros(0, np.int64)
    emb = loaded.network.embedding.weight.detach().numpy()
    return EncodedData("sequence", empty, no_len, no_len, empty, no_len, no_len, emb, loaded.classes, "loaded")


def test_final_model_trains_on_every_labelled_row_with_word2vec_on_the_unlabelled_texts(greek, tmp_path):
    frame, data, train_rows, valid_rows = greek
    labelled = subset(data, train_rows[:300])
    unlabelled = list(subset(data, valid_rows).texts)  # texts only: the labels never reach Word2Vec
    hp, _ = SETTINGS["sequence"]
    vectors = VectorConfig(mode="sequence", vector_size=16, epochs=5, min_count=1, max_len=24)
    model = train_final_model(hp, labelled, unlabelled, DataSpec(), CleanConfig(), vectors, epochs=2)

    assert model.epochs == 2 and model.training_rows == 300 and model.hp.max_epochs == 2
    assert [m["epoch"] for m in model.history] == [1, 2]
    assert not any(k.startswith("val_") for m in model.history for k in m)  # nothing held out, nothing scored
    only_unlabelled = {t for ts in clean_corpus(unlabelled) for t in ts} - {
        t for ts in clean_corpus(labelled.texts) for t in ts
    }
    assert only_unlabelled and only_unlabelled <= set(model.words.vocab)

    loaded = load_model(save_model(tmp_path / "model", model))
    raw = frame.iloc[valid_rows[:40]]
    probs = loaded.predict_proba(raw["Text"].tolist(), raw["Party"].tolist())
    assert probs.shape == (40, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    labels = loaded.predict(raw["Text"].tolist(), raw["Party"].tolist())
    assert labels == [loaded.classes[i] for i in probs.argmax(axis=1)]
    assert loaded.predict_proba(["", "   "]).shape == (2, 3)  # empty tweets are classified too


@pytest.mark.slow
def test_final_model_trains_in_a_ray_task_as_in_the_driver(greek):
    import ray

    _, data, train_rows, _ = greek
    labelled = subset(data, train_rows[:200])
    hp, vectors = SETTINGS["mean"]
    args = (hp, labelled, (), DataSpec(), CleanConfig(), vectors, 1)
    here = train_final_model(*args)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    try:
        there = ray.get(ray.remote(train_final_model).options(num_cpus=1).remote(*args))
    finally:
        if started:
            ray.shutdown()
    assert there.classes == here.classes and there.words.vocab == here.words.vocab
    for name, tensor in here.weights.items():
        np.testing.assert_array_equal(there.weights[name].numpy(), tensor.numpy(), err_msg=name)


def test_a_fasttext_model_gives_a_new_tweets_unseen_words_their_ngram_vectors(greek, predict_elsewhere, tmp_path):
    from trainables.saved_model import NGRAMS_FILE

    _, data, train_rows, _ = greek
    hp, vectors = SETTINGS["fasttext"]
    model = train_final_model(hp, subset(data, train_rows[:200]), (), DataSpec(), CleanConfig(), vectors, epochs=1)
    folder = save_model(tmp_path / "model", model)
    assert (folder / NGRAMS_FILE).is_file()
    loaded = load_model(folder)
    vocab = set(loaded.words.vocab)
    unseen = next(w for w in ("ψηφιζουμεεε", "κυβερνησαρα", "εκλογαρες") if w not in vocab)
    # a word none of whose n-grams lands in a kept bucket (the table is sized to the data: some words collide)
    pairs = ("".join(p) for p in itertools.product("qxzjvwk", repeat=2))  # few n-grams each: some miss
    junk = next(w for w in pairs if w not in vocab and loaded.words.ngrams.vector(w) is None)
    tokens = [["ψηφιζουμε", unseen, junk]]
    encoded = loaded.encode(tokens)
    size = loaded.network.embedding.weight.shape[0]
    assert encoded.x[0, 1] == size and encoded.x[0, 2] == 1  # a new row for the n-gram word; the junk is unknown
    np.testing.assert_allclose(encoded.extra[0], loaded.words.ngrams.vector(unseen), rtol=1e-6)
    with_rows = loaded.forward(encoded.x, encoded.lengths, extra=encoded.extra)
    as_unknown = loaded.forward(np.where(encoded.x >= size, 1, encoded.x), encoded.lengths)
    assert not np.allclose(with_rows, as_unknown)  # the n-gram vector reached the network
    text = f"ψηφίζουμε {unseen}"
    here = loaded.predict_proba([text], ["ND"])
    np.testing.assert_allclose(predict_elsewhere(folder, [text], ["ND"], tmp_path), here, rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode", ["sequence", "mean", "fasttext"])
def test_float16_vectors_give_the_labels_and_nearly_the_probabilities_of_float32_ones(
    greek, shared_data_dir, mode, tmp_path
):
    """On the unlabelled Greek test file, whose words the model mostly never saw (FastText: n-gram vectors)."""
    from trainables.saved_model import NGRAMS_FILE

    _, data, train_rows, _ = greek
    hp, vectors = SETTINGS[mode]
    model = train_final_model(hp, subset(data, train_rows), (), DataSpec(), CleanConfig(), vectors, epochs=3)
    folder = save_model(tmp_path / "model", model)
    half = load_model(folder)
    assert half.words.vectors.dtype == np.float32  # read back as float32
    assert np.load(folder / VECTORS_FILE).dtype == np.float16
    if mode == "fasttext":
        with np.load(folder / NGRAMS_FILE) as f:
            assert f["vectors"].dtype == np.float16
    network = copy.deepcopy(half.network)  # the same model with the float32 vectors it was trained with
    if network.embedding is not None and hp.freeze_embeddings:  # tuned vectors: saved in weights.pt as trained
        network.embedding.weight.data = torch.from_numpy(embedding_matrix(model.words))
    full = replace(half, words=model.words, network=network)
    test = pd.read_csv(shared_data_dir / "greek-election-tweets-ys19-2023/test_set.csv", dtype=str).head(3000)
    texts, parties = test["Text"].fillna("").tolist(), test["Party"].fillna("").tolist()
    p16, p32 = half.predict_proba(texts, parties), full.predict_proba(texts, parties)
    assert np.abs(p16 - p32).max() <= HALF_ATOL
    assert (p16.argmax(axis=1) == p32.argmax(axis=1)).all()
