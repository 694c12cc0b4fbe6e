"""The ablation report: `write_ablation_report` writes DIR/report.html and DIR/figures/*.png of an ablation.

It reads only what the ablation's files hold (ablation.json's plan and effects, ablation.parquet's rows): the
verdicts in plain words, a forest plot of every variant's change in macro-F1 and AUC against the base with its
interval, the effects table with the corrected and Holm-adjusted p-values, the mean learning curves per factor
and the cost of each variant. The statistics are study/ablation/effects.py's; the HTML blocks page.py's.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from study.ablation.effects import BASE, EFFECT_COLUMNS, mean_curves
from study.report.load import FIGURES_DIR, vector_size_used
from study.report.page import (
    frame_table,
    kv_table,
    note_html,
    para_html,
    save_figure,
    section,
    verdict_html,
    write_page,
)

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
VERDICT_COLOURS = {"better": "tab:green", "worse": "tab:red", "not distinguishable": "tab:gray"}
METRICS = (("macro_f1", "macro-F1"), ("auc", "AUC"))


def _interval(diff: float, low: float, high: float) -> str:
    if not math.isfinite(diff):
        return "—"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{diff:+.3f} (no interval)"
    return f"{diff:+.3f} [{low:+.3f}, {high:+.3f}]"


def effects_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The effects as the report shows them: intervals as text, p-values, the verdict and the relative cost."""
    return pd.DataFrame(
        {
            "variant": frame["variant"],
            "Δ macro-F1 [95% CI]": [
                _interval(*v) for v in frame[["macro_f1_diff", "macro_f1_low", "macro_f1_high"]].to_numpy(float)
            ],
            "p": frame["p"],
            "p (Holm)": frame["p_holm"],
            "Δ AUC [95% CI]": [_interval(*v) for v in frame[["auc_diff", "auc_low", "auc_high"]].to_numpy(float)],
            "AUC p": frame["auc_p"],
            "AUC p (Holm)": frame["auc_p_holm"],
            "verdict (macro-F1)": frame["verdict"],
            "paired folds": frame["pairs"],
            "fold time × base (median)": frame["time_ratio"],
        }
    )


def _estimate(e: dict[str, Any]) -> str:
    """A CV estimate from ablation.json as "0.392 [0.371, 0.413]"."""
    values = [e.get(k) for k in ("mean", "low", "high")]
    if values[0] is None:
        return "—"
    if None in values:
        return f"{values[0]:.3f} (no interval)"
    return "{:.3f} [{:.3f}, {:.3f}]".format(*values)


# own drawing, as every figure below: neither Optuna nor scikit-learn draws paired differences or ablations
def plot_effects(frame: pd.DataFrame, level: float) -> Figure:
    """A forest plot: each variant's change against the base with its interval, macro-F1 and AUC side by side."""
    n = len(frame)
    fig = Figure(figsize=(11, 0.42 * n + 1.9), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    y = np.arange(n)
    for ax, (metric, name) in zip(axes, METRICS, strict=True):
        diff = frame[f"{metric}_diff"].to_numpy(float)
        low, high = frame[f"{metric}_low"].to_numpy(float), frame[f"{metric}_high"].to_numpy(float)
        colours = [VERDICT_COLOURS.get(v, "k") for v in frame["verdict"]]
        for i in range(n):
            if not math.isfinite(diff[i]):
                continue
            if math.isfinite(low[i]) and math.isfinite(high[i]):
                ax.plot([low[i], high[i]], [y[i], y[i]], color=colours[i], lw=2)
            ax.plot(diff[i], y[i], "o", color=colours[i], ms=6)
        ax.axvline(0, color="k", lw=1)
        ax.set_xlabel(f"{name}: variant − base ({level:.0%} interval over paired folds)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, frame["variant"], fontsize=8)
    axes[0].invert_yaxis()
    handles = [axes[1].plot([], [], "o-", color=c, label=v)[0] for v, c in VERDICT_COLOURS.items()]
    axes[1].legend(handles=handles, title="verdict on macro-F1 (Holm)", fontsize=8, loc="best")
    fig.suptitle("Change against the base, one factor at a time")
    return fig


def curves_by_factor(rows: pd.DataFrame, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per factor, the mean held-out macro-F1 per epoch of the base and of that factor's variants."""
    curves = mean_curves(rows)
    out = {}
    for factor, g in frame.groupby("factor", sort=False):
        names = [BASE, *g["variant"]]
        part = curves[curves["variant"].isin(names)]
        if len(part):
            out[str(factor)] = part.assign(_o=part["variant"].map(names.index)).sort_values(["_o", "epoch"])
    return out


def plot_learning_curves(by_factor: dict[str, pd.DataFrame]) -> Figure:
    """One panel per factor: the base (black) and its variants, mean held-out macro-F1 per epoch."""
    cols = min(3, len(by_factor))
    rows = math.ceil(len(by_factor) / cols)
    fig = Figure(figsize=(4.2 * cols + 1, 3.3 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (factor, curves) in zip(axes, by_factor.items(), strict=False):
        for i, (name, g) in enumerate(curves.groupby("variant", sort=False)):
            style = {"color": "k", "lw": 2} if name == BASE else {"color": f"C{i % 10}", "lw": 1.3}
            ax.plot(g["epoch"], g["f1"], "o-", ms=3, label=name, **style)
        ax.set_title(factor, fontsize=10)
        ax.set(xlabel="epoch", ylabel="held-out macro-F1 (mean)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for ax in axes[len(by_factor) :]:
        ax.set_visible(False)
    return fig


def plot_cost(frame: pd.DataFrame, base_time_s: float | None) -> Figure:
    """Each variant's fold time relative to the base's, the median over the paired folds (1 = as costly)."""
    n = len(frame)
    fig = Figure(figsize=(8, 0.36 * n + 1.6), layout="constrained")
    ax = fig.subplots()
    ratio = frame["time_ratio"].to_numpy(float)
    ax.barh(np.arange(n), np.nan_to_num(ratio), color=["tab:orange" if r > 1 else "tab:blue" for r in ratio])
    ax.axvline(1, color="k", lw=1)
    ax.set_yticks(np.arange(n), frame["variant"], fontsize=8)
    ax.invert_yaxis()
    per_base = f" (base: {base_time_s:.1f} s per fold)" if base_time_s else ""
    ax.set_xlabel(f"fold time × the base's, median over paired folds{per_base}")
    ax.grid(axis="x", alpha=0.3)
    return fig


def _settings(info: dict[str, Any]) -> dict[str, Any]:
    plan, source = info["plan"], info.get("base_from") or {}
    winner = source.get("winner")
    changes = " ".join(f"{k}={v}" for k, v in (source.get("changes") or {}).items())
    if winner:
        changed = f", changed by --base {changes}" if changes else ""
        origin = f"trial {winner['trial_id']}, the final stage's winner{changed}"
    else:
        origin = f"no final stage: the space's fixed settings and --base {changes}"
    data, resources = plan["data"], info["resources"]
    return {
        "study": plan["study"],
        "base": origin,
        "folds × repeats": f"{plan['folds']} × {info['repeats']} (repeat r: folds seeded {plan['data_seed']} + r, "
        f"models {plan['seed']} + r)",
        "epochs per fold": f"{plan['max_epochs']} (a fold scores its best epoch by held-out macro-F1)",
        "labelled rows": plan["labelled_rows"],
        "classes": ", ".join(plan["classes"]),
        "data": data.get("train") or f"the built-in demo data ({data.get('demo_rows')} rows)",
        "word vectors": _vectors(data, plan["base"]),
        "resources per fold task": f"{resources['cpus_per_task']:g} CPU, {resources['gpus_per_task']:g} GPU",
        "fold runs": f"{info.get('rows_done')} ({info.get('errors', 0)} failed)",
        "wall time of the last run": f"{info.get('wall_time_s', 0):.0f} s",
    }


def _vectors(data: dict[str, Any], base: dict[str, Any]) -> str:
    """The word vectors as the folds used them: a searched representation in the base wins over the settings."""
    if data.get("vectors"):
        return f"pretrained, from {data['vectors']}"
    used = {**data, **{k: base[k] for k in ("vectorizer", "vector_size") if base.get(k) is not None}}
    return f"{used.get('vectorizer')}, {vector_size_used(used)}-d, trained per fold on its training rows"


def write_ablation_report(out: Path, info: dict[str, Any], rows: pd.DataFrame) -> Path:
    """Write `out/report.html` and `out/figures/*.png` from ablation.json's content and the rows; returns the path."""
    frame = pd.DataFrame(info["effects"], columns=EFFECT_COLUMNS)
    fig_dir = out / FIGURES_DIR
    plan = info["plan"]
    variants = len(frame)
    reading = para_html(
        f"Each variant changes one factor of the base. Both ran on the same {plan['folds']} stratified folds "
        f"(× {info['repeats']} repeats), with the same word vectors per fold and the same seeds, so they are compared "
        "fold by fold. A line gives the mean change against the base and its 95% interval (Nadeau-Bengio "
        "corrected variance, since folds share training rows), for macro-F1 and AUC, then the corrected paired "
        f"t-test's p and that p after Holm's correction for the {variants} variants. The verdict is better or "
        "worse when macro-F1's Holm-adjusted p is below 0.05, else not distinguishable: an interval that "
        "misses 0 can still be not distinguishable once the number of variants is accounted for."
    )
    base_score = info.get("base_score") or {}
    score = {f"base {name}": _estimate(base_score.get(metric) or {}) for metric, name in METRICS}
    blocks = [verdict_html(line, v) for line, v in zip(frame["line"], frame["verdict"], strict=True)] or [
        note_html("No variant has a finished fold yet.")
    ]
    effects = "Change in macro-F1 and AUC against the base, with 95% intervals over the paired folds"
    sections = [
        section("verdicts", "Verdicts", *blocks, reading),
        section(
            "effects",
            "Effects",
            save_figure(plot_effects(frame, level=0.95), fig_dir, "effects", effects),
            frame_table(effects_table(frame), "Every variant against the base"),
        ),
        section(
            "base",
            "Base and settings",
            kv_table(score, "The base's cross-validated score (mean [95% interval])"),
            kv_table(plan["base"], "The base configuration"),
            kv_table(_settings(info), "How the ablation ran"),
        ),
    ]
    by_factor = curves_by_factor(rows, frame)
    if by_factor:
        caption = "Held-out macro-F1 per epoch, mean over folds and repeats: the base (black), each factor's variants"
        figure = save_figure(plot_learning_curves(by_factor), fig_dir, "curves", caption)
        sections.append(section("curves", "Learning curves", figure))
    cost = frame[["variant", "time_ratio"]].rename(columns={"time_ratio": "fold time × base (median of folds)"})
    caption = "Fold time of each variant relative to the base's: the median over the folds both finished"
    sections.append(
        section(
            "cost",
            "Cost",
            save_figure(plot_cost(frame, info.get("base_fold_time_s")), fig_dir, "cost", caption),
            frame_table(cost, "Relative cost (fold time includes training and scoring, not the word vectors)"),
            note_html(
                "Fold times come from tasks that ran side by side on shared machines; they compare variants, "
                "they are no benchmark. The median over folds leaves out the seconds the first task in each "
                "worker process spends setting torch up."
            ),
        )
    )
    failed = rows[rows["error"].notna()]
    if len(failed):
        sections.append(
            section(
                "errors",
                "Failed folds",
                note_html(f"{len(failed)} fold runs failed; they are left out of the pairs."),
                frame_table(failed[["variant", "repeat", "fold", "error"]], "Failed fold runs"),
            )
        )
    path = out / REPORT_FILE
    subtitle = f"{plan['study']} · {variants} variants · {plan['folds']} folds × {info['repeats']} repeats"
    write_page(path, "Ablation", subtitle, sections)
    log.info("Writing ablation report <path=%s>", path)
    return path
