"""trainables.metrics against scikit-learn's definitions, on random, tied, one-hot and one-class predictions."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score, roc_auc_score

from trainables.metrics import classification_metrics


def _sklearn(y, probs):
    labels = np.arange(probs.shape[1])
    pred = probs.argmax(1)
    auc = (
        roc_auc_score(y, probs[:, 1])
        if probs.shape[1] == 2
        else roc_auc_score(y, probs, multi_class="ovr", average="macro", labels=labels)
    )
    return {
        "val_macro_f1": f1_score(y, pred, average="macro", labels=labels, zero_division=0),
        "val_accuracy": accuracy_score(y, pred),
        "val_auc": auc,
        "val_f1_per_class": f1_score(y, pred, average=None, labels=labels, zero_division=0),
        "val_recall_per_class": recall_score(y, pred, average=None, labels=labels, zero_division=0),
    }


@pytest.mark.parametrize("kind", ["random", "ties", "one_hot", "one_class"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_metrics_equal_sklearn(kind, n_classes):
    rng = np.random.default_rng(n_classes)
    y = np.r_[np.arange(n_classes), rng.integers(0, n_classes, 300)]  # every class present
    probs = rng.dirichlet(np.ones(n_classes), len(y))
    if kind == "ties":
        probs = rng.dirichlet(np.ones(n_classes), 4)[rng.integers(0, 4, len(y))]  # 4 distinct rows: many ties
    elif kind == "one_hot":
        probs = np.eye(n_classes)[rng.integers(0, n_classes, len(y))]
    elif kind == "one_class":
        probs = np.eye(n_classes)[np.zeros(len(y), dtype=int)]
    ours, ref = classification_metrics(y, probs), _sklearn(y, probs)
    for key, value in ref.items():
        np.testing.assert_allclose(ours[key], value, atol=1e-12, err_msg=key)


def test_auc_is_nan_when_a_class_is_absent():
    probs = np.random.default_rng(0).dirichlet(np.ones(3), 20)
    assert np.isnan(classification_metrics(np.zeros(20, dtype=int), probs)["val_auc"])
