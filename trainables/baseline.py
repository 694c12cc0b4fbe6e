"""The linear baselines a searched RNN has to beat: TF-IDF + logistic regression (scikit-learn).

Both read the same cleaned texts as the RNN (the tokens of `trainables.preprocess.clean_corpus`, joined by
spaces), with sublinear tf: `tfidf_word` uses word 1-2-grams, `tfidf_char` character 2-5-grams within word
boundaries (which gives inflected Greek words shared features). Each is fitted on a training part and scores
another part; nothing else about the data is learnt.
Not here: the folds and the comparison with the RNN (study/final.py, study/cvstats.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BASELINES = ("tfidf_word", "tfidf_char")
LOGREG_C = 1.0  # scikit-learn's default inverse regularisation strength
MAX_ITER = 2000


def _vectorizer(kind: str):
    from sklearn.feature_extraction.text import TfidfVectorizer

    if kind == "tfidf_word":
        return TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"\S+")
    if kind == "tfidf_char":
        return TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)
    raise ValueError(f"`kind` must be one of {BASELINES}, but got {kind!r}.")


def joined(tokens: Sequence[Sequence[str]]) -> list[str]:
    """Cleaned token lists as the space-joined texts the vectorizers read."""
    return [" ".join(t) for t in tokens]


def baseline_proba(
    kind: str,
    train_texts: Sequence[str],
    train_labels: np.ndarray,
    test_texts: Sequence[str],
    n_classes: int,
    seed: int = 0,
) -> np.ndarray:
    """Fit one baseline on the training texts and return its class probabilities on the test texts.

    Args:
        kind: one of BASELINES.
        train_texts: cleaned texts (see `joined`).
        train_labels: (N,) class indices.
        test_texts: cleaned texts to score.
        n_classes: C; a class missing from the training labels gets probability 0.
        seed: the solver's seed.

    Returns:
        (M, C) float64 probabilities, rows summing to 1.
    """
    from sklearn.linear_model import LogisticRegression

    vec = _vectorizer(kind)
    x_train = vec.fit_transform(train_texts)
    clf = LogisticRegression(C=LOGREG_C, max_iter=MAX_ITER, random_state=seed).fit(x_train, train_labels)
    probs = np.zeros((len(test_texts), n_classes))  # (M, C)
    probs[:, clf.classes_] = clf.predict_proba(vec.transform(test_texts))
    return probs
