"""From labelled tweets to EncodedData: clean, train Word2Vec on texts only, encode both splits.

This runs once in the driver; trials receive the resulting numpy arrays through Ray's object store.
Reading CSV files lives in data.py, cleaning in preprocess.py, Word2Vec and encodings in vectorize.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from trainables.data import LabelledData
from trainables.preprocess import CleanConfig, clean_corpus
from trainables.vectorize import (
    VectorConfig,
    WordVectors,
    corpus_fingerprint,
    embedding_matrix,
    encode_mean,
    encode_sequence,
    train_word2vec,
)


@dataclass(frozen=True, eq=False)
class EncodedData:
    mode: str  # "mean" | "sequence"
    x_train: np.ndarray  # sequence: (N, T) int32 token ids; mean: (N, D) float32
    len_train: np.ndarray  # (N,) int64 real lengths (T for every row in `mean` mode)
    y_train: np.ndarray  # (N,) int64 class indices
    x_valid: np.ndarray  # (M, T) or (M, D)
    len_valid: np.ndarray  # (M,)
    y_valid: np.ndarray  # (M,)
    embeddings: np.ndarray | None  # (V + 2, D) float32 in `sequence` mode, else None
    classes: tuple[str, ...]
    fingerprint: str  # hash of texts, labels and settings

    @property
    def input_size(self) -> int:
        return self.embeddings.shape[1] if self.embeddings is not None else 1

    @property
    def nbytes(self) -> int:
        arrays = [self.x_train, self.len_train, self.y_train, self.x_valid, self.len_valid, self.y_valid]
        return sum(a.nbytes for a in arrays) + (self.embeddings.nbytes if self.embeddings is not None else 0)


def encode(tokens: Sequence[Sequence[str]], wv: WordVectors, vectors: VectorConfig) -> tuple[np.ndarray, np.ndarray]:
    """The model's input for tokenised texts, in `vectors.mode`; training and prediction both encode here.

    Returns:
        x: (N, max_len) int32 token ids (`sequence`) or (N, D) float32 mean vectors (`mean`); lengths: (N,) int64
        real lengths (D for every row in `mean` mode).
    """
    if vectors.mode == "mean":
        x = encode_mean(tokens, wv)
        return x, np.full(len(x), x.shape[1], dtype=np.int64)
    return encode_sequence(tokens, wv, vectors.max_len)


def prepare(
    train: LabelledData,
    valid: LabelledData,
    unlabelled: Sequence[str] = (),
    clean: CleanConfig = CleanConfig(),
    vectors: VectorConfig = VectorConfig(),
    cache_dir: Path | None = None,
) -> EncodedData:
    """Clean both splits, train Word2Vec on the training and unlabelled texts, and encode.

    The validation texts and every label stay out of Word2Vec.
    """
    return prepare_with_vectors(train, valid, unlabelled, clean, vectors, cache_dir)[0]


def prepare_with_vectors(
    train: LabelledData,
    valid: LabelledData,
    unlabelled: Sequence[str] = (),
    clean: CleanConfig = CleanConfig(),
    vectors: VectorConfig = VectorConfig(),
    cache_dir: Path | None = None,
) -> tuple[EncodedData, WordVectors]:
    """`prepare`, also returning the Word2Vec vectors that encoded the texts (a saved model needs them).

    `valid` may have no rows (a final model trained on every labelled row).
    """
    if train.classes != valid.classes:
        raise ValueError(f"training classes {train.classes} differ from validation classes {valid.classes}.")
    tok_train = clean_corpus(train.texts, clean)
    tok_valid = clean_corpus(valid.texts, clean)
    tok_extra = clean_corpus(list(unlabelled), clean) if len(unlabelled) else []
    wv = train_word2vec(tok_train + tok_extra, vectors, cache_dir)
    x_tr, len_tr = encode(tok_train, wv, vectors)
    x_va, len_va = encode(tok_valid, wv, vectors)
    emb = embedding_matrix(wv) if vectors.mode == "sequence" else None
    h = hashlib.sha256()
    h.update(corpus_fingerprint(tok_train + tok_extra, vectors).encode())
    h.update(corpus_fingerprint(tok_valid, vectors).encode())
    h.update(repr((asdict(clean), asdict(vectors), train.classes)).encode())
    h.update(train.labels.tobytes() + valid.labels.tobytes())
    data = EncodedData(
        mode=vectors.mode,
        x_train=x_tr,
        len_train=len_tr,
        y_train=train.labels.astype(np.int64),
        x_valid=x_va,
        len_valid=len_va,
        y_valid=valid.labels.astype(np.int64),
        embeddings=emb,
        classes=train.classes,
        fingerprint=h.hexdigest()[:20],
    )
    return data, wv
