"""Pretrained word vectors from a file: word2vec text or binary, fastText `.vec` / `.bin`, or gensim's `.kv`.

Here: `read_vectors_file` (the file's format by its content and name, every failure a `VectorsError`),
`restrict` (the rows of a study's words, and for a fastText `.bin` the n-gram buckets of those words) and
`coverage` (the share of the training texts' tokens and types found). Not here: training vectors
(vectorize.py), where the table is used (prepare.py).

Formats: a file starting with fastText's magic number is a fastText `.bin` (`load_facebook_vectors`); another
`.bin` is word2vec binary; `.kv` is gensim's native format, memory-mapped (`mmap="r"`: only the rows used are
read; it is a pickle, so load only files you trust); anything else is word2vec text, which is also fastText's
`.vec`. A text or binary file is read whole into memory once, in the driver; the study then keeps only the rows
of its own words.
"""

from __future__ import annotations

import hashlib
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainables.corpus import file_fingerprint
from trainables.data import DataError
from trainables.vectorize import NgramVectors, WordVectors, ngram_buckets

FASTTEXT_MAGIC = 793712314  # the int32 a fastText .bin file starts with


class VectorsError(DataError):
    """A vectors file that cannot be used; the message names the file, what is wrong and the fix."""


@dataclass(frozen=True, eq=False)
class VectorsFile:
    """A pretrained vectors file as read: gensim's KeyedVectors (FastTextKeyedVectors for fastText `.bin`)."""

    path: str
    format: str  # "word2vec-text" | "word2vec-binary" | "fasttext-bin" | "gensim-kv"
    keyed: Any  # gensim KeyedVectors
    key: str  # hash of the file's fingerprint

    @property
    def dimension(self) -> int:
        return int(self.keyed.vector_size)

    @property
    def has_ngrams(self) -> bool:
        return getattr(self.keyed, "vectors_ngrams", None) is not None and getattr(self.keyed, "bucket", 0) > 0


def file_format(path: Path) -> str:
    """The format of a vectors file, by its first bytes and its name."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if len(head) == 4 and struct.unpack("<i", head)[0] == FASTTEXT_MAGIC:
        return "fasttext-bin"
    return {".kv": "gensim-kv", ".bin": "word2vec-binary"}.get(path.suffix.lower(), "word2vec-text")


def read_vectors_file(path: str | Path, vector_size: int = 0) -> VectorsFile:
    """Read a vectors file and check it: its format, its header, its dimension and its numbers.

    Args:
        vector_size: the dimension the settings ask for; 0 takes the file's.

    Raises:
        VectorsError: the file is missing, empty, truncated, has a header that disagrees with its rows, rows of
            another length, values that are not finite numbers, or a dimension other than `vector_size`.
    """
    p = Path(path)
    if not p.is_file():
        what = "does not exist" if not p.exists() else "is not a file"
        raise VectorsError(f"Vectors file {p} {what}; check the path given with `--vectors`.")
    if p.stat().st_size == 0:
        raise VectorsError(f"Vectors file {p} is empty; give a word2vec or fastText vectors file with `--vectors`.")
    fmt = file_format(p)
    hint = {
        "word2vec-text": "a first line 'WORDS DIMENSION', then one 'word v1 ... vD' line per word",
        "word2vec-binary": "word2vec's binary layout (a '.bin' that is not fastText's is read as word2vec binary)",
        "fasttext-bin": "a complete fastText .bin model",
        "gensim-kv": "a file written by gensim's KeyedVectors.save",
    }[fmt]
    try:
        keyed = _load(p, fmt)
    except VectorsError:
        raise
    except Exception as e:  # noqa: BLE001 - gensim raises many types for a damaged file; each is bad input here
        raise VectorsError(
            f"Vectors file {p} cannot be read as {fmt} ({type(e).__name__}: {str(e)[:300]}); it should hold {hint}. "
            "A truncated download or a file of another format gives this error; fetch or convert the file again."
        ) from None
    if fmt == "word2vec-text":
        with open(p, "rb") as fh:
            rows = sum(1 for line in fh if line.strip()) - 1  # non-empty lines after the header
        if rows != len(keyed.index_to_key):
            raise VectorsError(
                f"Vectors file {p}: its header says {len(keyed.index_to_key)} words, but the file has {rows} "
                "vector lines; fix the first line ('WORDS DIMENSION') or the file."
            )
    vectors = np.asarray(keyed.vectors)
    if vectors.ndim != 2 or vectors.shape[0] == 0:
        raise VectorsError(f"Vectors file {p} holds no vectors; give a file with at least one word.")
    step = max(1, len(vectors) // 10_000)  # a sample: a memory-mapped file is not read whole for the check
    if not np.isfinite(vectors[::step]).all():
        raise VectorsError(f"Vectors file {p} has values that are not finite numbers (NaN or inf); fix the file.")
    dimension = int(keyed.vector_size)
    if vector_size and vector_size != dimension:
        raise VectorsError(
            f"`vector_size` is {vector_size}, but the vectors in {p} have dimension {dimension}; give "
            f"`--vector-size {dimension}` or leave it out (0: the file's dimension)."
        )
    key = hashlib.sha256(repr(sorted(file_fingerprint(p).items())).encode()).hexdigest()[:20]
    return VectorsFile(str(p), fmt, keyed, key)


def _load(path: Path, fmt: str):
    from gensim.models import KeyedVectors

    if fmt == "fasttext-bin":
        from gensim.models.fasttext import load_facebook_vectors

        return load_facebook_vectors(str(path))
    if fmt == "gensim-kv":
        keyed = KeyedVectors.load(str(path), mmap="r")
        if not isinstance(keyed, KeyedVectors):
            raise VectorsError(
                f"Vectors file {path} is a gensim file of a {type(keyed).__name__}, not KeyedVectors; save the "
                "model's `.wv` instead."
            )
        return keyed
    return KeyedVectors.load_word2vec_format(str(path), binary=fmt == "word2vec-binary")


def restrict(vectors: VectorsFile, words: Iterable[str]) -> WordVectors:
    """The rows of `words` found in the file, in the file's order; with the n-gram buckets of every word of `words`
    when the file has n-gram vectors (fastText `.bin`), so words outside the file get vectors by the same rule
    (vectorize.py) in training and in a saved model.
    """
    kv = vectors.keyed
    words = set(words)
    rows = sorted(kv.key_to_index[w] for w in words if w in kv.key_to_index)
    vocab = tuple(kv.index_to_key[i] for i in rows)
    table = np.asarray(kv.vectors[rows], dtype=np.float32).reshape(len(rows), vectors.dimension)
    ngrams = None
    if vectors.has_ngrams:
        ids = ngram_buckets(words, kv.min_n, kv.max_n, kv.bucket)
        ngrams = NgramVectors(kv.min_n, kv.max_n, int(kv.bucket), ids, np.asarray(kv.vectors_ngrams[ids], np.float32))
    return WordVectors(vocab, table, ngrams)


def coverage(table: WordVectors, tokens: Sequence[Sequence[str]]) -> dict[str, float | int]:
    """How much of tokenised texts the vectors cover: the share of tokens and of distinct words (types) found.

    `*_found` counts whole words in the file; `*_with_ngrams` also words that get n-gram vectors (fastText .bin).
    """
    counts = Counter(w for t in tokens for w in t)
    n_tokens, n_types = sum(counts.values()), len(counts)
    out: dict[str, float | int] = {"tokens": n_tokens, "types": n_types}
    for name, words in (("found", set(table.vocab)), ("with_ngrams", set(table.extended([list(counts)]).vocab))):
        found = [w for w in counts if w in words]  # none when there are no tokens
        out[f"tokens_{name}"] = sum(counts[w] for w in found) / max(n_tokens, 1)
        out[f"types_{name}"] = len(found) / max(n_types, 1)
    return out
