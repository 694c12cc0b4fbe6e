"""Ablation plans, their fold-paired effects with Holm's correction, and the mean learning curves."""

import math
import re

import numpy as np
import pandas as pd
import pytest

from study.ablation.effects import BASE, effects, mean_curves, parse_vary, plan_variants
from trainables.settings import ConfigError

BASE_PARAMS = {"cell": "lstm", "hidden_size": 16, "num_layers": 3, "attention": True, "dropout": 0.3}


def test_parse_vary_types_the_values():
    assert parse_vary(["cell=rnn,gru", "attention=false", "hidden_size=8, 64", "dropout=0.5"]) == {
        "cell": ("rnn", "gru"),
        "attention": (False,),
        "hidden_size": (8, 64),
        "dropout": (0.5,),
    }


@pytest.mark.parametrize(
    "items, message",
    [
        (["colour=red"], "factors must be among"),
        (["cell"], "must have the form factor=v1,v2"),
        (["hidden_size=big"], "`hidden_size` (--vary hidden_size) must be an integer"),
        (["cell=gru", "cell=rnn"], "given twice"),
        (["seed=1"], "factors must be among"),
    ],
)
def test_parse_vary_refuses_bad_items(items, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_vary(items)


def test_plan_skips_the_base_value_and_names_each_variant():
    variants = plan_variants(BASE_PARAMS, {"cell": ("rnn", "lstm", "gru"), "attention": (False,)})
    assert [v.name for v in variants] == [BASE, "cell=rnn", "cell=gru", "attention=false"]
    assert variants[3].params == {**BASE_PARAMS, "attention": False}


@pytest.mark.parametrize(
    "vary, message",
    [
        ({"dropout": (1.5,)}, "the variant dropout=1.5: `dropout` must be in [0, 1)"),
        ({"cell": ("lstm",)}, "leaves nothing to compare"),
    ],
)
def test_plan_refuses_values_the_model_does_not_accept(vary, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(")", r"\)")):
        plan_variants(BASE_PARAMS, vary)


def _rows(shifts, folds=5, repeats=2):
    rng = np.random.default_rng(0)
    base = 0.40 + rng.normal(0, 0.01, size=(repeats, folds))
    rows = []
    for name, shift in {BASE: 0.0, **shifts}.items():
        factor, _, value = name.partition("=")
        for r in range(repeats):
            for k in range(folds):
                f1 = base[r, k] + shift + (0 if name == BASE else rng.normal(0, 0.002))
                rows.append(
                    {
                        "variant": name,
                        "factor": None if name == BASE else factor,
                        "value": None if name == BASE else value,
                        "repeat": r,
                        "fold": k + 1,
                        "macro_f1": f1,
                        "auc": f1 + 0.2,
                        "time_s": 2.0 if name == "hidden_size=128" else 1.0,
                        "curve": [f1 - 0.05, f1],
                        "error": None,
                    }
                )
    return pd.DataFrame(rows)


def test_effects_pair_folds_and_say_better_worse_or_not_distinguishable():
    found = {
        e.variant: e for e in effects(_rows({"attention=false": -0.03, "cell=gru": 0.0005, "hidden_size=128": 0.03}), 5)
    }
    assert found["attention=false"].verdict == "worse" and found["hidden_size=128"].verdict == "better"
    assert found["cell=gru"].verdict == "not distinguishable"
    assert found["attention=false"].f1.difference == pytest.approx(-0.03, abs=0.003)
    assert found["attention=false"].f1.n == 10  # 2 repeats x 5 folds, paired
    assert found["hidden_size=128"].time_ratio == pytest.approx(2.0)
    for e in found.values():
        assert e.p_adjusted >= e.f1.p_value  # Holm never lowers a p-value
    assert found["attention=false"].line().startswith("attention=false: -0.03")
    assert found["attention=false"].line().endswith(": worse")


def test_a_failed_fold_is_left_out_of_the_pairs():
    rows = _rows({"cell=gru": -0.03})
    rows.loc[(rows["variant"] == "cell=gru") & (rows["fold"] == 1), "error"] = "WorkerCrashedError"
    (e,) = effects(rows, 5)
    assert e.f1.n == 8 and math.isfinite(e.f1.difference)


def test_mean_curves_average_every_fold_per_epoch():
    curves = mean_curves(_rows({"cell=gru": -0.03}))
    assert list(curves.columns) == ["variant", "epoch", "f1"] and set(curves["epoch"]) == {1, 2}
    base = curves[curves["variant"] == BASE].set_index("epoch")["f1"]
    assert base[2] - base[1] == pytest.approx(0.05)


def test_the_cost_ratio_is_the_median_so_one_slow_first_task_does_not_move_it():
    rows = _rows({"hidden_size=128": 0.0})
    rows.loc[(rows["variant"] == BASE) & (rows["repeat"] == 0) & (rows["fold"] == 1), "time_s"] = 9.0  # a warm-up
    (e,) = effects(rows, 5)
    assert e.time_ratio == pytest.approx(2.0)


def test_the_report_colours_each_verdict_and_shows_the_vectors_as_used(tmp_path):
    from study.ablation.driver import summarise
    from study.report.ablation import write_ablation_report

    rows = _rows({"attention=false": -0.03, "cell=gru": 0.0005, "hidden_size=128": 0.03})
    plan = {"study": "s", "base": BASE_PARAMS, "folds": 5, "seed": 0, "data_seed": 0, "max_epochs": 2}
    plan |= {"labelled_rows": 500, "classes": ["a", "b"], "data": {"vectorizer": "fasttext", "vector_size": 0}}
    info = {"plan": plan, "repeats": 2, "resources": {"cpus_per_task": 1.0, "gpus_per_task": 0.0}, **summarise(rows, 5)}
    page = write_ablation_report(tmp_path, info, rows).read_text()
    found = re.findall(r'<p class="verdict ([a-z]+)">([^<]*)</p>', page)
    boxes = {text.split(":")[0]: cls for cls, text in found}
    assert boxes == {"attention=false": "worse", "cell=gru": "even", "hidden_size=128": "better"}
    assert "<th>word vectors</th><td>fasttext, 300-d, trained per fold on its training rows</td>" in page
    assert ", 0-d" not in page and "Word2Vec" not in page
