"""The folds of cross-validation: seeded, stratified, with identical texts kept together.

A fold trains on its training part less an inner validation split (1/`INNER_PARTS` of it, stratified) that
chooses the epoch, and scores its held-out rows (the rule: study/final/cv.py `score_fold`). Rows whose texts are
identical after cleaning (`trainables.data.text_groups`) stay on one side of every split, folds and inner splits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainables.data import LabelledData, group_stratified, text_groups
from trainables.settings import ConfigError

DEFAULT_FOLDS = 5
INNER_PARTS = 7  # the inner validation split is one of this many stratified parts of a fold's training part (14%)


@dataclass(frozen=True)
class Fold:
    """One fold's rows: positions into the labelled data, and the inner split of its training part."""

    number: int  # 1-based
    train: np.ndarray  # (N_train,) positions of the rows the fold trains on (the inner validation rows included)
    held_out: np.ndarray  # (N_held,) positions of the rows the fold scores
    inner_train: np.ndarray  # positions within `train` that the model trains on
    inner_valid: np.ndarray  # positions within `train` whose macro-F1 chooses the epoch


def fold_indices(
    labels: np.ndarray, folds: int, seed: int, groups: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded stratified k-fold positions: one (train, held_out) pair of sorted positions per fold.

    With `groups` (`trainables.data.text_groups`), rows of one group are held out together.

    Raises:
        ConfigError: `folds` < 2, or some class has fewer rows (groups) than `folds`.
    """
    from sklearn.model_selection import StratifiedKFold

    if folds < 2:
        raise ConfigError(f"`folds` must be >= 2 for cross-validation, but got {folds}.")

    def split(y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        counts = np.bincount(y)
        smallest = int(counts[counts > 0].min())
        if smallest < folds:
            raise ConfigError(
                f"`folds` must be <= the row count of the smallest class ({smallest}, counting identical texts "
                f"once), but got {folds}; use fewer folds or more data."
            )
        return list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))

    return group_stratified(labels, groups, split)


def inner_split(labels: np.ndarray, groups: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(inner_train, inner_valid) positions of a fold's training part: one of `INNER_PARTS` stratified parts.

    A class with fewer rows than `INNER_PARTS` makes the parts fewer (at least 2).
    """
    counts = np.bincount(labels[np.unique(groups, return_index=True)[1]] if groups is not None else labels)
    parts = max(2, min(INNER_PARTS, int(counts[counts > 0].min())))
    return fold_indices(labels, parts, seed, groups)[0]


def plan_folds(labels: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> list[Fold]:
    """Every fold of the rows: seeded, stratified, each group (`trainables.data.text_groups`) kept together.

    Raises:
        ConfigError: `folds` < 2, or some class has fewer rows than `folds`.
    """
    return [
        Fold(k, train, held_out, *inner_split(labels[train], groups[train], seed))
        for k, (train, held_out) in enumerate(fold_indices(labels, folds, seed, groups), start=1)
    ]


def given_fold(train: LabelledData, valid: LabelledData, seed: int, clean=None) -> Fold:
    """A given (train, valid) pair as the one fold of their rows `concat(train, valid)` that holds out `valid`."""
    inner = inner_split(train.labels, text_groups(train, clean), seed)
    return Fold(1, np.arange(len(train)), np.arange(len(train), len(train) + len(valid)), *inner)
