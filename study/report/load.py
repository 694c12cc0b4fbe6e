"""A study folder read into a StudyResults, and the numbers every page starts from: ranking, counts, summary.

Reading only: no drawing and no HTML (plots.py, search.py and page.py). Everything here works on the
Parquet and JSON files alone, so no Ray and no checkpoints are needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from optuna.distributions import BaseDistribution

from study.results import (
    BEST_METRIC,
    EPOCHS_FILE,
    PREDICTIONS_FILE,
    SUMMARY_METRICS,
    TRIALS_FILE,
    ResultsError,
    TrialStatus,
    read_study,
    read_table,
)
from trainables.summary import DATA_FILE, DATA_SCHEMA
from trainables.vectorize import TRAINED_SIZE

FIGURES_DIR = "figures"
# Settings that decide which rows with which labels a study read and how it split them (not how it encoded them).
SPLIT_KEYS = ("train", "valid", "valid_fraction", "test", "test_fraction", "data_seed", "demo_rows", "text_column",
              "label_column", "label_map", "drop_unmapped", "empty_texts")  # fmt: skip


class ReportError(ValueError):
    """A bad argument or input of a report; the message names it and the fix."""


@dataclass(frozen=True, eq=False)
class StudyResults:
    """The files of one results folder, read and schema-checked."""

    folder: Path
    study: dict[str, Any]  # study.json
    trials: pd.DataFrame  # trials.parquet
    epochs: pd.DataFrame  # epochs.parquet
    predictions: pd.DataFrame  # predictions.parquet
    data: pd.DataFrame  # data.parquet: the training tokens before and after cleaning, the map's mean vectors

    @property
    def name(self) -> str:
        return str(self.study.get("name") or self.folder.name)

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.study.get("classes") or ())

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.study.get("settings") or {})

    @property
    def winner(self) -> dict[str, Any] | None:
        """The final stage's winner, the saved model's configuration (study.json `final.winner`); None without."""
        return (self.study.get("final") or {}).get("winner")


def load_results(folder: str | Path) -> StudyResults:
    """Read study.json and the four Parquet files of `folder` (trials, epochs, predictions, data).

    Raises:
        ResultsError: not a study folder, a missing or unreadable file, or an unknown schema version.
    """
    folder = Path(folder)
    return StudyResults(
        folder=folder,
        study=read_study(folder),
        trials=read_table(folder / TRIALS_FILE),
        epochs=read_table(folder / EPOCHS_FILE),
        predictions=read_table(folder / PREDICTIONS_FILE),
        data=read_table(folder / DATA_FILE, DATA_SCHEMA),
    )


def trial_order(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials in the order they were created, with a 0-based `order` column: by `trial_number` where every row
    has a distinct non-negative one, else in the file's row order."""
    numbers = trials["trial_number"]
    if len(trials) and numbers.notna().all() and (numbers >= 0).all() and numbers.is_unique:
        trials = trials.sort_values("trial_number", kind="stable")
    out = trials.reset_index(drop=True)
    return out.assign(order=np.arange(len(out)))


def scored(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials with a finite best validation macro-F1, best first (ties: the earlier trial first)."""
    t = trial_order(trials)
    t = t[np.isfinite(t[BEST_METRIC].astype(float))]
    return t.sort_values([BEST_METRIC, "order"], ascending=[False, True], kind="stable")


def model_trial_id(results: StudyResults) -> str:
    """The trial whose configuration the saved model has: the final stage's winner, else the search's best."""
    w = results.winner
    return str(w["trial_id"]) if w else str(best_trial(results.trials)["trial_id"])


def same_rows(a: StudyResults, b: StudyResults) -> tuple[bool, str]:
    """Whether two studies read the same labelled rows and split them alike, and why (or why not).

    Equal data fingerprints say so; so do equal split settings (SPLIT_KEYS), since the fingerprint also covers
    encoding settings such as `vector_size`, which change no row. Both the comparison's sections use this rule.
    """
    fa, fb = ((r.study.get("data") or {}).get("fingerprint") for r in (a, b))
    if fa and fa == fb:
        return True, f"same data fingerprint {fa}"
    sa, sb = a.settings, b.settings
    differ = [k for k in SPLIT_KEYS if sa.get(k) != sb.get(k)]
    if differ:
        return False, f"the data fingerprints differ ({fa} vs {fb}) and so do the split settings {differ}"
    encoding = sorted(k for k in set(sa) | set(sb) if k not in SPLIT_KEYS and sa.get(k) != sb.get(k))
    return True, (
        "same split settings; the fingerprints differ through settings that change no row "
        f"({', '.join(encoding[:6]) or 'encoding'})"
    )


def best_trial(trials: pd.DataFrame) -> pd.Series:
    """The trial with the highest best validation macro-F1.

    Raises:
        ResultsError: no trial has a validation score.
    """
    s = scored(trials)
    if s.empty:
        counts = trials["status"].value_counts().to_dict()
        raise ResultsError(f"the study has no trial with a validation score (trials by status: {counts}); no report.")
    return s.iloc[0]


def top_trials(trials: pd.DataFrame, k: int) -> pd.DataFrame:
    """The `k` best trials by best validation macro-F1."""
    if k < 1:
        raise ReportError(f"`top` must be >= 1, but got {k}.")
    return scored(trials).head(k)


def status_counts(trials: pd.DataFrame) -> dict[str, int]:
    """Trials per status, every status present (0 where none), plus `total`."""
    counts = trials["status"].value_counts()
    return {s.value: int(counts.get(s.value, 0)) for s in TrialStatus} | {"total": len(trials)}


def searched_params(results: StudyResults) -> dict[str, BaseDistribution]:
    """The searched hyperparameters and their distributions, as study.json recorded the space (fixed ones left out)."""
    from search_spaces import space_from_record

    try:
        return space_from_record(results.study.get("space"), f"study.json of {results.folder}").params
    except ValueError as e:
        raise ResultsError(str(e)) from None


@dataclass(frozen=True)
class Summary:
    trial_id: str
    status: str
    best_epoch: int
    epochs_run: int
    metrics: dict[str, float]  # validation macro_f1, auc, accuracy, loss at the best epoch
    recall_per_class: dict[str, float]  # class -> validation recall at the best epoch
    f1_per_class: dict[str, float]
    searched: dict[str, Any]  # hyperparameter -> value
    fixed: dict[str, Any]
    counts: dict[str, int]  # status -> trials, and total
    trial_epochs: int  # epochs run by all trials together
    wall_time_s: float | None


def summary(results: StudyResults, trial_id: str | None = None) -> Summary:
    """A trial's scores and hyperparameters (by default the search's best) and the study's trial counts."""
    t = results.trials
    best = best_trial(t) if trial_id is None else t[t["trial_id"] == trial_id].iloc[0]
    params = searched_params(results)
    e = results.epochs
    row = e[(e["trial_id"] == best["trial_id"]) & (e["epoch"] == best["best_epoch"])]
    recall = list(row["val_recall_per_class"].iloc[0]) if len(row) else []
    f1 = list(row["val_f1_per_class"].iloc[0]) if len(row) else []
    values = {c.removeprefix("params_"): plain(best[c]) for c in t.columns if c.startswith("params_")}
    return Summary(
        trial_id=str(best["trial_id"]),
        status=str(best["status"]),
        best_epoch=int(best["best_epoch"]),
        epochs_run=int(best["epochs_run"]),
        metrics={m.removeprefix("val_"): float(best[f"best_{m}"]) for m in SUMMARY_METRICS},
        recall_per_class={c: float(r) for c, r in zip(results.classes, recall, strict=False)},
        f1_per_class={c: float(r) for c, r in zip(results.classes, f1, strict=False)},
        searched={k: values.get(k) for k in params},
        fixed={k: v for k, v in values.items() if k not in params and v is not None},
        counts=status_counts(results.trials),
        trial_epochs=int(results.trials["epochs_run"].fillna(0).sum()),
        wall_time_s=results.study.get("wall_time_s"),
    )


def vector_size_used(settings: dict[str, Any], dimension: int | None = None) -> int | None:
    """`vector_size` as the study used it: 0 (auto) is the `vectors` file's `dimension` (None where unknown) or,
    for vectors trained here, TRAINED_SIZE."""
    if settings.get("vector_size"):
        return int(settings["vector_size"])
    return dimension if settings.get("vectors") else TRAINED_SIZE


def plain(value: Any) -> Any:
    """A cell as a plain Python value: numpy scalars unwrapped, NaN as None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value
