"""The report's first section, "Final model": what the study found, scored where the search never chose.

From study.json's `final` block and final.parquet (study/final/stage.py writes both): the saved model's configuration
and settings, its k-fold CV estimate with its interval beside its search score (their difference signed), the
baselines on the same folds, the strongest fold by fold with the paired verdict (its box coloured by it), the
test score when the study held out a test set, and the command that applies the model; and the header's line.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from study.final.summary import BASELINE_NAMES, CV
from study.report.load import StudyResults, searched_params
from study.report.page import Section, frame_table, grid_html, kv_table, note_html, save_figure, section, verdict_html
from study.report.plots import BASELINE_COLOURS, FINAL_MODEL_COLOUR
from study.results import FINAL_FILE, read_table

TITLE = "Final model"
MIN_INTERVAL_FOLDS = 3  # with 2 folds the t quantile (12.7) stretches the interval over all of [0, 1]
OTHER_CANDIDATE_COLOUR = "tab:gray"


def usable_interval(e: dict[str, Any]) -> bool:
    """Whether a CV estimate's interval says anything: finite, from enough folds, and not all of [0, 1]."""
    low, high, n = e.get("low"), e.get("high"), e.get("n")
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return False
    return (n is None or n >= MIN_INTERVAL_FOLDS) and not (low <= 0 and high >= 1)


def interval_text(e: dict[str, Any]) -> str:
    """A CV estimate as "0.3920 [0.3420, 0.4420]", or its mean and why it has no usable interval."""
    if usable_interval(e):
        return f"{e['mean']:.4f} [{e['low']:.4f}, {e['high']:.4f}]"
    n = e.get("n")
    return f"{e['mean']:.4f} (no usable interval from {n} folds)" if n else f"{e['mean']:.4f} (no interval)"


def interval_xerr(e: dict[str, Any]) -> list[list[float]] | None:
    """A CV estimate's interval as matplotlib's `xerr`, or None where it has no usable one."""
    return [[e["mean"] - e["low"]], [e["high"] - e["mean"]]] if usable_interval(e) else None


def _folds(block: dict[str, Any]) -> int:
    return int(block.get("folds") or block["winner"]["cv"]["n"])


def headline_text(block: dict[str, Any] | None) -> str:
    """The header's line: the final model's headline score beside the strongest baseline's, and the verdict."""
    head = (block or {}).get("headline")
    if not head:
        return ""
    better, test = block.get("better_baseline"), block.get("test") or {}
    on_test = head["source"] == "test"
    where = f"test set, {head['n']} tweets" if on_test else f"{_folds(block)}-fold CV"
    text = f"final model macro-F1 {head['macro_f1']:.4f} ({where})"
    if better:
        on_test_too = (test.get("baselines") or {}).get(better) if on_test else None
        if on_test_too:
            base = f"{on_test_too['macro_f1']:.4f}"
        else:
            base = f"{block['baselines'][better]['cv']['mean']:.4f}" + (" (CV)" if on_test else "")
        text += f" against {BASELINE_NAMES[better]} {base}"
    comparison = (block.get("comparison") or {}).get("macro_f1")
    if comparison:
        text += f" · on the CV folds: {comparison['verdict']}"
    return text


# own drawing, as every figure below: no library plots CV estimates against search scores or paired folds
def plot_promise(block: dict[str, Any]) -> Figure:
    """Each candidate's search score against its CV estimate (with interval), and the baselines' estimates."""
    cands, winner = block["candidates"], block["winner"]["trial_id"]
    fig = Figure(figsize=(8, 0.6 * len(cands) + 3.2), layout="constrained")
    ax = fig.subplots()
    for i, c in enumerate(cands):
        colour = FINAL_MODEL_COLOUR if c["trial_id"] == winner else OTHER_CANDIDATE_COLOUR
        ax.errorbar(c["cv"]["mean"], i, xerr=interval_xerr(c["cv"]), fmt="o", color=colour, capsize=4)
        ax.plot(c["search_score"], i, "x", color="k", ms=9)
        if c.get("cv_held_out_epoch"):
            ax.plot(c["cv_held_out_epoch"]["mean"], i, "o", mfc="none", color=colour, ms=9)
    for name, b in block["baselines"].items():
        if usable_interval(b["cv"]):
            ax.axvspan(b["cv"]["low"], b["cv"]["high"], color=BASELINE_COLOURS[name], alpha=0.12)
        ax.axvline(b["cv"]["mean"], color=BASELINE_COLOURS[name], ls="--")
    handles = [Line2D([], [], marker="o", color=FINAL_MODEL_COLOUR, label="the final model's configuration: CV")]
    if len(cands) > 1:
        handles.append(Line2D([], [], marker="o", color=OTHER_CANDIDATE_COLOUR, label="another candidate: CV"))
    handles.append(Line2D([], [], marker="x", ls="", color="k", label="search score (validation split)"))
    if any(c.get("cv_held_out_epoch") for c in cands):  # also scored by the old rule
        label = "CV, each fold's epoch chosen on that fold (optimistic)"
        handles.append(Line2D([], [], marker="o", mfc="none", ls="", color="k", label=label))
    handles += [
        Line2D([], [], color=BASELINE_COLOURS[n], ls="--", label=f"{BASELINE_NAMES[n]}: CV") for n in block["baselines"]
    ]
    names = [f"trial {c['trial_id']} (#{c['rank']})" + (" saved" if c["trial_id"] == winner else "") for c in cands]
    ax.set_yticks(np.arange(len(cands)), names)
    ax.invert_yaxis()
    ax.set_xlabel("macro-F1 (bars and bands: 95% intervals where the folds give one)")
    ax.set_title("What the search promised, and what k-fold CV found")
    ax.grid(axis="x", alpha=0.3)
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=8)  # below: it covers no trial
    return fig


def plot_folds(rows: pd.DataFrame, winner: str, baseline: str) -> Figure:
    """The winner and the strongest baseline, fold by fold: the pairs the verdict is drawn from."""
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.subplots()
    cv = rows[rows["split"] == CV]
    lines = ((winner, f"trial {winner} (saved model)", FINAL_MODEL_COLOUR), (baseline, None, None))
    for name, label, colour in lines:
        g = cv[cv["candidate"] == name].sort_values("fold")
        label, colour = label or BASELINE_NAMES[name], colour or BASELINE_COLOURS[name]
        ax.plot(g["fold"], g["macro_f1"], "o-", color=colour, label=label)
    ax.set(xlabel="fold", ylabel="held-out macro-F1", xticks=sorted(cv["fold"].unique()))
    ax.set_title("Fold by fold: the final model's configuration against the strongest baseline")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_fold_curves(rows: pd.DataFrame, winner: str) -> Figure:
    """The winner's macro-F1 per epoch in each CV fold: on the held-out fold (solid) and, where final.parquet has
    it, on the inner validation split the fold's epoch was chosen on (dashed); each fold's chosen epoch marked."""
    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    mine = rows[(rows["split"] == CV) & (rows["candidate"] == winner)].sort_values("fold")
    for i, r in enumerate(mine.itertuples(index=False)):
        if r.curve is None:  # a failed fold
            continue
        colour = f"C{i % 10}"
        curve = np.asarray(r.curve, dtype=float)
        ax.plot(np.arange(1, len(curve) + 1), curve, "o-", ms=3, color=colour, label=f"fold {r.fold}")
        inner = getattr(r, "inner_curve", None)
        if inner is not None and len(inner):
            ax.plot(np.arange(1, len(inner) + 1), inner, "--", color=colour, alpha=0.7, lw=1)
        if pd.notna(r.best_epoch) and 1 <= r.best_epoch <= len(curve):
            ax.plot(r.best_epoch, curve[int(r.best_epoch) - 1], "*", ms=12, color=colour, mec="k")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel="macro-F1")
    ax.set_title(f"Trial {winner} in each CV fold: held-out (solid), inner validation (dashed), chosen epoch (star)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return fig


def _settings(results: StudyResults, winner: dict[str, Any]) -> list[tuple[str, Any]]:
    """The saved model's hyperparameters, searched ones first, then the fixed ones, then its epochs."""
    params, searched = winner["params"], searched_params(results)
    rows = [(k, params[k]) for k in searched if k in params]
    rows += [(f"{k} (fixed)", v) for k, v in params.items() if k not in searched]
    return [*rows, ("epochs (retrained on every labelled row)", winner["epochs"])]


def _candidates(block: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for c in block["candidates"]:
        row = {
            "rank": c["rank"],
            "trial": c["trial_id"] + (" (saved model)" if c["trial_id"] == block["winner"]["trial_id"] else ""),
            "search score": c["search_score"],
            "CV macro-F1 [95%]": interval_text(c["cv"]),
            "search − CV": f"{c['search_score'] - c['cv']['mean']:+.4f}",
        }
        if c.get("cv_held_out_epoch"):
            row["CV, epoch chosen on the held-out fold (old rule: optimistic)"] = c["cv_held_out_epoch"]["mean"]
        row["CV AUC"] = c["cv_auc"]["mean"]
        if "complete" in c:
            row["all folds"] = "yes" if c["complete"] else "no: " + "; ".join(c.get("errors") or [])[:200]
        rows.append(row)
    return pd.DataFrame(rows)


def _baselines(block: dict[str, Any]) -> pd.DataFrame:
    test = (block.get("test") or {}).get("baselines") or {}
    return pd.DataFrame(
        [
            {
                "baseline": BASELINE_NAMES[name] + (" (strongest)" if name == block.get("better_baseline") else ""),
                "CV macro-F1 [95%]": interval_text(b["cv"]),
                "CV AUC [95%]": interval_text(b["cv_auc"]),
                **({"test macro-F1": test[name]["macro_f1"]} if name in test else {}),
            }
            for name, b in block["baselines"].items()
        ]
    )


def final_section(results: StudyResults, fig_dir: Path) -> Section:
    """The "Final model" section; a note where the study ran no final stage."""
    block = results.study.get("final")
    if not block or not block.get("winner"):
        why = (
            "its final stage found no configuration that finished every fold"
            if block
            else "it ran without a final stage (`--final-top 0`, or an interrupted stage)"
        )
        note = (
            f"This study has no final model: {why}. The best validation score below is the search's own pick on one "
            "split, the best of many tries, so likely optimistic; rerun with `--resume NAME` (an interrupted stage) "
            "or `--final-top 3` for an estimate that holds on data the search never chose on."
        )
        return section("final", TITLE, note_html(note))
    w, test, folder = block["winner"], block.get("test"), results.folder
    better, folds = block.get("better_baseline"), _folds(block)
    saved = f"trial {w['trial_id']} (#{w['rank']} in the search), retrained on every labelled row"
    answer: dict[str, Any] = {"saved model": saved}
    if block.get("model"):
        answer["saved in"] = str(folder / block["model"])
    if test and test.get("model"):
        answer[f"test set ({test['n']} tweets, never seen)"] = (
            f"macro-F1 {test['model']['macro_f1']:.4f}, AUC {test['model']['auc']:.4f}"
        )
    answer[f"{folds}-fold CV, every labelled row (95%)"] = f"macro-F1 {interval_text(w['cv'])}"
    answer["CV AUC (95%)"] = interval_text(w["cv_auc"])
    gap = w["search_score"] - w["cv"]["mean"]
    side = "above" if gap > 0 else "below" if gap < 0 else "equal to"
    answer["its search score (validation split)"] = (
        f"{w['search_score']:.4f}, search − CV = {gap:+.4f} ({side} the CV estimate)"
    )
    best = min(block["candidates"], key=lambda c: c["rank"])
    if best["trial_id"] != w["trial_id"]:
        answer["the search's best (not saved)"] = (
            f"trial {best['trial_id']}: search score {best['search_score']:.4f}, CV {interval_text(best['cv'])}"
        )
    if better:
        answer[f"strongest baseline: {BASELINE_NAMES[better]} (CV, 95%)"] = (
            f"macro-F1 {interval_text(block['baselines'][better]['cv'])}"
        )
    for name, v in ((test or {}).get("baselines") or {}).items():
        answer[f"{BASELINE_NAMES[name]} on the test set"] = f"macro-F1 {v['macro_f1']:.4f}"
    if block.get("scored_by"):
        answer["each fold's epoch"] = block["scored_by"]
    answer["predict with it"] = f"python -m study.predict {folder} --input FILE --out FILE"
    blocks = [
        *(verdict_html(c["line"], c["verdict"]) for c in (block.get("comparison") or {}).values()),
        grid_html(
            kv_table(answer, "The study's answer"), kv_table(_settings(results, w), "The saved model's settings")
        ),
    ]
    if folds < MIN_INTERVAL_FOLDS:
        few = (
            f"{folds} folds give no usable 95% interval: {folds} scores say next to nothing about their spread, "
            "so an interval (t with one degree of freedom) is either most of [0, 1] or falsely narrow, and the "
            "verdicts have little power. Run the final stage with `--final-folds 5` for one."
        )
        blocks.append(note_html(few))
    blocks += [
        save_figure(plot_promise(block), fig_dir, "final_promise", "Search scores against k-fold CV estimates"),
        frame_table(_candidates(block), "The candidates of the final stage"),
        frame_table(_baselines(block), "The baselines, on the same folds"),
    ]
    if (folder / FINAL_FILE).is_file():
        rows = read_table(folder / FINAL_FILE)
        if better:
            figure = plot_folds(rows, w["trial_id"], better)
            blocks.append(save_figure(figure, fig_dir, "final_folds", "Paired folds of the verdict"))
        if rows.loc[(rows["candidate"] == w["trial_id"]) & (rows["split"] == CV), "curve"].notna().any():
            caption = f"Trial {w['trial_id']} per epoch in each CV fold, and the epoch each fold chose"
            blocks.append(save_figure(plot_fold_curves(rows, w["trial_id"]), fig_dir, "final_curves", caption))
    return section("final", TITLE, *blocks)
