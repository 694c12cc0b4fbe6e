"""What a report's data section needs, summarised once in the driver from the data the study trained on.

`summarise_data` turns the training split into the rows of `data.parquet`: the most frequent tokens before
cleaning (a whitespace split of the texts as the study read them) and after cleaning (the study's cleaning
settings), and the input of the 2-D map, a seeded sample of training tweets' mean Word2Vec vectors with
their labels, taken from the encoded arrays (no second Word2Vec). The report reads this file and draws it;
drawing and t-SNE live in study/report/, not here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from trainables.data import LabelledData
from trainables.prepare import EncodedData
from trainables.preprocess import CleanConfig, clean_corpus
from trainables.vectorize import OOV

DATA_FILE = "data.parquet"
RAW, CLEAN, MAP = "raw", "clean", "map"  # the kinds of row: tokens before cleaning, after, a map point
DATA_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),  # RAW, CLEAN or MAP
        ("token", pa.string()),  # RAW and CLEAN rows
        ("count", pa.int64()),  # RAW and CLEAN rows: occurrences in the training split
        ("label", pa.int64()),  # MAP rows: the tweet's class index
        ("vector", pa.list_(pa.float32())),  # MAP rows: (D,) the tweet's mean word vector
    ]
)
TOP_TOKENS = 1000  # tokens kept per kind: word clouds draw 150, the bar chart 20
MAP_POINTS = 600  # t-SNE's cost grows quickly with the points; a sample shows the structure


def raw_tokens(texts: Sequence[str]) -> list[list[str]]:
    """Tweets split on whitespace, as they are: the 'before cleaning' view."""
    return [t.split() for t in texts]


def token_frequencies(corpus: Sequence[Sequence[str]], top: int | None = None) -> pd.DataFrame:
    """Token counts over a tokenised corpus, most frequent first (ties in alphabetical order)."""
    counts = Counter(tok for tokens in corpus for tok in tokens)
    df = pd.DataFrame(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])), columns=["token", "count"])
    return df.head(top) if top is not None else df


def known_rows(data: EncodedData) -> np.ndarray:
    """(N,) bool: the training tweets with at least one word Word2Vec knows (the others have no mean vector)."""
    if data.embeddings is None:  # `mean` mode: x_train holds the mean vectors, all zeros without a known word
        return np.abs(data.x_train).sum(axis=1) > 0
    return (data.x_train > OOV).any(axis=1)  # ids above OOV are known words; padding (0) is below it


def mean_vectors(data: EncodedData, rows: np.ndarray) -> np.ndarray:
    """(len(rows), D) float32: the mean word vector of the given training tweets, unknown words left out.

    In `sequence` mode the tokens are the encoded ones (the first `max_len` of each tweet).
    """
    if data.embeddings is None:
        return data.x_train[rows].astype(np.float32)
    ids = data.x_train[rows]  # (R, T)
    known = ids > OOV  # (R, T): neither padding (0) nor unknown (1)
    sums = (data.embeddings[ids] * known[..., None]).sum(axis=1)  # (R, D)
    return (sums / np.maximum(known.sum(axis=1), 1)[:, None]).astype(np.float32)


def sample_rows(known: np.ndarray, max_points: int = MAP_POINTS, seed: int = 0) -> np.ndarray:
    """Sorted indices of a seeded sample of at most `max_points` of the rows where `known` is True."""
    keep = np.flatnonzero(known)
    if len(keep) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(keep, max_points, replace=False))
    return keep


def summarise_data(train: LabelledData, data: EncodedData, clean: CleanConfig, seed: int) -> list[dict[str, Any]]:
    """The rows of DATA_FILE (schema DATA_SCHEMA) for the training split the study encoded into `data`.

    Args:
        train: the training split as read (texts with the party prefix when the study adds one).
        data: its encoding, from which the map's mean vectors are taken.
        clean: the study's cleaning settings.
        seed: the map sample's seed.
    """
    rows: list[dict[str, Any]] = []
    for kind, corpus in ((RAW, raw_tokens(train.texts)), (CLEAN, clean_corpus(train.texts, clean))):
        freq = token_frequencies(corpus, TOP_TOKENS)
        rows += [{"kind": kind, "token": t, "count": c} for t, c in zip(freq["token"], freq["count"], strict=True)]
    sample = sample_rows(known_rows(data), MAP_POINTS, seed)
    vectors = mean_vectors(data, sample)
    rows += [{"kind": MAP, "label": int(data.y_train[i]), "vector": v} for i, v in zip(sample, vectors, strict=True)]
    return rows
