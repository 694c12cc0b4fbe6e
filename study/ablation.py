"""Ablations: what one change to a base configuration is worth, with a paired interval over the same folds.

A plan is the base configuration and its variants, each changing exactly one factor (a hyperparameter). Every
variant and the base run on the same stratified folds with the same per-fold Word2Vec and the same seeds (the
final stage's fold tasks, study/final.py), `repeats` times with fold splits and seeds moved on by the repeat.
Each variant is then compared with the base fold by fold (study/cvstats.py), with Holm's correction for the
number of variants.

Here: planning (pure), running (Ray, resumable through the rows already written) and the analysis (pure).
Not here: the command line (study/ablate.py), the HTML report (study/report/).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from study.config import ConfigError, convert_value, field_types
from study.cvstats import holm, paired
from study.final import CV, Candidate, FinalPlan, run_cv
from trainables.train import HParams

ABLATION_FILE = "ablation.parquet"
BASE = "base"
# Factors an ablation may vary: the network and its training, not where or how long it runs.
FACTORS = tuple(f.name for f in fields(HParams) if f.name not in ("seed", "device", "num_threads", "max_epochs"))
# The original work's experiments, one factor at a time (values equal to the base's are skipped).
ORIGINAL_PRESET: dict[str, tuple[Any, ...]] = {
    "cell": ("rnn", "lstm", "gru"),
    "hidden_size": (16, 32, 64, 128),
    "num_layers": (1, 2, 3),
    "dropout": (0.0, 0.3, 0.5),
    "skip": (True, False),
    "clip": (0.0, 1.0, 5.0),
    "attention": (True, False),
}
PRESETS = {"original": ORIGINAL_PRESET}
ABLATION_SCHEMA = pa.schema(
    [
        ("variant", pa.string()),  # "base" or "factor=value"
        ("factor", pa.string()),  # null for the base
        ("value", pa.string()),  # the factor's value, as typed
        ("repeat", pa.int64()),  # 0-based
        ("fold", pa.int64()),  # 1-based
        ("n_train", pa.int64()),
        ("n_held_out", pa.int64()),
        ("macro_f1", pa.float64()),
        ("auc", pa.float64()),
        ("accuracy", pa.float64()),
        ("loss", pa.float64()),
        ("best_epoch", pa.int64()),
        ("epochs", pa.int64()),
        ("curve", pa.list_(pa.float64())),  # held-out macro-F1 per epoch
        ("started_at", pa.float64()),
        ("finished_at", pa.float64()),
        ("time_s", pa.float64()),
        ("hostname", pa.string()),
        ("error", pa.string()),
    ]
)


@dataclass(frozen=True)
class Variant:
    name: str  # "base" or "factor=value"
    factor: str | None
    value: Any
    params: dict[str, Any]  # the base's hyperparameters with this one change


def _typed(factor: str, text: Any) -> Any:
    kind = field_types(HParams)[factor]
    return convert_value(factor, text, kind, f"--vary {factor}")


def _check_params(params: dict[str, Any], what: str) -> None:
    try:
        HParams(**params)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{what}: {e}") from None


def parse_vary(items: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    """`--vary factor=v1,v2` items as {factor: typed values}.

    Raises:
        ConfigError: an item without `=`, an unknown factor, a factor given twice or a value of the wrong type.
    """
    out: dict[str, tuple[Any, ...]] = {}
    for item in items:
        factor, sep, values = item.partition("=")
        factor = factor.strip().replace("-", "_")
        if not sep or not values.strip():
            raise ConfigError(f"`--vary` items must have the form factor=v1,v2 (e.g. cell=rnn,gru), but got {item!r}.")
        if factor not in FACTORS:
            raise ConfigError(f"`--vary` factors must be among {', '.join(FACTORS)}, but got `{factor}`.")
        if factor in out:
            raise ConfigError(f"`--vary` must give each factor once, but `{factor}` is given twice.")
        out[factor] = tuple(_typed(factor, v.strip()) for v in values.split(",") if v.strip())
    return out


def plan_variants(base: dict[str, Any], vary: dict[str, Sequence[Any]]) -> list[Variant]:
    """The base and one variant per (factor, value) that differs from the base, in the order given.

    Raises:
        ConfigError: the base, or a variant, is not a valid configuration (e.g. `dropout=1.5`).
    """
    _check_params(base, "the base configuration")
    variants = [Variant(BASE, None, None, dict(base))]
    defaults = HParams()
    for factor, values in vary.items():
        for value in values:
            if value == base.get(factor, getattr(defaults, factor)):
                continue
            params = {**base, factor: value}
            name = f"{factor}={str(value).lower() if isinstance(value, bool) else value}"
            _check_params(params, f"the variant {name}")
            variants.append(Variant(name, factor, value, params))
    if len(variants) == 1:
        raise ConfigError("`--vary` leaves nothing to compare: every value given equals the base's; give other values.")
    return variants


def run_ablation(
    plan: FinalPlan,
    variants: Sequence[Variant],
    repeats: int,
    labelled,
    unlabelled: Sequence[str],
    clean,
    vectors,
    cache_dir,
    done_rows: pd.DataFrame,
    on_row: Callable[[dict[str, Any]], None],
) -> None:
    """Every (variant, repeat, fold) not in `done_rows`, as parallel Ray fold tasks; rows go to `on_row`.

    Repeat r splits the folds with `data_seed + r` and seeds the models with `seed + r`, the same for every
    variant, so variant and base are paired within a repeat.
    """
    by_name = {v.name: v for v in variants}
    for r in range(repeats):
        mine = done_rows[done_rows["repeat"] == r] if len(done_rows) else done_rows
        done = {(str(v), CV, int(k)) for v, k in zip(mine.get("variant", []), mine.get("fold", []), strict=False)}
        seed = int(plan.fixed.get("seed", 0)) + r
        repeat_plan = replace(plan, data_seed=plan.data_seed + r, fixed={**plan.fixed, "seed": seed})
        cands = [Candidate(v.name, i, math.nan, v.params) for i, v in enumerate(variants)]

        def row(values: dict[str, Any], r: int = r) -> None:
            v = by_name[values["candidate"]]
            value = None if v.factor is None else str(v.value).lower() if isinstance(v.value, bool) else str(v.value)
            keep = {k: values.get(k) for k in ABLATION_SCHEMA.names}
            on_row({**keep, "variant": v.name, "factor": v.factor, "value": value, "repeat": r})

        run_cv(repeat_plan, cands, labelled, unlabelled, clean, vectors, cache_dir, done, row, baselines=())


@dataclass(frozen=True)
class Effect:
    variant: str
    factor: str
    value: str
    f1: Any  # cvstats.Paired of macro-F1, variant - base
    auc: Any  # cvstats.Paired of AUC
    p_adjusted: float  # macro-F1 p-value after Holm's correction over the variants
    verdict: str  # "better" | "not distinguishable" | "worse", at the corrected p-value
    time_ratio: float  # the variant's mean fold time over the base's

    def line(self) -> str:
        """One plain-words line, e.g. "attention=false: −0.012 [−0.020, −0.004] macro-F1 ..., worse"."""
        if not math.isfinite(self.f1.difference):
            return f"{self.variant}: no folds shared with the base."
        return (
            f"{self.variant}: {self.f1.difference:+.3f} [{self.f1.low:+.3f}, {self.f1.high:+.3f}] macro-F1, "
            f"AUC {self.auc.difference:+.3f} [{self.auc.low:+.3f}, {self.auc.high:+.3f}] "
            f"(p = {self.f1.p_value:.3f}, Holm {self.p_adjusted:.3f}): {self.verdict}"
        )


def effects(rows: pd.DataFrame, folds: int, level: float = 0.95) -> list[Effect]:
    """Each variant against the base over the (repeat, fold) pairs both finished, Holm-corrected."""
    ok = rows[rows["error"].isna()]
    base = ok[ok["variant"] == BASE].set_index(["repeat", "fold"])
    found = []
    for name, g in ok[ok["variant"] != BASE].groupby("variant", sort=False):
        g = g.set_index(["repeat", "fold"])
        shared = sorted(set(g.index) & set(base.index))
        f1 = paired(g.loc[shared, "macro_f1"], base.loc[shared, "macro_f1"], folds, level)
        auc = paired(g.loc[shared, "auc"], base.loc[shared, "auc"], folds, level)
        ratio = float(g.loc[shared, "time_s"].mean() / base.loc[shared, "time_s"].mean()) if shared else math.nan
        found.append((str(name), str(g["factor"].iloc[0]), str(g["value"].iloc[0]), f1, auc, ratio))
    adjusted = holm([f1.p_value if math.isfinite(f1.p_value) else 1.0 for *_, f1, _, _ in found])
    out = []
    for (name, factor, value, f1, auc, ratio), p in zip(found, adjusted, strict=True):
        significant = p < 1 - level and math.isfinite(f1.difference)
        verdict = ("better" if f1.difference > 0 else "worse") if significant else "not distinguishable"
        out.append(Effect(name, factor, value, f1, auc, p, verdict, ratio))
    return out


def effects_frame(found: Sequence[Effect]) -> pd.DataFrame:
    """The effects as a table (one row per variant) for the report and ablation.json."""
    return pd.DataFrame(
        [
            {
                "variant": e.variant,
                "factor": e.factor,
                "value": e.value,
                "macro_f1_diff": e.f1.difference,
                "macro_f1_low": e.f1.low,
                "macro_f1_high": e.f1.high,
                "auc_diff": e.auc.difference,
                "auc_low": e.auc.low,
                "auc_high": e.auc.high,
                "p": e.f1.p_value,
                "p_holm": e.p_adjusted,
                "verdict": e.verdict,
                "pairs": e.f1.n,
                "time_ratio": e.time_ratio,
                "line": e.line(),
            }
            for e in found
        ]
    )


def mean_curves(rows: pd.DataFrame) -> pd.DataFrame:
    """Held-out macro-F1 per epoch, averaged over a variant's folds and repeats: columns variant, epoch, f1."""
    out = []
    for name, g in rows[rows["error"].isna()].groupby("variant", sort=False):
        curves = [np.asarray(c, dtype=float) for c in g["curve"] if c is not None and len(c)]
        if not curves:
            continue
        n = max(len(c) for c in curves)
        padded = np.full((len(curves), n), np.nan)
        for i, c in enumerate(curves):
            padded[i, : len(c)] = c
        out += [{"variant": name, "epoch": e + 1, "f1": float(np.nanmean(padded[:, e]))} for e in range(n)]
    return pd.DataFrame(out, columns=["variant", "epoch", "f1"])
