"""`python -m study.report`: the report of a tiny real study, its plot-data functions on hand-checked cases,
its refusals (exit code 2), and the page in headless Chromium."""

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from sklearn.metrics import roc_auc_score

from study import report as R
from study.report_html import _data_section
from study.results import EPOCHS_SCHEMA, TRIALS_SCHEMA, ResultsError

FIGURES = (
    "curves_best",
    "curves_top",
    "roc",
    "confusion",
    "history",
    "slices",
    "parallel",
    "early_stopping",
    "wordclouds",
    "token_frequencies",
    "tsne",
)
SECTIONS = ("summary", "curves", "model", "search", "early-stopping", "data")


def _copy_study(src, dst):
    """A study folder without Ray's own files, so a test can change or break it."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("ray", "figures", "report.html"))
    return dst


@pytest.fixture(scope="module")
def reported(small_study, tmp_path_factory):
    folder = _copy_study(small_study, tmp_path_factory.mktemp("report") / "study")
    assert R.main([str(folder), "--top", "2"]) == 0
    return folder


def _trials(rows):
    """A trials frame with every schema column; `rows` give the columns that matter."""
    cols = [f.name for f in TRIALS_SCHEMA]
    return pd.DataFrame([{c: r.get(c) for c in cols} for r in rows], columns=cols)


# ---------------------------------------------------------------------------------- the whole report


def test_every_figure_is_written(reported):
    for name in FIGURES:
        png = reported / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_html_holds_each_section_and_is_self_contained(reported):
    page = (reported / "report.html").read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'<section id="{section}">' in page, section
    for name in FIGURES:
        assert f'id="fig-{name}"' in page, name
    assert page.count('src="data:image/png;base64,') == len(re.findall(r"<img ", page))
    assert not re.search(r"""(src|href)=["'](https?:)?//""", page)  # nothing fetched from the network
    assert "<link" not in page and "<script src" not in page
    assert 'id="fig-importance"' in page or "Hyperparameter importance needs at least" in page
    best = R.best_trial(R.load_results(reported).trials)
    assert best["trial_id"] in page and f"{best['best_val_macro_f1']:.4g}" in page


def test_reads_no_ray():
    modules = "study.report, study.report_html, study.compare, study.config, study.optuna_study, trainables.demo"
    code = f"import sys, {modules}, trainables.vectorize; assert 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_python_dash_m_exits_2_on_bad_input(small_study, tmp_path):
    """As users run it: `python -m` loads the module twice, which must not hide its own errors from main."""
    argv = [sys.executable, "-m", "study.report", str(small_study), "--train", str(tmp_path / "none.csv")]
    run = subprocess.run(argv, capture_output=True, text=True)
    assert run.returncode == 2 and "`--train`" in run.stderr and "Traceback" not in run.stderr


def test_page_renders_in_headless_chromium(reported, render_html, tmp_path):
    shot = render_html(reported / "report.html", tmp_path, height=4000)
    n_img = len(re.findall(r"<img ", (reported / "report.html").read_text(encoding="utf-8")))
    assert shot["images_total"] == n_img >= len(FIGURES)
    assert shot["images_loaded"] == n_img
    assert shot["errors"] == 0 and shot["console"] == []
    assert shot["screenshot"].stat().st_size > 10_000  # kept in tmp_path to look at


def test_summary_agrees_with_the_trials(reported):
    results = R.load_results(reported)
    s = R.summary(results)
    best = R.best_trial(results.trials)
    assert s.trial_id == best["trial_id"] and s.metrics["macro_f1"] == best["best_val_macro_f1"]
    assert set(s.searched) == {"cell", "hidden_size", "lr", "dropout"}  # the smoke space's searched ones
    assert s.fixed["batch_size"] == 64 and "cell" not in s.fixed
    assert list(s.recall_per_class) == list(results.classes)
    assert s.counts["total"] == len(results.trials) == sum(v for k, v in s.counts.items() if k != "total")


def test_data_section_says_when_the_training_file_is_gone(small_study, tmp_path):
    folder = _copy_study(small_study, tmp_path / "study")
    study = json.loads((folder / "study.json").read_text())
    study["data"].update(demo=False, train_path=str(tmp_path / "gone.csv"))
    study["settings"]["train"] = str(tmp_path / "gone.csv")
    (folder / "study.json").write_text(json.dumps(study))
    results = R.load_results(folder)
    texts, note = R.load_training_texts(results)
    assert texts is None
    section = _data_section(results, texts, note, tmp_path / "figures")
    assert "not on this machine" in "".join(section.blocks) and "--train" in "".join(section.blocks)
    assert not (tmp_path / "figures").exists()


# ------------------------------------------------------------------------------ plot-data functions


def test_confusion_matrix_on_a_handmade_frame():
    preds = pd.DataFrame(
        {
            "trial_id": ["t"] * 6 + ["u"],
            "epoch": 1,
            "row": [5, 4, 3, 2, 1, 0, 0],  # stored out of order
            "label": [2, 2, 1, 1, 0, 0, 1],
            "probs": [[0.6, 0.2, 0.2], [0, 0, 1], [0, 1, 0], [0.1, 0.8, 0.1], [0.2, 0.5, 0.3], [1, 0, 0], [0, 1, 0]],
        }
    )
    y, probs = R.trial_predictions(preds, "t")
    assert y.tolist() == [0, 0, 1, 1, 2, 2] and probs.shape == (6, 3)
    cm = R.confusion_matrix(y, probs.argmax(axis=1), 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    np.testing.assert_allclose(R.row_normalise(cm), [[0.5, 0.5, 0], [0, 1, 0], [0.5, 0, 0.5]])
    np.testing.assert_array_equal(R.row_normalise(np.zeros((2, 2), int)), np.zeros((2, 2)))
    with pytest.raises(R.ReportError, match="no rows of trial 'v'"):
        R.trial_predictions(preds, "v")


def test_roc_auc_matches_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    probs = rng.dirichlet(np.ones(3), 200) + np.eye(3)[y] * 0.3
    probs /= probs.sum(axis=1, keepdims=True)
    curves = R.roc_curves(y, probs, ("a", "b", "c"))
    for c, curve in enumerate(curves):
        assert curve.auc == pytest.approx(roc_auc_score(y == c, probs[:, c]))
        assert curve.fpr[0] == 0 and curve.tpr[-1] == 1
    absent = R.roc_curves(np.zeros(5, int), np.full((5, 2), 0.5), ("a", "b"))
    assert all(np.isnan(c.auc) for c in absent)


def test_compute_saved_on_a_handmade_trials_frame():
    trials = _trials(
        [
            {"status": "completed", "epochs_run": 6},
            {"status": "stopped_early", "epochs_run": 1},
            {"status": "stopped_early", "epochs_run": 3},
            {"status": "completed", "epochs_run": 6},
        ]
    )
    epochs = pd.DataFrame({"epoch_time_s": [2.0, 4.0]})
    saved = R.compute_saved(trials, max_epochs=6, epochs=epochs)
    assert (saved.epochs_run, saved.epochs_full, saved.epochs_saved) == (16, 24, 8)
    assert saved.fraction_saved == pytest.approx(1 / 3) and saved.stopped_early == 2
    assert saved.seconds_per_epoch == 3.0 and saved.seconds_saved == 24.0


def test_asha_rungs():
    assert R.asha_rungs(1, 3, 6) == [1, 3]
    assert R.asha_rungs(1, 3, 9) == [1, 3, 9]
    assert R.asha_rungs(2, 2, 16) == [2, 4, 8, 16]
    with pytest.raises(R.ReportError, match="`reduction_factor`"):
        R.asha_rungs(1, 1, 6)


def test_history_order_and_best_so_far():
    trials = _trials(
        [
            {"trial_id": "c", "trial_number": 2, "status": "completed", "best_val_macro_f1": 0.5},
            {"trial_id": "a", "trial_number": 0, "status": "completed", "best_val_macro_f1": 0.4},
            {"trial_id": "b", "trial_number": 1, "status": "errored", "best_val_macro_f1": None},
            {"trial_id": "d", "trial_number": 3, "status": "stopped_early", "best_val_macro_f1": 0.3},
        ]
    )
    h = R.optimisation_history(trials)
    assert h["trial_id"].tolist() == ["a", "b", "c", "d"]
    assert h["best_so_far"].tolist() == [0.4, 0.4, 0.5, 0.5]
    assert R.top_trials(trials, 2)["trial_id"].tolist() == ["c", "a"]
    unnumbered = trials.assign(trial_number=-1)  # older files: the file's order
    assert R.trial_order(unnumbered)["trial_id"].tolist() == ["c", "a", "b", "d"]


def test_slice_and_parallel_coordinates_positions():
    params = {
        "cell": CategoricalDistribution(["lstm", "gru"]),
        "lr": FloatDistribution(1e-4, 1e-2, log=True),
        "hidden_size": IntDistribution(10, 30),
    }
    trials = _trials(
        [
            {"trial_id": "a", "trial_number": 0, "best_val_macro_f1": 0.2, "params_cell": "gru", "params_lr": 1e-3,
             "params_hidden_size": 10},
            {"trial_id": "b", "trial_number": 1, "best_val_macro_f1": 0.6, "params_cell": "lstm", "params_lr": 1e-2,
             "params_hidden_size": 20},
        ]
    )  # fmt: skip
    s = R.slice_data(trials, params)
    cell = s[s["param"] == "cell"]
    assert cell["x"].tolist() == [1.0, 0.0] and cell["label"].tolist() == ["gru", "lstm"]
    assert s[s["param"] == "lr"]["x"].tolist() == [1e-3, 1e-2]
    p = R.parallel_coordinates(trials, params)
    assert p.axes == ("cell", "lr", "hidden_size", "val_macro_f1")
    np.testing.assert_allclose(p.positions.loc["a"], [1.0, 0.5, 0.0, 0.0])  # lr on a log scale
    np.testing.assert_allclose(p.positions.loc["b"], [0.0, 1.0, 0.5, 1.0])


def test_importances_need_completed_trials_and_varying_params():
    params = {"dropout": FloatDistribution(0, 1), "cell": CategoricalDistribution(["lstm", "gru"])}
    rows = [
        {"trial_id": f"t{i}", "trial_number": i, "status": "completed", "best_val_macro_f1": 0.1 + 0.1 * i,
         "params_dropout": i / 10, "params_cell": "gru", "epochs_run": 2}
        for i in range(6)
    ]  # fmt: skip
    epochs = pd.DataFrame(columns=[f.name for f in EPOCHS_SCHEMA])
    imp = R.param_importances(_trials(rows), epochs, params)
    assert set(imp.by_evaluator) == {"fANOVA", "mean decrease impurity"}
    for values in imp.by_evaluator.values():
        assert values == pytest.approx({"dropout": 1.0})  # cell took one value: left out, with a note
    assert any("cell (one value" in n for n in imp.notes) and imp.n_trials == 6
    few = R.param_importances(_trials(rows[:2]), epochs, params)
    assert few.by_evaluator == {} and "at least 3 completed trials" in few.notes[0]


def test_token_frequencies_and_tsne():
    freq = R.token_frequencies([["b", "a"], ["a", "c", "b"], ["a"]])
    assert freq.values.tolist() == [["a", 3], ["b", 2], ["c", 1]]
    assert R.raw_tokens(["Hello  World!", ""]) == [["Hello", "World!"], []]
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(40, 5))
    vectors[:3] = 0  # tweets without a known word
    points = R.tsne_points(vectors, np.arange(40) % 3, max_points=30, seed=0)
    assert len(points) == 30 and set(points["index"]).isdisjoint({0, 1, 2})
    assert points["label"].tolist() == [i % 3 for i in points["index"]]


# -------------------------------------------------------------------------------------------- refusals


def _break_schema_version(folder):
    table = pq.read_table(folder / "trials.parquet")
    pq.write_table(table.replace_schema_metadata({"schema_version": "99"}), folder / "trials.parquet")


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("missing_folder", "is not a folder"),
        ("no_study_json", "is not a study folder"),
        ("no_trials", "trials.parquet' does not exist"),
        ("study_json_version", "schema version 99"),
        ("parquet_version", "results schema version 99"),
    ],
)
def test_bad_folders_exit_2(small_study, tmp_path, capsys, breakage, message):
    folder = tmp_path / "missing" if breakage == "missing_folder" else _copy_study(small_study, tmp_path / "s")
    if breakage == "no_study_json":
        (folder / "study.json").unlink()
    elif breakage == "no_trials":
        (folder / "trials.parquet").unlink()
    elif breakage == "study_json_version":
        study = json.loads((folder / "study.json").read_text())
        (folder / "study.json").write_text(json.dumps({**study, "schema_version": 99}))
    elif breakage == "parquet_version":
        _break_schema_version(folder)
    assert R.main([str(folder)]) == 2
    assert message in capsys.readouterr().err
    if breakage != "missing_folder":
        assert not (folder / "report.html").exists()


def test_bad_arguments_exit_2(small_study, tmp_path, capsys):
    assert R.main([str(small_study), "--train", str(tmp_path / "none.csv")]) == 2
    assert "`--train`" in capsys.readouterr().err
    other = tmp_path / "other.csv"
    other.write_text("Text,Sentiment,Party\nhello there,A,X\nbye now,B,Y\n", encoding="utf-8")
    assert R.main([str(small_study), "--train", str(other)]) == 2
    assert "has classes ['A', 'B'], but the study has" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        R.main([str(small_study), "--top", "0"])
    assert e.value.code == 2 and "must be an integer >= 1" in capsys.readouterr().err
    with pytest.raises(ResultsError, match="no trial with a validation score"):
        R.best_trial(_trials([{"status": "errored", "best_val_macro_f1": None}]))
