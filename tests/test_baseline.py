"""The TF-IDF + logistic regression baselines: raw texts in, probabilities in class order, C chosen by inner CV."""

import numpy as np
import pytest

from trainables.baseline import BASELINES, CS, baseline_proba, normalise
from trainables.preprocess import clean_corpus


@pytest.mark.parametrize("kind", BASELINES)
def test_baseline_separates_separable_texts(kind):
    words = {0: "καλο ωραιο τελειο", 1: "κακο χαλια απαισιο", 2: "ισως ουδετερο μετρια"}
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=90)
    texts = [" ".join(words[int(y)].split()[: 1 + i % 3]) for i, y in enumerate(labels)]
    probs, c = baseline_proba(kind, texts[:60], labels[:60], texts[60:], n_classes=3)
    assert probs.shape == (30, 3) and c in CS
    np.testing.assert_allclose(probs.sum(1), 1)
    assert (probs.argmax(1) == labels[60:]).all()


def test_the_baselines_read_raw_text_where_cleaning_would_erase_the_signal():
    """The label lives only in what the RNN's cleaning removes (stop words, accents, case): a baseline that read
    the cleaned tokens would guess; on the raw texts it separates the classes."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, size=120)
    cue = {0: "και το", 1: "ΌΧΙ!!"}
    texts = [f"ND {cue[int(y)]} ψηφος {i}" for i, y in enumerate(labels)]
    probs, _ = baseline_proba("tfidf_union", texts[:80], labels[:80], texts[80:], n_classes=2)
    assert (probs.argmax(1) == labels[80:]).mean() == 1.0
    cleaned = [" ".join(t) for t in clean_corpus(texts)]  # what the baselines read before: the cue is gone
    assert len(set(cleaned)) == 1, cleaned[:2]


def test_normalise_lowercases_and_replaces_urls_and_mentions():
    assert normalise(["Δες https://t.co/xYz @Kyriakos ΤΩΡΑ www.nd.gr"]) == ["δες httpurl @user τωρα httpurl"]


def test_a_class_missing_from_training_gets_probability_zero():
    texts, labels = ["α β", "γ δ", "α α", "δ γ", "β α", "γ γ"], np.array([0, 2, 0, 2, 0, 2])
    inner = [(np.array([0, 1, 2, 3]), np.array([4, 5])), (np.array([2, 3, 4, 5]), np.array([0, 1]))]
    probs, _ = baseline_proba("tfidf_word", texts, labels, ["α", "δ"], n_classes=3, inner=inner)
    assert probs.shape == (2, 3) and (probs[:, 1] == 0).all()
    assert probs[0, 0] > probs[0, 2] and probs[1, 2] > probs[1, 0]


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="`kind` must be one of"):
        baseline_proba("bow", ["a"], np.array([0]), ["a"], 2)
