"""The final stage's answer from its rows: the `final` block of study.json and the lines that print it.

Here: each candidate's and baseline's CV estimate from the fold rows, the winner (the best complete CV mean) and
its paired comparison with the better baseline (`summarise_final`), the test-set block (`summarise_test`), the
headline figure, the answer in plain lines for the terminal, the names of the row splits and baselines, and
`Candidate`, a searched configuration the stage scores.
Pure functions of the rows: nothing here runs Ray or reads or writes a file. Not here: running the folds and
the final model (stage.py), the statistics (stats.py), the report's section (study/report/final.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from study.final.cv import SCORED_BY, SUMMARY_METRICS
from study.final.stats import cv_estimate, paired, verdict_line
from trainables.baseline import BASELINES

CV, TEST = "cv", "test"  # the `split` of a row
BASELINE_NAMES = {
    "tfidf_word": "TF-IDF (word 1-2-grams)",
    "tfidf_char": "TF-IDF (character 2-5-grams)",
    "tfidf_union": "TF-IDF (word and character n-grams)",
}
METRIC_NAMES = {"macro_f1": "macro-F1", "auc": "AUC"}


@dataclass(frozen=True)
class Candidate:
    """A searched configuration the final stage scores."""

    trial_id: str
    rank: int  # 1 = the search's best
    search_score: float  # its best validation macro-F1 in the search
    params: dict[str, Any]  # every hyperparameter of the trial (searched and fixed)


def _estimates(rows: pd.DataFrame, folds: int) -> dict[str, dict[str, Any]]:
    out = {}
    for name, g in rows.groupby("candidate", sort=False):
        g = g.sort_values("fold")
        metrics = (*SUMMARY_METRICS, "held_out_best_macro_f1")
        out[str(name)] = {m: vars(cv_estimate(g[m].to_numpy(dtype=float), folds)) for m in metrics} | {
            "folds_done": int(g["error"].isna().sum()),
            "errors": [e for e in g["error"] if e],
        }
    return out


def summarise_final(rows: pd.DataFrame, cands: Sequence[Candidate], folds: int) -> dict[str, Any]:
    """The `final` block of study.json from the CV rows: each candidate's estimate, the winner, the baselines.

    A candidate with a failed fold cannot win (its mean would hide the failure).
    """
    cv = rows[rows["split"] == CV]
    est = _estimates(cv, folds)
    table = [
        {
            "trial_id": c.trial_id,
            "rank": c.rank,
            "search_score": c.search_score,
            "params": c.params,
            "cv": e["macro_f1"],
            "cv_auc": e["auc"],
            "cv_held_out_epoch": e["held_out_best_macro_f1"],  # the old rule: optimistic
            "complete": e["folds_done"] == folds,
            "errors": e["errors"],
        }
        for c in cands
        if (e := est.get(c.trial_id)) is not None
    ]
    eligible = [t for t in table if t["complete"] and math.isfinite(t["cv"]["mean"])]
    winner = max(eligible, key=lambda t: (t["cv"]["mean"], -t["rank"])) if eligible else None
    baselines = {b: est[b] for b in BASELINES if b in est}
    better = max(baselines, key=lambda b: baselines[b]["macro_f1"]["mean"]) if baselines else None  # the strongest
    block: dict[str, Any] = {
        "folds": folds,
        "scored_by": SCORED_BY,
        "candidates": table,
        "baselines": {b: {"cv": e["macro_f1"], "cv_auc": e["auc"]} for b, e in baselines.items()},
        "better_baseline": better,
        "winner": None,
        "comparison": None,
    }
    if winner is None:
        return block
    mine = cv[cv["candidate"] == winner["trial_id"]].sort_values("fold")
    epochs = int(round(float(np.median(mine["best_epoch"].to_numpy(dtype=float)))))
    block["winner"] = {
        **winner,
        "epochs": max(1, epochs),
        "optimism": winner["search_score"] - winner["cv"]["mean"],  # the search's best over its CV estimate
    }
    if better is not None:
        theirs = cv[cv["candidate"] == better].sort_values("fold")
        shared = sorted(set(mine["fold"]) & set(theirs["fold"]))
        names = (f"trial {winner['trial_id']}", BASELINE_NAMES[better])
        comparison = {}
        for metric in ("macro_f1", "auc"):
            a = mine.set_index("fold").loc[shared, metric].to_numpy(dtype=float)
            b = theirs.set_index("fold").loc[shared, metric].to_numpy(dtype=float)
            result = paired(a, b, folds)
            comparison[metric] = {**vars(result), "line": verdict_line(*names, result, METRIC_NAMES[metric])}
        block["comparison"] = comparison
    return block


def summarise_test(rows: pd.DataFrame, winner: dict[str, Any] | None) -> dict[str, Any] | None:
    """The `test` block of study.json: the final model's and the baselines' scores on the test set, or None."""
    test = rows[rows["split"] == TEST]
    if not len(test):
        return None
    by = {str(r["candidate"]): {m: r[m] for m in SUMMARY_METRICS} for _, r in test.iterrows()}
    baselines = {b: by[b] for b in BASELINES if b in by}
    return {
        "n": int(test["n_held_out"].iloc[0]),
        "model": by.get(winner["trial_id"]) if winner else None,
        "baselines": baselines,
    }


def headline(block: dict[str, Any]) -> dict[str, Any] | None:
    """The study's answer in one figure: the final model on the test set when there is one, else its CV mean."""
    winner, test = block.get("winner"), block.get("test")
    if winner is None:
        return None
    if test and test.get("model"):
        return {"source": "test", "n": test["n"], **test["model"]}
    cv, auc = winner["cv"], winner["cv_auc"]["mean"]
    return {"source": "cv", "macro_f1": cv["mean"], "low": cv["low"], "high": cv["high"], "auc": auc}


def answer_lines(block: dict[str, Any], folder) -> list[str]:
    """The study's answer in a few plain lines, for the terminal: the search's best, the CV estimate, the baseline."""
    winner = block.get("winner")
    if winner is None:
        return ["Final stage: no configuration finished all its folds; there is no final model."]
    cv, gap, best = winner["cv"], winner["optimism"], block["candidates"][0]
    lines = [
        f"Search's best trial {best['trial_id']}: validation macro-F1 {best['search_score']:.4f} "
        "(the best of many tries on the split the search chose it on).",
        f"Final stage, {block['folds']}-fold CV on every labelled row: trial {winner['trial_id']} macro-F1 "
        f"{cv['mean']:.4f} [{cv['low']:.4f}, {cv['high']:.4f}] (95%; search score minus CV {gap:+.4f}; "
        f"{block['scored_by']}).",
    ]
    better = block.get("better_baseline")
    if better and block.get("comparison"):
        b = block["baselines"][better]["cv"]
        lines.append(f"Baseline {BASELINE_NAMES[better]}: macro-F1 {b['mean']:.4f} [{b['low']:.4f}, {b['high']:.4f}].")
        lines.append(block["comparison"]["macro_f1"]["line"])
    test = block.get("test")
    if test and test.get("model"):
        m = test["model"]
        base = "".join(f"; {BASELINE_NAMES[b]} {v['macro_f1']:.4f}" for b, v in test["baselines"].items())
        lines.append(
            f"Test set ({test['n']} tweets, never seen): macro-F1 {m['macro_f1']:.4f}, AUC {m['auc']:.4f}{base}."
        )
    if block.get("model"):
        lines.append(
            f"Model: {folder}/{block['model']}  ·  predict: python -m study.predict {folder} --input FILE --out FILE"
        )
    return lines
