"""Ablations: what one change to a base configuration is worth, with a paired interval over the same folds.

A plan is the base configuration and its variants, each changing exactly one factor (a hyperparameter). Every
variant and the base run on the same stratified folds with the same per-fold Word2Vec and the same seeds (the
final stage's fold tasks, study/final/stage.py), `repeats` times with fold splits and seeds moved on by the repeat.
Each variant is then compared with the base fold by fold (study/final/stats.py), with Holm's correction for the
number of variants.

Here: planning (pure), running (Ray, resumable through the rows already written) and the analysis (pure).
Not here: the steps of a run (driver.py), the command line (study/ablate.py), the HTML report (study/report/).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from study.final.stage import FinalPlan, run_cv
from study.final.stats import LEVEL, Paired, holm, paired
from study.final.summary import CV, Candidate
from study.results import FOLD_FIELDS
from trainables.data_settings import convert_value, field_types
from trainables.hparams import HParams
from trainables.settings import ConfigError

if TYPE_CHECKING:
    from trainables.inputs import StudyData

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
EFFECT_COLUMNS = (
    "variant",
    "factor",
    "value",
    "macro_f1_diff",
    "macro_f1_low",
    "macro_f1_high",
    "p",  # the corrected paired t-test of macro-F1
    "p_holm",
    "auc_diff",
    "auc_low",
    "auc_high",
    "auc_p",
    "auc_p_holm",
    "verdict",
    "pairs",  # (repeat, fold) pairs both finished
    "time_ratio",
    "line",
)
ABLATION_SCHEMA = pa.schema(
    [
        ("variant", pa.string()),  # "base" or "factor=value"
        ("factor", pa.string()),  # null for the base
        ("value", pa.string()),  # the factor's value, as typed
        ("repeat", pa.int64()),  # 0-based
        ("fold", pa.int64()),  # 1-based
        *FOLD_FIELDS,
    ]
)


@dataclass(frozen=True)
class Variant:
    name: str  # "base" or "factor=value"
    factor: str | None
    value: Any
    params: dict[str, Any]  # the base's hyperparameters with this one change


def value_text(value: Any) -> str:
    """A factor's value as the rows and names spell it: booleans as true/false."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _typed(factor: str, text: Any, flag: str) -> Any:
    return convert_value(factor, text, field_types(HParams)[factor], f"{flag} {factor}")


def _hparams(params: dict[str, Any], what: str) -> HParams:
    """`params` as HParams; a ConfigError naming `what` where they are not a valid configuration."""
    try:
        return HParams(**params)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{what}: {e}") from None


def _factor_items(items: Sequence[str], flag: str, form: str) -> Iterator[tuple[str, str]]:
    """(factor, text after `=`) of each `flag` item, refusing malformed items, unknown and repeated factors."""
    seen: set[str] = set()
    for item in items:
        factor, sep, text = item.partition("=")
        factor = factor.strip().replace("-", "_")
        if not sep or not text.strip():
            raise ConfigError(f"`{flag}` items must have the form {form}, but got {item!r}.")
        if factor not in FACTORS:
            raise ConfigError(f"`{flag}` factors must be among {', '.join(FACTORS)}, but got `{factor}`.")
        if factor in seen:
            raise ConfigError(f"`{flag}` must give each factor once, but `{factor}` is given twice.")
        seen.add(factor)
        yield factor, text.strip()


def parse_vary(items: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    """`--vary factor=v1,v2` items as {factor: typed values}.

    Raises:
        ConfigError: an item without `=`, an unknown factor, a factor given twice or a value of the wrong type.
    """
    return {
        factor: tuple(_typed(factor, v.strip(), "--vary") for v in text.split(",") if v.strip())
        for factor, text in _factor_items(items, "--vary", "factor=v1,v2 (e.g. cell=rnn,gru)")
    }


def parse_base(items: Sequence[str]) -> dict[str, Any]:
    """`--base factor=value` items as {factor: typed value}; refused with a ConfigError as `parse_vary` refuses."""
    return {
        factor: _typed(factor, text, "--base")
        for factor, text in _factor_items(items, "--base", "factor=value (e.g. cell=gru)")
    }


def base_config(*layers: dict[str, Any]) -> dict[str, Any]:
    """Every factor's value in the base: HParams' defaults, then each layer in turn (keys outside FACTORS,
    such as a study's seed, are left to the plan).

    Raises:
        ConfigError: the result is not a valid configuration.
    """
    merged = {k: v for layer in layers for k, v in layer.items() if k in FACTORS}
    hp = _hparams(merged, "the base configuration")
    return {f: getattr(hp, f) for f in FACTORS}


def plan_variants(base: dict[str, Any], vary: dict[str, Sequence[Any]]) -> list[Variant]:
    """The base and one variant per (factor, value) that differs from the base, in the order given.

    Raises:
        ConfigError: the base, or a variant, is not a valid configuration (e.g. `dropout=1.5`).
    """
    _hparams(base, "the base configuration")
    variants = [Variant(BASE, None, None, dict(base))]
    defaults = HParams()
    for factor, values in vary.items():
        for value in values:
            name = f"{factor}={value_text(value)}"
            if value == base.get(factor, getattr(defaults, factor)) or name in {v.name for v in variants}:
                continue  # the base's own value, or a value given twice
            params = {**base, factor: value}
            _hparams(params, f"the variant {name}")
            variants.append(Variant(name, factor, value, params))
    if len(variants) == 1:
        raise ConfigError("`--vary` leaves nothing to compare: every value given equals the base's; give other values.")
    return variants


def run_ablation(
    plan: FinalPlan,
    variants: Sequence[Variant],
    repeats: int,
    data: StudyData,
    done_rows: pd.DataFrame,
    on_row: Callable[[dict[str, Any]], None],
) -> None:
    """Every (variant, repeat, fold) not in `done_rows`, as parallel Ray fold tasks; rows go to `on_row`.

    Repeat r splits the folds with `data_seed + r` and seeds the models with `seed + r`, the same for every
    variant, so variant and base are paired within a repeat.
    """
    by_name = {v.name: v for v in variants}
    for r in range(repeats):
        mine = done_rows[done_rows["repeat"] == r]
        done = {(str(v), CV, int(k)) for v, k in zip(mine["variant"], mine["fold"])}
        seed = int(plan.fixed.get("seed", 0)) + r
        repeat_plan = replace(plan, data_seed=plan.data_seed + r, fixed={**plan.fixed, "seed": seed})
        cands = [Candidate(v.name, i, math.nan, v.params) for i, v in enumerate(variants)]

        def row(values: dict[str, Any], r: int = r) -> None:
            v = by_name[values["candidate"]]
            value = None if v.factor is None else value_text(v.value)
            keep = {k: values.get(k) for k in ABLATION_SCHEMA.names}
            on_row({**keep, "variant": v.name, "factor": v.factor, "value": value, "repeat": r})

        run_cv(repeat_plan, cands, data, done, row, baselines=())


@dataclass(frozen=True)
class Effect:
    variant: str
    factor: str
    value: str
    f1: Paired  # macro-F1, variant - base, over the shared (repeat, fold) pairs
    auc: Paired  # AUC, likewise
    p_adjusted: float  # macro-F1 p-value after Holm's correction over the variants
    auc_p_adjusted: float  # AUC p-value after Holm's correction over the variants
    verdict: str  # "better" | "not distinguishable" | "worse": macro-F1 at the Holm-adjusted p-value
    # the median over the shared folds of the variant's fold time over the base's: the median, because the first
    # task in each worker process also pays torch's first-use set-up (seconds), whichever variant it runs
    time_ratio: float

    def line(self) -> str:
        """One plain-words line, e.g. "attention=false: -0.012 [-0.020, -0.004] macro-F1, ...: worse"."""
        if not math.isfinite(self.f1.difference):
            return f"{self.variant}: no finished fold shared with the base, nothing to compare."
        f1, auc = self.f1, self.auc
        return (
            f"{self.variant}: {f1.difference:+.3f} [{f1.low:+.3f}, {f1.high:+.3f}] macro-F1, "
            f"{auc.difference:+.3f} [{auc.low:+.3f}, {auc.high:+.3f}] AUC over {f1.n} paired folds "
            f"(p = {f1.p_value:.3f}, Holm {self.p_adjusted:.3f}): {self.verdict}"
        )


def _holm(values: Sequence[Paired]) -> list[float]:
    return holm([v.p_value if math.isfinite(v.p_value) else 1.0 for v in values])


def effects(rows: pd.DataFrame, folds: int, level: float = LEVEL) -> list[Effect]:
    """Each variant against the base over the (repeat, fold) pairs both finished, Holm-corrected.

    Variants come in the order of their first row; a variant whose every fold failed is listed with no numbers.
    """
    ok = rows[rows["error"].isna()]
    base = ok[ok["variant"] == BASE].set_index(["repeat", "fold"])
    found = []
    for name, g in rows[rows["variant"] != BASE].groupby("variant", sort=False):
        mine = ok[ok["variant"] == name].set_index(["repeat", "fold"])
        shared = sorted(set(mine.index) & set(base.index))
        f1, auc = (paired(mine.loc[shared, m], base.loc[shared, m], folds, level) for m in ("macro_f1", "auc"))
        times = mine.loc[shared, "time_s"] / base.loc[shared, "time_s"]
        ratio = float(times.median()) if shared else math.nan
        found.append((str(name), str(g["factor"].iloc[0]), str(g["value"].iloc[0]), f1, auc, ratio))
    f1_adjusted = _holm([f[3] for f in found])
    auc_adjusted = _holm([f[4] for f in found])
    out = []
    for (name, factor, value, f1, auc, ratio), p, p_auc in zip(found, f1_adjusted, auc_adjusted, strict=True):
        significant = p < 1 - level and math.isfinite(f1.difference)
        verdict = ("better" if f1.difference > 0 else "worse") if significant else "not distinguishable"
        out.append(Effect(name, factor, value, f1, auc, p, p_auc, verdict, ratio))
    return out


def effects_frame(found: Sequence[Effect]) -> pd.DataFrame:
    """The effects as a table (one row per variant) for ablation.json and the report."""
    return pd.DataFrame(
        [
            {
                "variant": e.variant,
                "factor": e.factor,
                "value": e.value,
                "macro_f1_diff": e.f1.difference,
                "macro_f1_low": e.f1.low,
                "macro_f1_high": e.f1.high,
                "p": e.f1.p_value,
                "p_holm": e.p_adjusted,
                "auc_diff": e.auc.difference,
                "auc_low": e.auc.low,
                "auc_high": e.auc.high,
                "auc_p": e.auc.p_value,
                "auc_p_holm": e.auc_p_adjusted,
                "verdict": e.verdict,
                "pairs": e.f1.n,
                "time_ratio": e.time_ratio,
                "line": e.line(),
            }
            for e in found
        ],
        columns=EFFECT_COLUMNS,
    )


def mean_curves(rows: pd.DataFrame) -> pd.DataFrame:
    """Held-out macro-F1 per epoch, averaged over a variant's folds and repeats: columns variant, epoch, f1."""
    out = []
    for name, g in rows[rows["error"].isna()].groupby("variant", sort=False):
        curves = [pd.Series(c, dtype=float) for c in g["curve"] if c is not None and len(c)]
        if curves:  # past a shorter curve's last epoch: NaN, left out of the mean
            means = pd.concat(curves, axis=1).mean(axis=1)
            out += [{"variant": name, "epoch": e + 1, "f1": float(f)} for e, f in enumerate(means)]
    return pd.DataFrame(out, columns=["variant", "epoch", "f1"])
