"""The report's first section, "Final model": what the study found, scored where the search never chose.

From study.json's `final` block and final.parquet (study/final.py writes both): the search's best score (marked
optimistic), the k-fold CV estimate of the winner with its interval, the better baseline fold by fold with the
paired verdict, the test score when the study held out a test set, and the command that applies the model.
Both figures are the report's own drawing: no library plots CV estimates against search scores or paired folds.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from study.final_summary import BASELINE_NAMES, CV
from study.report.load import StudyResults
from study.report.page import Section, frame_table, grid_html, kv_table, note_html, save_figure, verdict_html
from study.results import FINAL_FILE, read_table

TITLE = "Final model"


def _interval(e: dict[str, Any]) -> str:
    low = e.get("low")
    if low is None or not math.isfinite(low):
        return f"{e['mean']:.4f}"
    return f"{e['mean']:.4f} [{e['low']:.4f}, {e['high']:.4f}]"


def plot_promise(block: dict[str, Any]) -> Figure:
    """Each candidate's search score against its CV estimate (with interval), and the baselines' estimates."""
    fig = Figure(figsize=(8, 0.6 * len(block["candidates"]) + 2.4), layout="constrained")
    ax = fig.subplots()
    names = [f"trial {c['trial_id']} (#{c['rank']})" for c in block["candidates"]]
    y = np.arange(len(names))
    for i, c in enumerate(block["candidates"]):
        cv = c["cv"]
        ax.errorbar(
            cv["mean"],
            i,
            xerr=[[cv["mean"] - cv["low"]], [cv["high"] - cv["mean"]]] if math.isfinite(cv["low"]) else None,
            fmt="o",
            color="C0",
            capsize=4,
            label="k-fold CV (95%)" if i == 0 else None,
        )
        ax.plot(c["search_score"], i, "x", color="C3", ms=9, label="search score (optimistic)" if i == 0 else None)
    for j, (name, b) in enumerate(block["baselines"].items()):
        ax.axvspan(b["cv"]["low"], b["cv"]["high"], color=f"C{2 + j}", alpha=0.15)
        ax.axvline(b["cv"]["mean"], color=f"C{2 + j}", ls="--", label=f"{BASELINE_NAMES[name]} (CV, 95%)")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("macro-F1")
    ax.set_title("What the search promised, and what k-fold CV found")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig


def plot_folds(rows: pd.DataFrame, winner: str, baseline: str) -> Figure:
    """The winner and the better baseline, fold by fold: the pairs the verdict is drawn from."""
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.subplots()
    cv = rows[rows["split"] == CV]
    for name, label, colour in ((winner, f"trial {winner}", "C0"), (baseline, BASELINE_NAMES[baseline], "C2")):
        g = cv[cv["candidate"] == name].sort_values("fold")
        ax.plot(g["fold"], g["macro_f1"], "o-", color=colour, label=label)
    ax.set_xlabel("fold")
    ax.set_ylabel("held-out macro-F1")
    ax.set_xticks(sorted(cv["fold"].unique()))
    ax.set_title("Fold by fold: the final model's configuration against the baseline")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def final_section(results: StudyResults, fig_dir: Path) -> Section:
    """The "Final model" section; a note where the study ran no final stage."""
    block = results.study.get("final")
    if not block or not block.get("winner"):
        why = (
            "its final stage found no configuration that finished every fold"
            if block
            else "it ran without a final stage (`--final-top 0`, an interrupted stage, or an earlier version)"
        )
        return Section(
            "final",
            TITLE,
            (
                note_html(
                    f"This study has no final model: {why}. The best validation score below is the search's own "
                    "pick on one split, so it is optimistic; rerun with `--resume NAME` (an interrupted stage) or "
                    "`--final-top 3` for an estimate that holds on data the search never chose on."
                ),
            ),
        )
    w, test = block["winner"], block.get("test")
    better = block.get("better_baseline")
    answer = {"configuration": f"trial {w['trial_id']} (#{w['rank']} in the search), {w['epochs']} epochs"}
    if test and test.get("model"):
        answer[f"test set ({test['n']} tweets, never seen)"] = (
            f"macro-F1 {test['model']['macro_f1']:.4f}, AUC {test['model']['auc']:.4f}"
        )
    answer[f"{block['folds']}-fold CV, every labelled row (95%)"] = f"macro-F1 {_interval(w['cv'])}"
    answer["CV AUC"] = _interval(w["cv_auc"])
    answer["the search's validation score (optimistic)"] = f"{w['search_score']:.4f} ({w['optimism']:+.4f} over CV)"
    if better:
        answer[f"baseline: {BASELINE_NAMES[better]} (CV, 95%)"] = (
            f"macro-F1 {_interval(block['baselines'][better]['cv'])}"
        )
    if test and test.get("baselines"):
        for name, v in test["baselines"].items():
            answer[f"{BASELINE_NAMES[name]} on the test set"] = f"macro-F1 {v['macro_f1']:.4f}"
    folder = results.folder
    answer["predict with it"] = f"python -m study.predict {folder} --input FILE --out FILE"
    candidates = pd.DataFrame(
        [
            {
                "rank": c["rank"],
                "trial": c["trial_id"],
                "search score": c["search_score"],
                "CV macro-F1 [95%]": _interval(c["cv"]),
                "CV AUC": c["cv_auc"]["mean"],
                "all folds": "yes" if c["complete"] else "no: " + "; ".join(c["errors"])[:200],
            }
            for c in block["candidates"]
        ]
    )
    blocks = [grid_html(kv_table(answer, "The study's answer"))]
    if block.get("comparison"):
        blocks += [verdict_html(block["comparison"][m]["line"]) for m in ("macro_f1", "auc")]
    blocks += [
        save_figure(plot_promise(block), fig_dir, "final_promise", "Search scores against k-fold CV estimates"),
        frame_table(candidates, "The candidates of the final stage"),
    ]
    if better and (folder / FINAL_FILE).is_file():
        rows = read_table(folder / FINAL_FILE)
        blocks.append(
            save_figure(plot_folds(rows, w["trial_id"], better), fig_dir, "final_folds", "Paired folds of the verdict")
        )
    return Section("final", TITLE, tuple(blocks))
