"""Word vectors (gensim Word2Vec or FastText, or a pretrained file's), cached on disk, and the two encodings.

`mean`: the tweet's mean word vector (N, D), which the model reads as D timesteps of one feature, as the
original work did. `sequence`: token ids padded/truncated to `max_len` (N, T) with their lengths, plus the
embedding matrix (V, D) whose row 0 is padding and row 1 the out-of-vocabulary token.

FastText (and a fastText `.bin` file) also gives a vector to a word outside its vocabulary, from the vectors of
the word's character n-grams. One rule everywhere (training, validation, a saved model's new tweets): a word in
the vocabulary has its own vector; any other word has the mean of its n-grams' vectors among the n-gram
buckets kept (`NgramVectors`: the buckets of the vocabulary's words, the only ones FastText trains); a word
none of whose n-grams is kept is unknown. `WordVectors.extended` applies the rule to the words of some texts.

Cleaning lives in preprocess.py; the unlabelled corpus in corpus.py; pretrained files in pretrained.py;
composing the steps into an EncodedData in prepare.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from trainables.cache import in_use, written
from trainables.corpus import TokenCorpus
from trainables.files import write_file
from trainables.settings import setting

log = logging.getLogger(__name__)

MODES = ("mean", "sequence")  # the encodings
KINDS = ("word2vec", "fasttext")  # the vectors trained on the study's texts
PAD, OOV = 0, 1  # reserved rows of the embedding matrix in `sequence` mode
FT_MAX_BUCKETS = 1 << 19  # FastText's n-gram hash buckets at most (gensim's 2M would take 2.4 GB at 300-d)
TRAINED_SIZE = 300  # the dimension of vectors trained here, unless a setting says otherwise
FT_PASSES = 0.5  # FastText's share of Word2Vec's automatic passes (benchmarks/representations.py)

# Representation settings a search space may search: parameter name -> VectorConfig field.
SEARCHED = {"vectorizer": "kind"} | {name: name for name in ("vector_size", "window", "sg", "min_count")}


@dataclass(frozen=True)
class VectorConfig:
    mode: str = setting(  # the encoding
        "vectors",
        "sequence",
        "sequence (word vectors, attention over words) or mean (the mean vector, as the original)",
        name="encoding",
    )
    vector_size: int = setting(  # dimension D; 0: TRAINED_SIZE, or with `pretrained` the file's
        "vectors", 0, f"dimension of the word vectors (0: {TRAINED_SIZE}, or the --vectors file's)"
    )
    window: int = setting("vectors", 5, "Word2Vec/FastText context window", name="w2v_window")
    min_count: int = setting(  # words seen fewer times get no vector of their own (FastText: n-grams only)
        "vectors", 2, "minimum count of a word to get a vector of its own", name="w2v_min_count"
    )
    epochs: int = setting(  # passes over the corpus; 0 = auto: about 3M token-passes, within 5..50
        "vectors", 0, "Word2Vec/FastText training passes (0: auto, more for small corpora)", name="w2v_epochs"
    )
    sg: bool = setting("vectors", False, "skip-gram instead of CBOW", name="w2v_sg")
    seed: int = 0  # the study's `data_seed`
    max_len: int = setting("vectors", 48, "tokens kept per tweet (sequence encoding)")
    kind: str = setting(  # what is trained (unless `pretrained`)
        "vectors",
        "word2vec",
        "word vectors trained on the training and unlabelled texts: word2vec, or fasttext (character n-grams give "
        "unseen and inflected words vectors)",
        name="vectorizer",
    )
    min_n: int = setting("vectors", 3, "FastText: shortest character n-gram", name="ft_min_n")
    max_n: int = setting("vectors", 6, "FastText: longest character n-gram", name="ft_max_n")
    pretrained: str = setting(  # read instead of training; then kind, window, min_count, epochs, sg unused
        "vectors",
        "",
        "pretrained vectors instead of training them: word2vec text or .bin, fastText .vec or .bin, gensim .kv "
        "(memory-mapped)",
        name="vectors",
    )

    def __post_init__(self) -> None:
        if self.vector_size < 0:
            raise ValueError(f"`vector_size` must be >= 0 (0: auto), but got {self.vector_size}.")
        if self.vector_size == 0 and not self.pretrained:
            object.__setattr__(self, "vector_size", TRAINED_SIZE)
        if self.epochs < 0:
            raise ValueError(f"`w2v_epochs` must be >= 0 (0: auto), but got {self.epochs}.")
        if self.mode not in MODES:
            raise ValueError(f"`encoding` must be one of {MODES}, but got {self.mode!r}.")
        if self.kind not in KINDS:
            raise ValueError(f"`vectorizer` must be one of {KINDS}, but got {self.kind!r}.")
        for f in fields(self):  # messages name the setting (window: w2v_window)
            if f.name in ("window", "min_count", "max_len", "min_n") and getattr(self, f.name) < 1:
                raise ValueError(f"`{f.metadata['name'] or f.name}` must be >= 1, but got {getattr(self, f.name)}.")
        if self.max_n < self.min_n:
            raise ValueError(f"`ft_max_n` must be >= `ft_min_n` ({self.min_n}), but got {self.max_n}.")


def split_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the representation settings among `params`, by their search names; every other parameter)."""
    rep = {k: v for k, v in params.items() if k in SEARCHED}
    return rep, {k: v for k, v in params.items() if k not in SEARCHED}


def representation_key(params: dict[str, Any]) -> str:
    """A representation's key: its searched settings in canonical JSON (other parameters are left out)."""
    return json.dumps({k: params[k] for k in sorted(params) if k in SEARCHED}, sort_keys=True)


def with_params(cfg: VectorConfig, params: dict[str, Any]) -> VectorConfig:
    """`cfg` with the searched representation settings among `params` (other keys are ignored)."""
    return replace(cfg, **{SEARCHED[k]: v for k, v in params.items() if k in SEARCHED})


@dataclass(frozen=True, eq=False)
class NgramVectors:
    """Vectors of fastText character n-gram buckets, for words outside the vocabulary."""

    min_n: int
    max_n: int
    buckets: int  # fastText's hash modulus: a word's n-gram buckets depend on it
    ids: np.ndarray  # (K,) int64 sorted bucket ids that are kept
    vectors: np.ndarray  # (K, D) float32

    def vector(self, word: str) -> np.ndarray | None:
        """The mean vector of the word's kept n-gram buckets, or None when none is kept."""
        from gensim.models.fasttext import ft_ngram_hashes

        hashes = np.asarray(ft_ngram_hashes(word, self.min_n, self.max_n, self.buckets), dtype=np.int64)
        if not len(hashes) or not len(self.ids):
            return None
        pos = np.minimum(np.searchsorted(self.ids, hashes), len(self.ids) - 1)
        found = pos[self.ids[pos] == hashes]
        return self.vectors[found].mean(axis=0) if len(found) else None


def ngram_buckets(words: Iterable[str], min_n: int, max_n: int, buckets: int) -> np.ndarray:
    """(K,) int64: the sorted distinct n-gram buckets of `words`."""
    from gensim.models.fasttext import ft_ngram_hashes

    ids = {i for w in words for i in ft_ngram_hashes(w, min_n, max_n, buckets)}
    return np.array(sorted(ids), dtype=np.int64)


@dataclass(frozen=True, eq=False)
class WordVectors:
    vocab: tuple[str, ...]  # V words, most frequent first (trained), or in first-seen order (extended)
    vectors: np.ndarray  # (V, D) float32
    ngrams: NgramVectors | None = None  # FastText: vectors for words outside `vocab`

    def index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.vocab)}

    def extended(self, corpus: Iterable[Sequence[str]]) -> WordVectors:
        """These vectors plus a row for every word of `corpus` outside the vocabulary that has n-gram vectors.

        Without n-gram vectors (Word2Vec), `self`. The new words follow the vocabulary in first-seen order.
        """
        if self.ngrams is None:
            return self
        known = set(self.vocab)
        unseen = dict.fromkeys(w for tokens in corpus for w in tokens if w not in known)  # once each, in order
        found = {w: self.ngrams.vector(w) for w in unseen}
        new = {w: v for w, v in found.items() if v is not None}  # a word with no kept n-gram stays unknown
        if not new:
            return self
        vectors = np.vstack([self.vectors, np.stack(list(new.values()))]).astype(np.float32)
        return WordVectors(self.vocab + tuple(new), vectors, self.ngrams)


def auto_epochs(n_tokens: int, kind: str = "word2vec") -> int:
    """Passes for a corpus of `n_tokens`: small tweet corpora need many passes.

    With gensim's default 5 passes, 30k tokens leave every Word2Vec vector nearly the same (mean cosine 0.97 on
    the demo data) and the vectors carry no sentiment; about 3M token-passes separate them. FastText, whose
    words share their n-grams' vectors, takes `FT_PASSES` of that for the same probe score.
    """
    passes = min(50, max(5, round(3_000_000 / max(n_tokens, 1))))
    return int(max(5, round(passes * FT_PASSES)) if kind == "fasttext" else passes)


def ngram_table_size(words: Iterable[str], min_n: int, max_n: int) -> int:
    """FastText's bucket count for a vocabulary: the smallest power of two at least twice its distinct n-grams
    (at most half the table shared by two n-grams), from 2^12 to `FT_MAX_BUCKETS`."""
    distinct = {w[i : i + n] for w in (f"<{w}>" for w in words) for n in range(min_n, max_n + 1)
                for i in range(len(w) - n + 1)}  # fmt: skip
    return int(min(FT_MAX_BUCKETS, max(1 << 12, 1 << (2 * len(distinct) - 1).bit_length())))


def corpus_fingerprint(corpus: Sequence[Sequence[str]], cfg: VectorConfig, extra: TokenCorpus | None = None) -> str:
    """A hash of the tokenised texts, the unlabelled corpus' key and every setting that changes trained vectors
    (not the encoding, max_len or a pretrained file)."""
    import gensim

    trained = ["kind", "vector_size", "window", "min_count", "epochs", "sg", "seed"]
    trained += ["min_n", "max_n"] if cfg.kind == "fasttext" else []
    h = hashlib.sha256()
    h.update(repr(sorted((k, getattr(cfg, k)) for k in trained)).encode())
    h.update(gensim.__version__.encode())
    if cfg.kind == "fasttext":
        h.update(f"buckets=sized-2x-{FT_MAX_BUCKETS},passes={FT_PASSES}".encode())
    for tokens in corpus:
        h.update("\x1f".join(tokens).encode() + b"\x1e")
    if extra is not None:
        h.update(f"extra={extra.key}".encode())
    return h.hexdigest()[:20]


class _Sentences:
    """The training texts, then the unlabelled corpus: a restartable iterable for gensim's passes."""

    def __init__(self, corpus: Sequence[Sequence[str]], extra: TokenCorpus | None):
        self.corpus, self.extra = corpus, extra

    def __iter__(self) -> Iterator[list[str]]:
        yield from (list(t) for t in self.corpus if t)
        if self.extra is not None:
            yield from self.extra


def _load_cached(path: Path) -> WordVectors | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            ngrams = None
            if "ngram_ids" in f:
                min_n, max_n, buckets = (int(v) for v in f["ngram_settings"])
                ngrams = NgramVectors(min_n, max_n, buckets, f["ngram_ids"].astype(np.int64), f["ngram_vectors"])
            return WordVectors(tuple(f["vocab"].tolist()), f["vectors"].astype(np.float32), ngrams)
    except (OSError, ValueError, KeyError) as e:  # a damaged cache entry is retrained, not trusted
        log.warning("Ignoring unreadable word-vector cache <path=%s>: %s", path, e)
        return None


def save_vectors_npz(path: Path, wv: WordVectors) -> None:
    """Write `wv` (with its n-gram vectors) as one .npz file, atomically."""
    arrays: dict[str, np.ndarray] = {"vocab": np.array(wv.vocab, dtype=str), "vectors": wv.vectors}
    if (g := wv.ngrams) is not None:
        arrays |= {
            "ngram_settings": np.array([g.min_n, g.max_n, g.buckets]),
            "ngram_ids": g.ids,
            "ngram_vectors": g.vectors,
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, lambda fh: np.savez(fh, **arrays))


def train_vectors(
    corpus: Sequence[Sequence[str]],
    cfg: VectorConfig,
    cache_dir: Path | None = None,
    extra: TokenCorpus | None = None,
    buckets: int | None = None,
) -> WordVectors:
    """Train (or load from the cache) Word2Vec or FastText vectors on tokenised texts.

    Args:
        corpus: token lists of the labelled training texts (never labels, never held-out texts).
        cfg: the vector settings; `seed` and a single worker make the vectors reproducible.
        cache_dir: where vectors are kept under `corpus_fingerprint` (in the cache folder: held as in use while
            read or written, and the cache kept within its bound, trainables/cache.py); None disables the cache.
        extra: the unlabelled corpus, streamed after `corpus` on every pass.
        buckets: FastText's n-gram table; None sizes it to the vocabulary (`ngram_table_size`). Not cached
            otherwise (benchmarks only).

    Returns:
        The vocabulary and its (V, D) float32 vectors; for FastText also the n-gram vectors of the vocabulary.
    """
    path = None
    if cache_dir is not None and buckets is None:
        path = Path(cache_dir) / f"{cfg.kind}-{corpus_fingerprint(corpus, cfg, extra)}.npz"
        with in_use(path):
            if path.exists() and (cached := _load_cached(path)) is not None:
                return cached

    from gensim.models import FastText, Word2Vec

    longest = max([len(t) for t in corpus] + [extra.longest if extra is not None else 0])
    if not longest:
        raise ValueError("word vectors need at least one non-empty tweet after cleaning, but every tweet is empty.")
    n_tokens = sum(len(t) for t in corpus) + (extra.n_tokens if extra is not None else 0)
    settings = {
        "vector_size": cfg.vector_size,
        "window": cfg.window,
        "min_count": min(cfg.min_count, longest),
        "sg": int(cfg.sg),
        "epochs": auto_epochs(n_tokens, cfg.kind) if cfg.epochs == 0 else cfg.epochs,
        "seed": cfg.seed,
        "workers": 1,  # more workers make the vectors depend on thread timing
    }
    sentences = _Sentences(corpus, extra)
    ngrams = None
    if cfg.kind == "fasttext":
        if buckets is None:
            counts = Counter(w for tokens in sentences for w in tokens)
            kept = (w for w, n in counts.items() if n >= settings["min_count"])
            buckets = ngram_table_size(kept, cfg.min_n, cfg.max_n)
        model = FastText(sentences, min_n=cfg.min_n, max_n=cfg.max_n, bucket=buckets, **settings)
        ids = ngram_buckets(model.wv.index_to_key, cfg.min_n, cfg.max_n, buckets)  # the buckets training touched
        ngrams = NgramVectors(cfg.min_n, cfg.max_n, buckets, ids, model.wv.vectors_ngrams[ids].astype(np.float32))
    else:
        model = Word2Vec(sentences, **settings)
    wv = WordVectors(tuple(model.wv.index_to_key), model.wv.vectors.astype(np.float32), ngrams)
    if path is not None:
        with in_use(path):
            save_vectors_npz(path, wv)
            written(path)  # the cache kept within its bound (trainables/cache.py)
    return wv


def encode_mean(corpus: Sequence[Sequence[str]], wv: WordVectors) -> np.ndarray:
    """(N, D) float32: each tweet's mean word vector (words outside the vocabulary by their n-grams, when there
    are n-gram vectors); a tweet with no known word is all zeros."""
    wv = wv.extended(corpus)
    index = wv.index()
    out = np.zeros((len(corpus), wv.vectors.shape[1]), dtype=np.float32)
    for i, tokens in enumerate(corpus):
        ids = [index[t] for t in tokens if t in index]
        if ids:
            out[i] = wv.vectors[ids].mean(axis=0)
    return out


def encode_sequence(corpus: Sequence[Sequence[str]], wv: WordVectors, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids (N, max_len) int32 (vocabulary index + 2; 0 padding, 1 unknown), padded or truncated to `max_len`,
    and their lengths (N,) int64.

    Only `wv.vocab` counts as known: extend it first (`WordVectors.extended`) to give n-gram words their rows.
    A tweet left with no token becomes one unknown token, so every length is at least 1.
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
