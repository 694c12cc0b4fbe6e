"""The search figures, drawn by Optuna from the study rebuilt out of trials.parquet, and the importances.

`search_study` rebuilds the Optuna study with every ASHA-stopped trial counted as finished at the best
validation macro-F1 of the rungs it reached (STOPPED_COUNTED), so the history, slices, parallel
coordinates and importances show every trial that has a score, not only those that ran every epoch.
Optuna's matplotlib functions draw on pyplot figures: each is drawn in its own rc context (Optuna sets a
style), taken out of pyplot at once, and returned as a plain Figure for the page to save.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter
from optuna.distributions import BaseDistribution, IntDistribution
from optuna.importance import FanovaImportanceEvaluator, MeanDecreaseImpurityImportanceEvaluator

from study.results import BEST_METRIC, TrialStatus
from study.search.optuna_db import build_study

MIN_IMPORTANCE_TRIALS = 3  # fewer scored trials give Optuna's evaluators nothing to fit
STOPPED_COUNTED = "each trial ASHA stopped counts with the best validation macro-F1 of the rungs it reached"
EVALUATORS = {"fANOVA": FanovaImportanceEvaluator, "mean decrease impurity": MeanDecreaseImpurityImportanceEvaluator}
SEED = 0  # of the evaluators' random forests
SLICE_COLUMNS = 3
RELIABLE_TRIALS = 20  # importances from fewer scored trials move with every trial added
AGREEMENT = 0.5  # the evaluators agree when Spearman's rank correlation of their importances reaches this


def counted_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials with every ASHA-stopped one marked completed, so Optuna takes its best score as its value."""
    stopped = trials["status"] == TrialStatus.STOPPED_EARLY.value
    return trials.assign(status=trials["status"].where(~stopped, TrialStatus.COMPLETED.value))


def search_study(trials: pd.DataFrame, epochs: pd.DataFrame, params: dict[str, BaseDistribution]) -> optuna.Study:
    """The Optuna study of the trials, ASHA-stopped ones counted as STOPPED_COUNTED says."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return build_study(counted_trials(trials), epochs, params)


@dataclass(frozen=True)
class Importances:
    by_evaluator: dict[str, dict[str, float]]  # evaluator name -> hyperparameter -> importance (sums to 1)
    notes: tuple[str, ...]  # why some or all importances are missing, and the evaluators' own warnings
    n_trials: int  # scored trials they were computed from (completed and ASHA-stopped)
    warning: str = ""  # why the numbers are a rough guess: few trials, or evaluators that disagree


def importance_warning(by_evaluator: dict[str, dict[str, float]], n_trials: int) -> str:
    """Why importances should be read as a rough guess ("" when there is no reason): fewer than RELIABLE_TRIALS
    trials, or two evaluators whose rankings disagree (Spearman below AGREEMENT, or another top hyperparameter)."""
    from scipy.stats import spearmanr

    reasons = [f"they come from {n_trials} trials (fewer than {RELIABLE_TRIALS})"] if n_trials < RELIABLE_TRIALS else []
    if len(by_evaluator) == 2:
        (name_a, a), (name_b, b) = by_evaluator.items()
        names = [k for k in a if k in b]
        top_a, top_b = max(names, key=a.get), max(names, key=b.get)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a constant ranking has no correlation: NaN, said below
            rho = float(spearmanr([a[k] for k in names], [b[k] for k in names]).statistic) if len(names) > 1 else 1.0
        if not rho >= AGREEMENT or top_a != top_b:
            rho_text = f"{rho:.2f}" if math.isfinite(rho) else "undefined"
            reasons.append(
                f"{name_a} and {name_b} disagree (Spearman rank correlation of their importances {rho_text}; "
                f"most important: {top_a} against {top_b})"
            )
    return "Read these importances as a rough guess: " + "; ".join(reasons) + "." if reasons else ""


def param_importances(trials: pd.DataFrame, epochs: pd.DataFrame, params: dict[str, BaseDistribution]) -> Importances:
    """Hyperparameter importances by Optuna's fANOVA and mean-decrease-impurity evaluators, on `search_study`.

    With fewer than MIN_IMPORTANCE_TRIALS scored trials, or no hyperparameter that took more than one value, the
    result holds only a note.
    """
    counted = counted_trials(trials)
    done = counted[(counted["status"] == TrialStatus.COMPLETED.value) & np.isfinite(counted[BEST_METRIC])]
    n = len(done)
    if n < MIN_IMPORTANCE_TRIALS:
        note = (
            f"Hyperparameter importance needs at least {MIN_IMPORTANCE_TRIALS} completed trials (ASHA-stopped "
            f"ones included), but the study has {n}; run more trials (`--num-samples`) to see it."
        )
        return Importances({}, (note,), n)
    varying = {k: d for k, d in params.items() if done[f"params_{k}"].astype(str).nunique() > 1}
    notes = []
    single = [k for k in params if k not in varying]
    if single:
        notes.append(
            f"Left out of the importances: {', '.join(single)} (one value in every scored trial, so no "
            "variation to attribute)."
        )
    if not varying:
        return Importances({}, (*notes, "No searched hyperparameter varied across the scored trials."), n)
    study = search_study(trials, epochs, params)
    out: dict[str, dict[str, float]] = {}
    for name, evaluator_class in EVALUATORS.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                evaluator = evaluator_class(seed=SEED)
                values = optuna.importance.get_param_importances(study, evaluator=evaluator, params=list(varying))
            except (ValueError, RuntimeError, ZeroDivisionError) as e:
                notes.append(f"{name}: Optuna could not compute importances ({e}).")
                continue
        notes.extend(f"{name}: {w.message}" for w in caught if issubclass(w.category, UserWarning))
        vals = {k: float(v) for k, v in values.items()}
        if all(math.isfinite(v) for v in vals.values()):
            out[name] = vals
        else:
            notes.append(f"{name}: the importances are not finite (the scores may not vary); left out.")
    return Importances(out, tuple(dict.fromkeys(notes)), n, importance_warning(out, n) if out else "")


def _drawn_by_optuna(draw: Callable[[], Any], size: tuple[float, float] | None = None) -> Figure:
    """The figure of the Axes that `draw` returns, taken out of pyplot; Optuna's style (ggplot) stays inside."""
    import matplotlib
    import matplotlib.pyplot as plt

    with warnings.catch_warnings(), matplotlib.rc_context({"figure.figsize": size} if size else {}):
        # the matplotlib functions are marked experimental; their output is what this module wants
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fig = np.ravel(draw())[0].figure
    plt.close(fig)  # pyplot forgets it; the Figure itself stays drawable, and nothing accumulates
    return fig


def history_figure(study: optuna.Study) -> Figure:
    """Optuna's optimisation history: each trial's score and the best so far."""
    from optuna.visualization.matplotlib import plot_optimization_history

    return _drawn_by_optuna(lambda: plot_optimization_history(study, target_name=BEST_METRIC), (9, 4))


def slice_figure(study: optuna.Study, params: list[str]) -> Figure:
    """Optuna's slice plots, one per hyperparameter, rearranged from one row into SLICE_COLUMNS columns."""
    from optuna.visualization.matplotlib import plot_slice

    fig = _drawn_by_optuna(lambda: plot_slice(study, params=params, target_name=BEST_METRIC))
    for ax in [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]:
        ax.remove()  # Optuna's; one colour bar for every slice is drawn below
    axes = list(fig.axes)
    cols = min(len(axes), SLICE_COLUMNS)
    rows = math.ceil(len(axes) / cols)
    grid = fig.add_gridspec(rows, cols)
    dists = {k: d for t in study.trials for k, d in t.distributions.items()}
    for i, ax in enumerate(axes):
        dist = dists.get(ax.get_xlabel())
        if isinstance(dist, IntDistribution) and not dist.log:  # no ticks at 1.5 layers
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_subplotspec(grid[i // cols, i % cols])
        ax.tick_params(labelleft=i % cols == 0)  # the axes share one y range: labels on the left column only
        ax.set_ylabel(BEST_METRIC if i % cols == 0 else "")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a short log axis run into each other
    fig.set_size_inches(4.2 * cols + 1.2, 3.4 * rows + 0.8)
    fig.set_layout_engine("constrained")  # titles, tick labels and the colour bar never overlap
    fig.colorbar(axes[0].collections[0], ax=axes, label="trial", shrink=0.8)
    return fig


def parallel_figure(study: optuna.Study, params: list[str]) -> Figure:
    """Optuna's parallel coordinates of the hyperparameters and the score."""
    from optuna.visualization.matplotlib import plot_parallel_coordinate

    size = (max(6.4, 1.3 * (len(params) + 1) + 2), 4.8)
    return _drawn_by_optuna(lambda: plot_parallel_coordinate(study, params=params, target_name=BEST_METRIC), size)


def importance_figure(study: optuna.Study, imp: Importances) -> Figure:
    """Optuna's importance bar chart by the first evaluator that gave importances."""
    from optuna.visualization.matplotlib import plot_param_importances

    name, values = next(iter(imp.by_evaluator.items()))
    evaluator = EVALUATORS[name](seed=SEED)
    size = (8, 0.5 * len(values) + 2)
    fig = _drawn_by_optuna(
        lambda: plot_param_importances(study, evaluator=evaluator, params=list(values), target_name=BEST_METRIC), size
    )
    fig.axes[0].set_title(f"Hyperparameter importance ({name}, {imp.n_trials} trials)", loc="left")
    fig.set_layout_engine("constrained")
    return fig
