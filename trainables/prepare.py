"""From labelled tweets to EncodedData: clean, get word vectors from texts only, encode both splits.

This runs once in the driver (or once per representation and fold, as a Ray task); trials receive the resulting
numpy arrays through Ray's object store. Reading CSV files lives in data.py, cleaning in preprocess.py, the
unlabelled corpus in corpus.py, pretrained files in pretrained.py, vectors and encodings in vectorize.py.

The word vectors learn from the training texts and the unlabelled texts, never from the validation texts or any
label. With n-gram vectors (FastText), the words of the validation texts outside the vocabulary get rows of the
embedding matrix by vectorize.py's rule, as a saved model's new tweets do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from trainables.corpus import TokenCorpus, tokens_corpus
from trainables.data import LabelledData
from trainables.preprocess import CleanConfig, clean_corpus
from trainables.vectorize import (
    VectorConfig,
    WordVectors,
    embedding_matrix,
    encode_mean,
    encode_sequence,
    train_vectors,
)


@dataclass(frozen=True, eq=False)
class Unlabelled:
    """What word vectors learn from besides the labelled training texts: unlabelled texts and pretrained vectors."""

    corpus: TokenCorpus | None = None  # the unlabelled texts, cleaned; streamed into Word2Vec / FastText
    pretrained: WordVectors | None = None  # `--vectors`: the file's rows of the study's words (vectors unused)
    pretrained_key: str = ""  # hash of the vectors file's fingerprint

    @property
    def n_texts(self) -> int:
        return self.corpus.n_texts if self.corpus is not None else 0

    def __len__(self) -> int:
        return self.n_texts


def as_unlabelled(unlabelled: Unlabelled | Sequence[str], clean: CleanConfig) -> Unlabelled:
    """`unlabelled` as an Unlabelled: raw texts in memory are cleaned into a small TokenCorpus."""
    if isinstance(unlabelled, Unlabelled):
        if unlabelled.corpus is not None and unlabelled.corpus.clean != clean:
            raise ValueError("the unlabelled corpus was cleaned with other settings than the training texts.")
        return unlabelled
    texts = [t for t in unlabelled if t.strip()]
    return Unlabelled(tokens_corpus(clean_corpus(texts, clean), clean) if texts else None)


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
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))  # every array field


def encode(tokens: Sequence[Sequence[str]], wv: WordVectors, vectors: VectorConfig) -> tuple[np.ndarray, np.ndarray]:
    """The model's input for tokenised texts, in `vectors.mode`; training and prediction both encode here.

    In `sequence` mode only `wv.vocab` is known (see `WordVectors.extended` for n-gram words).

    Returns:
        x: (N, max_len) int32 token ids (`sequence`) or (N, D) float32 mean vectors (`mean`); lengths: (N,) int64
        real lengths (D for every row in `mean` mode).
    """
    if vectors.mode == "mean":
        x = encode_mean(tokens, wv)
        return x, np.full(len(x), x.shape[1], dtype=np.int64)
    return encode_sequence(tokens, wv, vectors.max_len)


def word_vectors(
    tokens: Sequence[Sequence[str]], unlabelled: Unlabelled, vectors: VectorConfig, cache_dir: Path | None
) -> WordVectors:
    """A representation's vectors: the pretrained table, or Word2Vec / FastText trained on `tokens` + the corpus."""
    if vectors.pretrained:
        if unlabelled.pretrained is None:
            raise ValueError(f"`vectors` is {vectors.pretrained!r}, but no pretrained vectors were read from it.")
        return unlabelled.pretrained
    return train_vectors(tokens, vectors, cache_dir, unlabelled.corpus)


def _tokens_hash(parts, vectors: VectorConfig) -> str:
    """A hash of tokenised texts (every one, empty ones included) and the vector settings."""
    import gensim

    h = hashlib.sha256()
    settings = {k: v for k, v in asdict(vectors).items() if k not in ("mode", "max_len")}
    h.update(repr(sorted(settings.items())).encode())
    h.update(gensim.__version__.encode())
    for part in parts:
        for tokens in part:
            h.update("\x1f".join(tokens).encode() + b"\x1e")
    return h.hexdigest()[:20]


def prepare(train: LabelledData, valid: LabelledData, *args, **kwargs) -> EncodedData:
    """`prepare_with_vectors`'s EncodedData alone (the same arguments)."""
    return prepare_with_vectors(train, valid, *args, **kwargs)[0]


def prepare_with_vectors(
    train: LabelledData,
    valid: LabelledData,
    unlabelled: Unlabelled | Sequence[str] = (),
    clean: CleanConfig = CleanConfig(),
    vectors: VectorConfig = VectorConfig(),
    cache_dir: Path | None = None,
) -> tuple[EncodedData, WordVectors]:
    """Clean both splits, get word vectors from the training and unlabelled texts, and encode; also return the
    word vectors that encoded the texts (a saved model needs them).

    The validation texts and every label stay out of the vectors' training. The returned vectors are those of
    the representation extended (n-gram vectors) by the words of both splits, so their index is the embedding
    matrix's. `valid` may have no rows (a final model trained on every labelled row).
    """
    if train.classes != valid.classes:
        raise ValueError(f"training classes {train.classes} differ from validation classes {valid.classes}.")
    unl = as_unlabelled(unlabelled, clean)
    tok_train = clean_corpus(train.texts, clean)
    tok_valid = clean_corpus(valid.texts, clean)
    wv = word_vectors(tok_train, unl, vectors, cache_dir).extended(tok_train + tok_valid)
    x_tr, len_tr = encode(tok_train, wv, vectors)
    x_va, len_va = encode(tok_valid, wv, vectors)
    emb = embedding_matrix(wv) if vectors.mode == "sequence" else None
    h = hashlib.sha256()
    h.update(_tokens_hash([tok_train, unl.corpus.lines() if unl.corpus is not None else ()], vectors).encode())
    h.update(_tokens_hash([tok_valid], vectors).encode())
    h.update(repr((asdict(clean), asdict(vectors), train.classes)).encode())
    h.update(train.labels.tobytes() + valid.labels.tobytes())
    if unl.pretrained_key:
        h.update(unl.pretrained_key.encode())
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
