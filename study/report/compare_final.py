"""The comparison's first section: studies ranked by their final models' k-fold CV estimates.

A study's final stage (study/final/stage.py) scores its winner on k folds of every labelled row; two studies whose
final stages used the same folds (the same labelled rows, the same k and fold seed) are compared fold by fold
with the corrected paired t-test of study/final/stats.py, Holm-corrected over the pairs; which studies share rows
is decided by load.same_rows, as for the comparison's other tests. Studies without a final stage are listed
last, with their search score. Own drawing: no library plots CV intervals.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from study.final.stats import holm, paired, verdict_line
from study.final.summary import BASELINE_NAMES, CV
from study.report.final import interval_text, interval_xerr
from study.report.load import StudyResults, same_rows
from study.report.page import Section, frame_table, note_html, para_html, save_figure, section, verdict_html
from study.report.plots import BASELINE_COLOURS, FINAL_MODEL_COLOUR
from study.results import BEST_METRIC, FINAL_FILE, read_table


def _final(r: StudyResults) -> dict | None:
    return r.study["final"] if r.winner else None


def winner_folds(r: StudyResults) -> pd.DataFrame:
    """The final winner's CV rows (fold, n_held_out, macro_f1, auc), by fold."""
    rows = read_table(r.folder / FINAL_FILE)
    w = _final(r)["winner"]["trial_id"]
    return rows[(rows["split"] == CV) & (rows["candidate"] == w)].sort_values("fold").reset_index(drop=True)


def same_folds(a: StudyResults, b: StudyResults) -> str:
    """ "" when both final stages used the same folds (same rows by load.same_rows, as other tests), else why not."""
    same, why = same_rows(a, b)
    if not same:
        return why
    if _final(a)["folds"] != _final(b)["folds"]:
        return "their final stages used another number of folds"
    if list(winner_folds(a)["n_held_out"]) != list(winner_folds(b)["n_held_out"]):
        return "their folds hold different rows"
    return ""


def ranking(results: Mapping[str, StudyResults]) -> pd.DataFrame:
    """A row per study, those with a final stage first by CV mean, then the others by search score."""
    rows = []
    for label, r in results.items():
        f = _final(r)
        if f:
            w, cv = f["winner"], f["winner"]["cv"]
            test = (f.get("test") or {}).get("model") or {}
            better = f.get("better_baseline")
            rows.append(
                {
                    "study": label,
                    "final CV macro-F1": cv["mean"],
                    "CV [95% interval]": interval_text(cv),
                    "CV AUC": w["cv_auc"]["mean"],
                    "test macro-F1": test.get("macro_f1", math.nan),
                    "search score": w["search_score"],
                    "search − CV": f"{w['search_score'] - cv['mean']:+.4f}",
                    "strongest baseline (CV)": (
                        f"{BASELINE_NAMES[better]} {f['baselines'][better]['cv']['mean']:.4f}" if better else "-"
                    ),
                    "vs baseline": f["comparison"]["macro_f1"]["verdict"] if f.get("comparison") else "-",
                }
            )
        else:
            rows.append({"study": label, "final CV macro-F1": math.nan, "search score": r.trials[BEST_METRIC].max()})
    # the studies without a final stage have a NaN CV score, which sorts last
    return pd.DataFrame(rows).sort_values(["final CV macro-F1", "search score"], ascending=False, ignore_index=True)


def plot_final(results: Mapping[str, StudyResults]) -> Figure:
    """Each study's final CV estimate with its interval, and its strongest baseline's (hollow, in its colour)."""
    finals = {label: _final(r) for label, r in results.items() if _final(r)}
    fig = Figure(figsize=(7, 0.6 * len(finals) + 2.4), layout="constrained")
    ax = fig.subplots()
    shown = set()
    for i, f in enumerate(finals.values()):
        cv = f["winner"]["cv"]
        label_cv = "final model (CV, 95%)" if i == 0 else None
        ax.errorbar(cv["mean"], i, xerr=interval_xerr(cv), fmt="o", color=FINAL_MODEL_COLOUR, capsize=4, label=label_cv)
        better = f.get("better_baseline")
        if better:
            b = f["baselines"][better]["cv"]
            label = f"{BASELINE_NAMES[better]} (CV)" if better not in shown else None
            ax.plot(b["mean"], i, "o", mfc="none", color=BASELINE_COLOURS[better], label=label)
            shown.add(better)
    ax.set_yticks(np.arange(len(finals)), list(finals))
    ax.invert_yaxis()
    ax.set(xlabel="macro-F1", title="Final models, k-fold CV on every labelled row")
    ax.grid(axis="x", alpha=0.3)
    fig.legend(fontsize=8, loc="outside lower center", ncol=2)
    return fig


def final_section(results: Mapping[str, StudyResults], alpha: float, fig_dir: Path) -> Section:
    """The ranking, the figure and the paired fold tests of the studies' final models."""
    table = ranking(results)
    blocks = [frame_table(table, "Studies ranked by their final models' k-fold CV estimates")]
    finals = [label for label, r in results.items() if _final(r)]
    missing = [label for label in results if label not in finals]
    if missing:
        note = (
            f"No final stage in {', '.join(missing)}: only the search's own score is shown, the best of many "
            "tries on one split and so likely optimistic; rerun them with `--final-top 3` (or `--resume`) to "
            "rank them by CV."
        )
        blocks.append(note_html(note))
    if not finals:
        return section("final", "Final models", *blocks)
    blocks.append(save_figure(plot_final(results), fig_dir, "final", "Final CV estimates with 95% intervals"))
    tests, unpaired = [], []
    for a, b in itertools.combinations(finals, 2):
        why = same_folds(results[a], results[b])
        if why:
            unpaired.append(f"{a} and {b}: no paired test, {why}; compare their intervals.")
            continue
        fa, fb = winner_folds(results[a]), winner_folds(results[b])
        tests.append((a, b, paired(fa["macro_f1"], fb["macro_f1"], _final(results[a])["folds"], 1 - alpha)))
    adjusted = holm([t.p_value if math.isfinite(t.p_value) else 1.0 for *_, t in tests]) if tests else []
    for (a, b, t), p in zip(tests, adjusted, strict=True):
        verdict = ("better" if t.difference > 0 else "worse") if p < alpha else "not distinguishable"
        line = verdict_line(a, b, t).rsplit(":", 1)[0]
        text = f"{line}; Holm-adjusted p = {p:.3f} over {len(tests)} pair(s): {verdict}."
        blocks.append(verdict_html(text, verdict))
    blocks += [note_html(u) for u in unpaired]
    method = (
        "Studies whose final stages used the same folds are compared fold by fold (corrected paired t-test, "
        "Nadeau and Bengio's variance for k-fold CV); the intervals are 95% and take the folds' shared "
        "training rows into account."
    )
    return section("final", "Final models", *blocks, para_html(method))
