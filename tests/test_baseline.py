"""The TF-IDF + logistic regression baselines: probabilities in class order, learnt from the texts alone."""

import numpy as np
import pytest

from trainables.baseline import BASELINES, baseline_proba, joined


@pytest.mark.parametrize("kind", BASELINES)
def test_baseline_separates_separable_texts(kind):
    words = {0: "καλο ωραιο τελειο", 1: "κακο χαλια απαισιο", 2: "ισως ουδετερο μετρια"}
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=90)
    texts = joined([words[int(y)].split()[: 1 + i % 3] for i, y in enumerate(labels)])
    probs = baseline_proba(kind, texts[:60], labels[:60], texts[60:], n_classes=3)
    assert probs.shape == (30, 3)
    np.testing.assert_allclose(probs.sum(1), 1)
    assert (probs.argmax(1) == labels[60:]).all()


def test_a_class_missing_from_training_gets_probability_zero():
    texts, labels = ["α β", "γ δ", "α α", "δ γ"], np.array([0, 2, 0, 2])
    probs = baseline_proba("tfidf_word", texts, labels, ["α", "δ"], n_classes=3)
    assert probs.shape == (2, 3) and (probs[:, 1] == 0).all() and probs[0, 0] > 0.5 and probs[1, 2] > 0.5


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="`kind` must be one of"):
        baseline_proba("bow", ["a"], np.array([0]), ["a"], 2)
