"""The linear baselines a searched RNN has to beat: TF-IDF + logistic regression, as a careful user runs them.

They read the raw texts (with the party prefix where the RNN gets it), lowercased, with URLs and user mentions
normalised (`normalise`), never the RNN's cleaned tokens (stop words or accents removed would weaken them).
Three feature sets, all with sublinear tf: `tfidf_word` word 1-2-grams, `tfidf_char` character 2-5-grams within
word boundaries (inflected Greek words share features), and `tfidf_union` both side by side. The inverse
regularisation strength C is chosen among `CS` by an inner stratified CV (by macro-F1) on the training part
only, then the model is refitted on the whole training part; the vocabulary and idf come from the training
part (the inner validation texts included: no labels are read there). Nothing else about the data is learnt.
Not here: the folds and the comparison with the RNN (study/final/stage.py, study/final/stats.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

BASELINES = ("tfidf_word", "tfidf_char", "tfidf_union")
CS = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)  # inverse regularisation strengths the inner CV chooses among
INNER_FOLDS = 3
MAX_ITER = 1000
TOL = 1e-3
WORD = r"(?u)\b\w+\b"  # words of one letter too (scikit-learn's default drops them)
_URL = re.compile(r"(https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"@\w+")


def normalise(texts: Sequence[str]) -> list[str]:
    """Raw texts as the vectorizers read them: lowercased, every URL `httpurl`, every user mention `@user`."""
    return [_MENTION.sub("@user", _URL.sub("httpurl", t)).lower() for t in texts]


def _features(kind: str, train_texts: Sequence[str], test_texts: Sequence[str]):
    """(train, test) sparse TF-IDF matrices of `kind`, the vocabulary and idf learnt on the training texts only."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import TfidfVectorizer

    if kind not in BASELINES:
        raise ValueError(f"`kind` must be one of {BASELINES}, but got {kind!r}.")
    train, test = normalise(train_texts), normalise(test_texts)
    parts = []
    if kind in ("tfidf_word", "tfidf_union"):
        parts.append(TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, token_pattern=WORD))
    if kind in ("tfidf_char", "tfidf_union"):
        parts.append(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True))
    pairs = [(v.fit_transform(train), v.transform(test)) for v in parts]
    return sp.hstack([a for a, _ in pairs]).tocsr(), sp.hstack([b for _, b in pairs]).tocsr()


def _classifier(c: float, seed: int):
    from sklearn.linear_model import LogisticRegression

    # saga with a loose tolerance: the scores of lbfgs at 1e-4 (BENCHMARKS.md, quality) at a quarter of its time
    return LogisticRegression(C=c, solver="saga", tol=TOL, max_iter=MAX_ITER, random_state=seed)


def choose_c(x, labels: np.ndarray, inner: Sequence[tuple[np.ndarray, np.ndarray]], seed: int) -> float:
    """The C of `CS` with the best mean macro-F1 over the inner (train, valid) splits (the smaller C of ties)."""
    from sklearn.metrics import f1_score

    def score(c: float) -> float:
        predicted = [(labels[v], _classifier(c, seed).fit(x[t], labels[t]).predict(x[v])) for t, v in inner]
        return float(np.mean([f1_score(y, p, average="macro") for y, p in predicted]))

    return CS[int(np.argmax([score(c) for c in CS]))]


def baseline_proba(
    kind: str,
    train_texts: Sequence[str],
    train_labels: np.ndarray,
    test_texts: Sequence[str],
    n_classes: int,
    seed: int = 0,
    inner: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[np.ndarray, float]:
    """Fit one baseline on the training texts (C chosen by inner CV) and score the test texts.

    Args:
        kind: one of BASELINES.
        train_texts: raw texts (party-prefixed where the RNN reads them so); `normalise` is applied here.
        train_labels: (N,) class indices.
        test_texts: raw texts to score.
        n_classes: C; a class missing from the training labels gets probability 0.
        seed: the solver's and the inner split's seed.
        inner: the inner CV's (train, valid) positions within the training part (e.g. grouped by identical
            texts); None: `INNER_FOLDS` stratified folds.

    Returns:
        (M, C) float64 probabilities, rows summing to 1, and the C chosen.
    """
    from sklearn.model_selection import StratifiedKFold

    x_train, x_test = _features(kind, train_texts, test_texts)
    if inner is None:
        inner = list(StratifiedKFold(INNER_FOLDS, shuffle=True, random_state=seed).split(x_train, train_labels))
    c = choose_c(x_train, train_labels, inner, seed)
    clf = _classifier(c, seed).fit(x_train, train_labels)
    probs = np.zeros((len(test_texts), n_classes))  # (M, C)
    probs[:, clf.classes_] = clf.predict_proba(x_test)
    return probs, c
