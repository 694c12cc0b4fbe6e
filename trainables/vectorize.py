"""Word2Vec vectors (gensim), cached on disk, and the two encodings of a tokenised tweet.

`mean`: the tweet's mean word vector (N, D), which the model reads as D timesteps of one feature, as the
original work did. `sequence`: token ids padded/truncated to `max_len` (N, T) with their lengths, plus the
embedding matrix (V, D) whose row 0 is padding and row 1 the out-of-vocabulary token.
Cleaning lives in preprocess.py; composing the steps into an EncodedData lives in prepare.py.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from trainables.files import atomic_write

log = logging.getLogger(__name__)

MODES = ("mean", "sequence")
PAD, OOV = 0, 1  # reserved rows of the embedding matrix in `sequence` mode


@dataclass(frozen=True)
class VectorConfig:
    mode: str = "sequence"  # "mean" | "sequence"
    vector_size: int = 300  # Word2Vec dimension D
    window: int = 5  # Word2Vec context window
    min_count: int = 2  # words seen fewer times are out of vocabulary
    epochs: int = 0  # Word2Vec passes over the corpus; 0 = auto: about 3M token-passes, within 5..50
    sg: bool = False  # skip-gram (True) or CBOW (False)
    seed: int = 0
    max_len: int = 48  # `sequence` mode: tokens kept per tweet

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ValueError(f"`w2v_epochs` must be >= 0 (0: auto), but got {self.epochs}.")
        if self.mode not in MODES:
            raise ValueError(f"`vectorizer` must be one of {MODES}, but got {self.mode!r}.")
        for name in ("vector_size", "window", "min_count", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, but got {getattr(self, name)}.")


@dataclass(frozen=True)
class WordVectors:
    vocab: tuple[str, ...]  # V words, most frequent first
    vectors: np.ndarray  # (V, D) float32

    def index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.vocab)}


def default_cache_dir() -> Path:
    """`$RNN_STUDY_CACHE`, else ~/.cache/rnn-sentiment-studies: Word2Vec vectors, safe to delete."""
    env = os.environ.get("RNN_STUDY_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "rnn-sentiment-studies"


def auto_epochs(n_tokens: int) -> int:
    """Word2Vec passes for a corpus of `n_tokens`: small tweet corpora need many passes.

    With gensim's default 5 passes, 30k tokens leave every vector nearly the same (mean cosine 0.97 on the
    demo data) and the vectors carry no sentiment; about 3M token-passes separate them.
    """
    return int(min(50, max(5, round(3_000_000 / max(n_tokens, 1)))))


def corpus_fingerprint(corpus: Sequence[Sequence[str]], cfg: VectorConfig) -> str:
    """A hash of the tokenised texts and every Word2Vec setting (the mode and max_len do not change vectors)."""
    import gensim

    h = hashlib.sha256()
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("mode", "max_len")}
    h.update(repr(sorted(settings.items())).encode())
    h.update(gensim.__version__.encode())
    for tokens in corpus:
        h.update("\x1f".join(tokens).encode())
        h.update(b"\x1e")
    return h.hexdigest()[:20]


def train_word2vec(corpus: Sequence[Sequence[str]], cfg: VectorConfig, cache_dir: Path | None = None) -> WordVectors:
    """Train (or load from the cache) Word2Vec vectors on tokenised texts.

    Args:
        corpus: token lists; only texts, never labels (training texts plus unlabelled texts).
        cfg: Word2Vec settings; `seed` and a single worker make the vectors reproducible.
        cache_dir: where vectors are kept under the corpus fingerprint; None disables the cache.

    Returns:
        The vocabulary and its (V, D) float32 vectors.
    """
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"w2v-{corpus_fingerprint(corpus, cfg)}.npz"
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as f:
                    return WordVectors(tuple(f["vocab"].tolist()), f["vectors"].astype(np.float32))
            except (OSError, ValueError, KeyError) as e:  # a damaged cache entry is retrained, not trusted
                log.warning("Ignoring unreadable Word2Vec cache <path=%s>: %s", path, e)

    from gensim.models import Word2Vec

    sentences = [list(t) for t in corpus if t]
    if not sentences:
        raise ValueError("Word2Vec needs at least one non-empty tweet after cleaning, but every tweet is empty.")
    model = Word2Vec(
        sentences,
        vector_size=cfg.vector_size,
        window=cfg.window,
        min_count=min(cfg.min_count, max(len(s) for s in sentences)),
        sg=int(cfg.sg),
        epochs=auto_epochs(sum(len(t) for t in sentences)) if cfg.epochs == 0 else cfg.epochs,
        seed=cfg.seed,
        workers=1,  # more workers make the vectors depend on thread timing
    )
    wv = WordVectors(tuple(model.wv.index_to_key), model.wv.vectors.astype(np.float32))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)

        def save(tmp: str) -> None:
            with open(tmp, "wb") as fh:  # a file object: np.savez would add ".npz" to a path
                np.savez(fh, vocab=np.array(wv.vocab, dtype=str), vectors=wv.vectors)

        atomic_write(path, save)
    return wv


def encode_mean(corpus: Sequence[Sequence[str]], wv: WordVectors) -> np.ndarray:
    """Mean word vector of each tweet; a tweet with no known word is all zeros.

    Returns:
        (N, D) float32.
    """
    index = wv.index()
    out = np.zeros((len(corpus), wv.vectors.shape[1]), dtype=np.float32)
    for i, tokens in enumerate(corpus):
        ids = [index[t] for t in tokens if t in index]
        if ids:
            out[i] = wv.vectors[ids].mean(axis=0)
    return out


def encode_sequence(corpus: Sequence[Sequence[str]], wv: WordVectors, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids (vocabulary index + 2; 0 padding, 1 unknown) padded or truncated to `max_len`.

    A tweet left with no token becomes one unknown token, so every length is at least 1.

    Returns:
        ids (N, max_len) int32 and lengths (N,) int64.
    """
    index = wv.index()
    ids = np.full((len(corpus), max_len), PAD, dtype=np.int32)
    lengths = np.ones(len(corpus), dtype=np.int64)
    for i, tokens in enumerate(corpus):
        row = [index.get(t, OOV - 2) + 2 for t in tokens[:max_len]] or [OOV]
        ids[i, : len(row)] = row
        lengths[i] = len(row)
    return ids, lengths


def embedding_matrix(wv: WordVectors) -> np.ndarray:
    """(V + 2, D) float32: a zero padding row, the mean vector for unknown words, then the vocabulary."""
    d = wv.vectors.shape[1]
    unknown = wv.vectors.mean(axis=0) if len(wv.vocab) else np.zeros(d, np.float32)
    return np.vstack([np.zeros((1, d), np.float32), unknown[None, :], wv.vectors]).astype(np.float32)
