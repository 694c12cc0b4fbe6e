"""A trained classifier as a folder on disk, and applying it to raw tweets.

Here: `FinalModel` (everything a network needs to classify new tweets, in memory and picklable),
`train_final_model` (word vectors and `fit` on every labelled row for a fixed number of epochs),
`final_model_from_state` (the same from a training state, e.g. a trial's checkpoint), `save_model` /
`load_model` (the folder below) and `LoadedModel` (`predict_proba` / `predict` on raw texts).
Not here: reading CSV files (data.py), the `python -m study.predict` command (study/predict.py).

The folder, format version 4 (JSON, text, .npy/.npz and a tensor file; nothing pickled):

    model.json   format_version, classes, hparams (HParams), model (ModelConfig), cleaning (CleanConfig),
                 vectorizer (VectorConfig: the encoding `mode`, max_len, the kind of vectors and their settings),
                 texts (DataSpec: the columns and the party prefix used in training), provenance (study,
                 created_at, training rows, epochs, per-epoch training metrics, package versions, and what the
                 caller adds)
    weights.pt   the network's state_dict; torch.load(..., weights_only=True). Frozen word vectors are not in it:
                 the embedding matrix is built from vectors.npy (`vectorize.embedding_matrix`); tuned ones are.
    vocab.txt    the vocabulary, one word a line, in index order (UTF-8): the vectors' own words, then the
                 training texts' words that got n-gram vectors (FastText)
    vectors.npy  (V, D) float16 word vectors; np.load(..., allow_pickle=False)
    ngrams.npz   FastText (or a fastText .bin) only: the kept n-gram buckets (ids, (K, D) float16 vectors, min_n,
                 max_n, bucket count), so a new tweet's unseen word gets its vector by the rule training used
                 (trainables/vectorize.py). It is the biggest file: K is about 82,000 for the Greek data,
                 so 17 MB at 100 dimensions and 50 MB at 300 (34 and 99 MB as float32).

The vectors of vectors.npy and ngrams.npz are float16 (half the bytes; read back as float32): the probabilities
they give stay within `HALF_ATOL` of float32 vectors' and the labels the same (tests/test_saved_model.py, on real
tweets); vectors beyond float16's range stay float32.

`save_model` writes the files into a temporary sibling folder and renames it into place, so a reader sees the
whole old model or the whole new one. A new tweet goes through the functions training used (`compose_texts`,
`clean_corpus`, `prepare.encode`), so a saved model gives the probabilities its weights gave during training
(`train.predict_proba` batches them the same way).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import pickle
import platform
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from trainables.data import DataSpec, LabelledData, compose_texts, subset
from trainables.files import atomic_write, json_text, umask_mode, write_file, write_text
from trainables.hparams import HParams, ModelConfig
from trainables.model import RNNClassifier
from trainables.prepare import EncodedData, Unlabelled, encode, prepare_with_vectors
from trainables.preprocess import CleanConfig, clean_corpus
from trainables.train import EMBEDDING, EpochReport, build_model, fit, load_weights, predict_proba, resolve_device
from trainables.vectorize import NgramVectors, VectorConfig, WordVectors, embedding_matrix

FORMAT_VERSION = 4  # the version `save_model` writes
READABLE_VERSIONS = (4,)  # the versions `load_model` reads
HALF_ATOL = 1e-3  # float16 vectors give probabilities within this of float32 ones, and the same labels (tests)
MODEL_FOLDER = "model"  # a study's final model: results/<name>/model
CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE, VECTORS_FILE = "model.json", "weights.pt", "vocab.txt", "vectors.npy"
NGRAMS_FILE = "ngrams.npz"
PACKAGES = ("rnn-sentiment-studies", "torch", "numpy", "gensim", "pandas")
PREDICT_BATCH = 512  # rows per forward pass when predicting (batches group tweets of similar length)


class ModelError(ValueError):
    """A model folder that cannot be loaded; the message names the folder and the fix."""


@dataclass(frozen=True, eq=False)
class FinalModel:
    """A trained network and everything needed to turn a raw tweet into its input."""

    hp: HParams
    config: ModelConfig
    classes: tuple[str, ...]
    spec: DataSpec  # how training texts were composed: columns and the party prefix
    clean: CleanConfig
    vectors: VectorConfig  # the encoding, max_len and the vectors' settings
    words: WordVectors  # the vocabulary and vectors the texts were encoded with (n-gram vectors included)
    weights: dict[str, torch.Tensor]  # the network's state_dict on the CPU, embedding matrix included
    epochs: int  # epochs trained
    training_rows: int  # labelled rows trained on
    history: tuple[dict[str, Any], ...] = ()  # `fit`'s metrics of each epoch


def final_model_from_state(
    hp: HParams,
    state: dict[str, Any],
    data: EncodedData,
    words: WordVectors,
    spec: DataSpec,
    clean: CleanConfig,
    vectors: VectorConfig,
    training_rows: int,
    history: Sequence[dict[str, Any]] = (),
) -> FinalModel:
    """A FinalModel from a training state (`EpochReport.state()`, or a trial checkpoint's state.pt).

    Such a state holds the weights without the embedding matrix, which comes from `data` (with the rows that
    training changed from the state, where the word vectors were tuned).

    Args:
        hp: the hyperparameters the state was trained with.
        state: a dict with "model" (weights) and "epoch".
        data: the EncodedData the state was trained on (its embedding matrix and classes).
        words: the word vectors `data` was encoded with (`prepare_with_vectors` returns them).
        spec, clean, vectors, training_rows, history: FinalModel's fields, as `data` was made and trained.

    Raises:
        ValueError: the state's weights do not fit the network `hp` and `data` describe.
    """
    network = build_model(hp, data)
    load_weights(network, state)
    return FinalModel(
        hp=hp,
        config=network.cfg,
        classes=tuple(data.classes),
        spec=spec,
        clean=clean,
        vectors=vectors,
        words=words,
        weights={k: v.detach().cpu().clone() for k, v in network.state_dict().items()},
        epochs=int(state["epoch"]),
        training_rows=int(training_rows),
        history=tuple(history),
    )


def train_final_model(
    hp: HParams,
    labelled: LabelledData,
    unlabelled: Unlabelled | Sequence[str],
    spec: DataSpec,
    clean: CleanConfig,
    vectors: VectorConfig,
    epochs: int,
    cache_dir: Path | None = None,
) -> FinalModel:
    """Train the final model: word vectors on every labelled and unlabelled text, then `epochs` epochs of `fit`.

    Every labelled row is trained on; nothing is held out, so `fit` reports training metrics only. Pure and
    picklable in and out, so it can run as a Ray task (resources and threads come from the caller and `hp`).

    Args:
        hp: the configuration; its `max_epochs` is replaced by `epochs`.
        labelled: every labelled row, texts already composed by `spec` (as `read_labelled` returns them).
        unlabelled: extra texts (and pretrained vectors) for the word vectors only.
        spec: how `labelled`'s texts were composed; stored as the defaults for prediction.
        clean, vectors: the cleaning settings; the encoding and the word vectors' settings.
        epochs: epochs to train, e.g. the median best epoch of the configuration's CV folds.
        cache_dir: the word-vector cache; None trains the vectors afresh.

    Returns:
        The trained FinalModel, ready for `save_model`.
    """
    if epochs < 1:
        raise ValueError(f"`epochs` must be >= 1, but got {epochs}.")
    hp = replace(hp, max_epochs=epochs)
    no_rows = subset(labelled, np.zeros(0, dtype=np.int64))
    data, words = prepare_with_vectors(labelled, no_rows, unlabelled, clean, vectors, cache_dir)
    reports: list[EpochReport] = []
    history = fit(hp, data, reports.append)  # nothing changes the model after the last report
    return final_model_from_state(hp, reports[-1].state(), data, words, spec, clean, vectors, len(labelled), history)


# ---------------------------------------------------------------------------------------------------------------
# the folder


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def model_info(model: FinalModel, provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """model.json's content: the settings to rebuild and feed the network, and provenance."""
    return {
        "format_version": FORMAT_VERSION,
        "classes": list(model.classes),
        "hparams": asdict(model.hp),
        "model": asdict(model.config),
        "cleaning": asdict(model.clean),
        "vectorizer": asdict(model.vectors),
        "texts": asdict(model.spec),
        "vocabulary_size": len(model.words.vocab),
        "provenance": {
            **(provenance or {}),
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "training_rows": model.training_rows,
            "epochs": model.epochs,
            "history": list(model.history),
            "packages": {"python": platform.python_version(), **{p: _version(p) for p in PACKAGES}},
        },
    }


def save_model(folder: str | Path, model: FinalModel, provenance: dict[str, Any] | None = None) -> Path:
    """Save `model` as a model folder (module docstring), replacing an existing one as a whole; returns the folder.

    Args:
        folder: where the model goes, e.g. results/<name>/model; its parent is created when missing.
        provenance: JSON values to keep beside it, e.g. {"study": name, "trial_id": ..., "cv_macro_f1": ...}
            (numpy scalars are fine; NaN becomes null); created_at, training_rows, epochs, history and packages
            are added (and win over same-named keys).

    Raises:
        OSError: the folder cannot be written (the disk is full, no permission); an existing model stays whole.
    """
    folder = Path(folder)
    if bad := [w for w in model.words.vocab if not w or any(c in w for c in "\n\r")]:
        raise ValueError(f"vocabulary words must be non-empty and free of line breaks, but got {bad[:5]}.")
    if len(model.words.vocab) != len(model.words.vectors):
        raise ValueError(f"{len(model.words.vocab)} words but {len(model.words.vectors)} vectors; they must match.")
    info = json_text(model_info(model, provenance), indent=2)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    old = None
    try:
        os.chmod(tmp, umask_mode(folder=True))  # mkdtemp makes 0700 folders; a results folder may be shared
        write_text(tmp / CONFIG_FILE, info + "\n")
        weights = model.weights
        if model.hp.freeze_embeddings:  # the embedding matrix is vectors.npy's: built again on loading
            weights = {k: v for k, v in weights.items() if k != EMBEDDING}
        atomic_write(tmp / WEIGHTS_FILE, lambda p: torch.save(weights, p))
        write_text(tmp / VOCAB_FILE, "".join(w + "\n" for w in model.words.vocab))
        write_file(tmp / VECTORS_FILE, lambda fh: np.save(fh, _half(model.words.vectors), allow_pickle=False))
        if (g := model.words.ngrams) is not None:
            arrays = {"settings": np.array([g.min_n, g.max_n, g.buckets]), "ids": g.ids, "vectors": _half(g.vectors)}
            write_file(tmp / NGRAMS_FILE, lambda fh: np.savez(fh, **arrays))
        if folder.exists() or folder.is_symlink():
            old = folder.with_name(f".{folder.name}.old-{uuid.uuid4().hex[:8]}")
            os.rename(folder, old)
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not folder.exists():
            os.rename(old, folder)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
    return folder


def _half(vectors: np.ndarray) -> np.ndarray:
    """The vectors as float16, or as float32 where a value lies beyond float16's range (about 65,504)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if len(vectors) and np.abs(vectors).max() >= np.finfo(np.float16).max:
        return vectors
    return vectors.astype(np.float16)


def load_info(folder: str | Path) -> dict[str, Any]:
    """model.json of a model folder, checked for its format version before anything else is read.

    Raises:
        ModelError: no model folder there, an unreadable model.json, or another format version.
    """
    folder = Path(folder)
    fix = f"the folder a study saved its model in (results/<name>/{MODEL_FOLDER}) or that `save_model` wrote."
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a folder"
        raise ModelError(f"Model folder {folder} {what}; give {fix}")
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise ModelError(f"{folder} is not a model folder: it has no {CONFIG_FILE}. Give {fix}")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"Model file {path} cannot be read as JSON ({e}); save the model again.") from None
    version = info.get("format_version") if isinstance(info, dict) else None
    if version not in READABLE_VERSIONS:
        raise ModelError(
            f"Model folder {folder} has format version {version!r}, but this version of rnn-sentiment-studies "
            f"reads format version(s) {', '.join(map(str, READABLE_VERSIONS))}. Load it with the version that "
            "saved it (see provenance.packages in its model.json), or train and save the model again."
        )
    return info


def load_model(path: str | Path, device: str = "cpu") -> LoadedModel:
    """Load a model folder written by `save_model`, in evaluation mode on `device`.

    Args:
        path: the model folder, e.g. results/<name>/model.
        device: "cpu", "cuda", "cuda:N" or "auto" (CUDA when present).

    Raises:
        ModelError: the folder is missing, is not a model folder, has another format version, or is damaged.
        ValueError: `device` names a CUDA device on a machine without one.
    """
    folder = Path(path)
    info = load_info(folder)
    target = resolve_device(device)
    try:
        texts, cleaning = info["texts"], info["cleaning"]
        spec = DataSpec(**{**texts, "label_map": tuple(tuple(pair) for pair in texts.get("label_map", ()))})
        clean = CleanConfig(**{**cleaning, "stopword_languages": tuple(cleaning.get("stopword_languages", ()))})
        vocab = tuple((folder / VOCAB_FILE).read_text(encoding="utf-8").split("\n")[:-1])
        vectors = np.load(folder / VECTORS_FILE, allow_pickle=False)
        if vectors.ndim != 2 or len(vectors) != len(vocab):
            raise ValueError(f"{len(vocab)} words in {VOCAB_FILE} but vectors of shape {vectors.shape}")
        ngrams = None
        if (folder / NGRAMS_FILE).exists() or info["vectorizer"].get("kind") == "fasttext":
            with np.load(folder / NGRAMS_FILE, allow_pickle=False) as f:
                min_n, max_n, buckets = (int(v) for v in f["settings"])
                ngrams = NgramVectors(min_n, max_n, buckets, f["ids"].astype(np.int64), f["vectors"].astype(np.float32))
        config = ModelConfig(**info["model"])
        weights = torch.load(folder / WEIGHTS_FILE, weights_only=True, map_location="cpu")
        words = WordVectors(vocab, vectors.astype(np.float32, copy=False), ngrams)
        if EMBEDDING not in weights and info["vectorizer"].get("mode") == "sequence":  # frozen: vectors.npy's
            weights[EMBEDDING] = torch.from_numpy(embedding_matrix(words))
        network = RNNClassifier(config, weights.get(EMBEDDING))
        network.load_state_dict(weights)
        loaded = LoadedModel(
            network=network.to(target).eval(),
            classes=tuple(info["classes"]),
            spec=spec,
            clean=clean,
            vectors=VectorConfig(**info["vectorizer"]),
            words=words,
            hp=HParams.from_dict(info["hparams"]),
            device=target,
            info=info,
        )
    except (OSError, KeyError, TypeError, ValueError, RuntimeError, pickle.UnpicklingError) as e:
        raise ModelError(f"Model folder {folder} is damaged or incomplete ({e}); save the model again.") from None
    if len(loaded.classes) != config.num_classes:
        raise ModelError(
            f"Model folder {folder} is damaged: {len(loaded.classes)} classes in {CONFIG_FILE} but the network has "
            f"{config.num_classes} outputs; save the model again."
        )
    return loaded


class Encoded(NamedTuple):
    """Tweets as a saved network's input (`LoadedModel.encode`)."""

    x: np.ndarray  # (N, max_len) int32 ids, or (N, D) float32 mean vectors
    lengths: np.ndarray  # (N,) int64
    extra: np.ndarray | None = None  # (K, D) float32 rows of ids V + 2 .. V + 1 + K (n-gram words), or None


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A saved model, ready to classify raw tweets: `predict_proba(texts)` and `predict(texts)`.

    The steps (`compose`, `tokens`, `encode`, `forward`) are public so that a caller can time them.
    """

    network: RNNClassifier  # in evaluation mode, on `device`
    classes: tuple[str, ...]
    spec: DataSpec  # how training texts were composed: the defaults for prediction
    clean: CleanConfig
    vectors: VectorConfig
    words: WordVectors
    hp: HParams
    device: torch.device
    info: dict[str, Any]  # model.json as read, provenance included

    @property
    def party_prefix(self) -> bool:
        """Whether training texts began with their party (so a prediction's texts should too)."""
        return bool(self.spec.prepend_party and self.spec.party_column)

    def compose(self, texts: Sequence[str], parties: Sequence[str] | None = None) -> list[str]:
        """The texts as training composed them: each party before its text when the model was trained so.

        `parties` is ignored for a model trained without the party prefix.
        """
        if parties is None or not self.party_prefix:
            return list(texts)
        if len(parties) != len(texts):
            raise ValueError(f"`parties` must have one party per text ({len(texts)}), but got {len(parties)}.")
        return compose_texts(texts, [p.strip() for p in parties])

    def tokens(self, texts: Sequence[str]) -> list[list[str]]:
        """Composed texts cleaned and tokenised as in training."""
        return clean_corpus(texts, self.clean)

    def encode(self, tokens: Sequence[Sequence[str]]) -> Encoded:
        """Tokens as the network's input: x (N, max_len) ids or (N, D) mean vectors, lengths (N,), and the
        embedding rows of words outside the vocabulary that have n-gram vectors (ids from V + 2 on)."""
        if self.vectors.mode == "mean" or self.words.ngrams is None:
            return Encoded(*encode(tokens, self.words, self.vectors))
        words = self.words.extended(tokens)  # the vocabulary, then this call's n-gram words
        x, lengths = encode(tokens, words, self.vectors)
        return Encoded(x, lengths, words.vectors[len(self.words.vocab) :])

    def forward(
        self, x: np.ndarray, lengths: np.ndarray, batch_size: int = PREDICT_BATCH, extra: np.ndarray | None = None
    ) -> np.ndarray:
        """Class probabilities (N, C) float32 of encoded rows, in the rows' order (`extra`: `Encoded.extra`)."""
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, but got {batch_size}.")
        trim = self.vectors.mode == "sequence"
        rows = torch.from_numpy(extra) if extra is not None else None
        return predict_proba(
            self.network, torch.from_numpy(x), torch.from_numpy(lengths), batch_size, trim, self.device, rows
        )

    def predict_proba(
        self, texts: Sequence[str], parties: Sequence[str] | None = None, batch_size: int = PREDICT_BATCH
    ) -> np.ndarray:
        """Class probabilities of raw tweets: cleaned, party-prefixed and encoded exactly as in training.

        Args:
            texts: raw tweet texts. An empty text is classified too (as a tweet with no known word).
            parties: one party per text, put before it as in training (when the model was trained with the
                party prefix; ignored otherwise). None: the texts are used as given.
            batch_size: rows per forward pass.

        Returns:
            (N, C) float32 probabilities, columns in `classes` order.
        """
        encoded = self.encode(self.tokens(self.compose(texts, parties)))
        return self.forward(encoded.x, encoded.lengths, batch_size, encoded.extra)

    def predict(
        self, texts: Sequence[str], parties: Sequence[str] | None = None, batch_size: int = PREDICT_BATCH
    ) -> list[str]:
        """The most probable class of each raw tweet (see `predict_proba`)."""
        probs = self.predict_proba(texts, parties, batch_size)
        return [self.classes[i] for i in probs.argmax(axis=1).tolist()]
