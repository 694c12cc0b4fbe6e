"""Classification metrics of one epoch, from labels and class probabilities. Pure numpy/scikit-learn, no torch."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, recall_score, roc_auc_score

METRIC = "val_macro_f1"  # what the searcher and the scheduler optimise
MODE = "max"


def macro_auc(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Macro one-vs-rest ROC AUC; NaN when a class is absent from `y_true` (AUC undefined)."""
    n_classes = probs.shape[1]
    if len(np.unique(y_true)) < n_classes:
        return float("nan")
    if n_classes == 2:
        return float(roc_auc_score(y_true, probs[:, 1]))
    return float(roc_auc_score(y_true, probs, multi_class="ovr", average="macro", labels=np.arange(n_classes)))


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, prefix: str = "val_") -> dict[str, object]:
    """Macro-F1, accuracy, per-class F1 and recall and macro ROC AUC of predictions.

    Args:
        y_true: (N,) int class indices.
        probs: (N, C) class probabilities, rows summing to 1.
        prefix: put before every key, e.g. "val_" or "train_".

    Returns:
        A flat dict: `{prefix}macro_f1`, `{prefix}accuracy`, `{prefix}auc` (floats) and
        `{prefix}f1_per_class`, `{prefix}recall_per_class` (lists of C floats, in class-index order).
    """
    labels = np.arange(probs.shape[1])
    y_pred = probs.argmax(axis=1)
    return {
        f"{prefix}macro_f1": float(f1_score(y_true, y_pred, average="macro", labels=labels, zero_division=0)),
        f"{prefix}accuracy": float(accuracy_score(y_true, y_pred)),
        f"{prefix}auc": macro_auc(y_true, probs),
        f"{prefix}f1_per_class": [
            float(v) for v in f1_score(y_true, y_pred, average=None, labels=labels, zero_division=0)
        ],
        f"{prefix}recall_per_class": [
            float(v) for v in recall_score(y_true, y_pred, average=None, labels=labels, zero_division=0)
        ],
    }
