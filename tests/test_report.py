"""`python -m study.report`: the report of a tiny real study, its plot-data functions on hand-checked cases,
the figures Optuna draws, its refusals (exit code 2), and the page in headless Chromium."""

import html
import json
import re
import shutil
import subprocess
import sys

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from sklearn.metrics import confusion_matrix, roc_auc_score

from study.final.summary import BASELINE_NAMES
from study.report import plots, search
from study.report.__main__ import main
from study.report.load import ReportError, best_trial, load_results, summary, top_trials, trial_order
from study.report.sections import data_section
from study.results import BEST_METRIC, EPOCHS_SCHEMA, TRIALS_SCHEMA, ResultsError
from trainables.summary import DATA_FILE, raw_tokens, sample_rows, token_frequencies

FIGURES = (
    "final_promise",
    "final_folds",
    "final_curves",
    "curves_best",
    "curves_top",
    "roc",
    "confusion",
    "history",
    "slices",
    "parallel",
    "importance",
    "early_stopping",
    "wordclouds",
    "token_frequencies",
    "tsne",
)
SECTIONS = ("final", "summary", "curves", "model", "search", "early-stopping", "data")


def _copy_study(src, dst):
    """A study folder without Ray's own files, so a test can change or break it."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("ray", "figures", "report.html"))
    return dst


@pytest.fixture(scope="module")
def reported(small_study, tmp_path_factory):
    folder = _copy_study(small_study, tmp_path_factory.mktemp("report") / "study")
    assert main([str(folder), "--top", "2"]) == 0
    return folder


def _no_epochs():
    return pd.DataFrame(columns=[f.name for f in EPOCHS_SCHEMA])


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
    best = best_trial(load_results(reported).trials)
    assert best["trial_id"] in page and f"{best['best_val_macro_f1']:.4g}" in page


def test_reads_no_ray():
    modules = "study.report.sections, study.report.__main__, study.report.compare, study.compare, trainables.summary"
    code = f"import sys, {modules}, study.config, study.search.optuna_db; assert 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_python_dash_m_exits_2_on_bad_input(tmp_path):
    """As users run it: a bad folder is one message and exit code 2, not a traceback."""
    run = subprocess.run([sys.executable, "-m", "study.report", str(tmp_path / "none")], capture_output=True, text=True)
    assert run.returncode == 2 and "is not a folder" in run.stderr and "Traceback" not in run.stderr


def test_page_renders_in_headless_chromium(reported, render_html, tmp_path):
    shot = render_html(reported / "report.html", tmp_path, height=4000)
    n_img = len(re.findall(r"<img ", (reported / "report.html").read_text(encoding="utf-8")))
    assert shot["images_total"] == n_img >= len(FIGURES)
    assert shot["images_loaded"] == n_img
    assert shot["errors"] == 0 and shot["console"] == []
    assert shot["overflow"] == "false"  # wide tables scroll inside the page instead of running off its edge
    assert shot["screenshot"].stat().st_size > 10_000  # kept in tmp_path to look at


def test_every_table_scrolls_sideways(reported):
    page = (reported / "report.html").read_text(encoding="utf-8")
    assert page.count("<table") == page.count('<div class="scroll"><table') > 5
    assert ".scroll{overflow-x:auto" in page


def test_summary_agrees_with_the_trials(reported):
    results = load_results(reported)
    s = summary(results)
    best = best_trial(results.trials)
    assert s.trial_id == best["trial_id"] and s.metrics["macro_f1"] == best["best_val_macro_f1"]
    assert set(s.searched) == {"cell", "hidden_size", "lr", "dropout"}  # the smoke space's searched ones
    assert s.fixed["batch_size"] == 64 and "cell" not in s.fixed
    assert list(s.recall_per_class) == list(results.classes)
    assert s.counts["total"] == len(results.trials) == sum(v for k, v in s.counts.items() if k != "total")


def test_final_section_opens_the_report_with_the_answer(reported):
    page = (reported / "report.html").read_text(encoding="utf-8")
    final = json.loads((reported / "study.json").read_text())["final"]
    w = final["winner"]
    assert page.index('<section id="final">') < page.index('<section id="summary">')
    assert f"trial {w['trial_id']}" in page and f"{w['cv']['mean']:.4f}" in page
    gap = w["search_score"] - w["cv"]["mean"]
    assert f"search − CV = {gap:+.4f}" in page and f"python -m study.predict {reported}" in page
    assert html.escape(final["comparison"]["macro_f1"]["line"]) in page  # the paired verdict, in words


def test_final_section_says_when_the_study_has_no_final_stage(small_study, tmp_path):
    from study.report.final import final_section

    folder = _copy_study(small_study, tmp_path / "study")
    info = json.loads((folder / "study.json").read_text())
    del info["final"]
    (folder / "study.json").write_text(json.dumps(info))
    section = final_section(load_results(folder), tmp_path / "figures")
    page = "".join(section.blocks)
    assert "no final model" in page and "optimistic" in page and "--final-top" in page
    assert not (tmp_path / "figures").exists()


def test_a_study_folder_without_its_data_summary_is_refused_by_name(small_study, tmp_path):
    folder = _copy_study(small_study, tmp_path / "study")
    (folder / DATA_FILE).unlink()
    with pytest.raises(ResultsError, match=f"{DATA_FILE}' does not exist"):
        load_results(folder)


def test_data_section_reads_no_csv_and_no_word2vec(small_study, tmp_path, monkeypatch):
    """The word clouds and the map come from the study's data.parquet: no training CSV, no cache, no Word2Vec."""
    folder = _copy_study(small_study, tmp_path / "study")
    study = json.loads((folder / "study.json").read_text())
    study["data"].update(demo=False, train_path=str(tmp_path / "gone.csv"))
    study["settings"]["train"] = str(tmp_path / "gone.csv")
    (folder / "study.json").write_text(json.dumps(study))
    monkeypatch.setenv("RNN_STUDY_CACHE", str(tmp_path / "empty-cache"))  # no demo CSV, no cached vectors
    results = load_results(folder)
    section = data_section(results, folder / "figures")
    page = "".join(section.blocks)
    for name in ("wordclouds", "token_frequencies", "tsne"):
        assert f'id="fig-{name}"' in page and (folder / "figures" / f"{name}.png").is_file(), name
    n_train = study["data"]["n_train"]
    assert f"of {n_train} training tweets" in page
    assert not (tmp_path / "empty-cache").exists() and not (tmp_path / "gone.csv").exists()


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
    y, probs = plots.trial_predictions(preds, "t")
    assert y.tolist() == [0, 0, 1, 1, 2, 2] and probs.shape == (6, 3)
    cm = confusion_matrix(y, probs.argmax(axis=1), labels=[0, 1, 2])  # what plot_confusion draws
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    normalised = confusion_matrix(y, probs.argmax(axis=1), labels=[0, 1, 2], normalize="true")
    np.testing.assert_allclose(normalised, [[0.5, 0.5, 0], [0, 1, 0], [0.5, 0, 0.5]])
    empty_row = confusion_matrix([0, 0], [0, 0], labels=[0, 1], normalize="true")  # class 1 never true
    np.testing.assert_array_equal(empty_row, [[1, 0], [0, 0]])
    with pytest.raises(ReportError, match="no rows of trial 'v'"):
        plots.trial_predictions(preds, "v")
    fig = plots.plot_confusion(y, probs.argmax(axis=1), ("a", "b", "c"), "t")
    counts = [t.get_text() for t in fig.axes[0].texts]
    assert counts == ["1", "1", "0", "0", "2", "0", "1", "0", "1"]  # scikit-learn's display, row by row


def test_roc_auc_matches_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    probs = rng.dirichlet(np.ones(3), 200) + np.eye(3)[y] * 0.3
    probs /= probs.sum(axis=1, keepdims=True)
    curves = plots.roc_curves(y, probs, ("a", "b", "c"))
    for c, curve in enumerate(curves):
        assert curve.auc == pytest.approx(roc_auc_score(y == c, probs[:, c]))
        assert curve.fpr[0] == 0 and curve.tpr[-1] == 1
    absent = plots.roc_curves(np.zeros(5, int), np.full((5, 2), 0.5), ("a", "b"))
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
    saved = plots.compute_saved(trials, max_epochs=6, epochs=epochs)
    assert (saved.epochs_run, saved.epochs_full, saved.epochs_saved) == (16, 24, 8)
    assert saved.fraction_saved == pytest.approx(1 / 3) and saved.stopped_early == 2
    assert saved.seconds_per_epoch == 3.0 and saved.seconds_saved == 24.0


def test_asha_rungs():
    assert plots.asha_rungs(1, 3, 6) == [1, 3]
    assert plots.asha_rungs(1, 3, 9) == [1, 3, 9]
    assert plots.asha_rungs(2, 2, 16) == [2, 4, 8, 16]
    with pytest.raises(ReportError, match="`reduction_factor`"):
        plots.asha_rungs(1, 1, 6)


def test_history_order_and_best_so_far():
    trials = _trials(
        [
            {"trial_id": "c", "trial_number": 2, "status": "completed", "best_val_macro_f1": 0.5},
            {"trial_id": "a", "trial_number": 0, "status": "completed", "best_val_macro_f1": 0.4},
            {"trial_id": "b", "trial_number": 1, "status": "errored", "best_val_macro_f1": None},
            {"trial_id": "d", "trial_number": 3, "status": "stopped_early", "best_val_macro_f1": 0.3},
        ]
    ).assign(epochs_run=1)
    study = search.search_study(trials, _no_epochs(), {})
    assert [t.user_attrs["trial_id"] for t in study.trials] == ["a", "b", "c", "d"]
    assert [t.value for t in study.trials] == [0.4, None, 0.5, 0.3]  # the stopped trial at its best score
    (best,) = [line for line in search.history_figure(study).axes[0].lines if line.get_label() == "Best Value"]
    assert best.get_ydata().tolist() == [0.4, 0.4, 0.5, 0.5]  # Optuna's best so far, by trial number
    assert top_trials(trials, 2)["trial_id"].tolist() == ["c", "a"]
    unnumbered = trials.assign(trial_number=-1)  # older files: the file's order
    assert trial_order(unnumbered)["trial_id"].tolist() == ["c", "a", "b", "d"]


def test_slice_and_parallel_coordinates_drawn_by_optuna():
    params = {
        "cell": CategoricalDistribution(["lstm", "gru"]),
        "lr": FloatDistribution(1e-4, 1e-2, log=True),
        "hidden_size": IntDistribution(10, 30),
        "dropout": FloatDistribution(0.0, 0.5),
    }
    trials = _trials(
        [
            {"trial_id": "a", "trial_number": 0, "status": "completed", "best_val_macro_f1": 0.2, "params_cell": "gru",
             "params_lr": 1e-3, "params_hidden_size": 10, "params_dropout": 0.1, "epochs_run": 3},
            {"trial_id": "b", "trial_number": 1, "status": "stopped_early", "best_val_macro_f1": 0.6,
             "params_cell": "lstm", "params_lr": 1e-2, "params_hidden_size": 20, "params_dropout": 0.2,
             "epochs_run": 1},
        ]
    )  # fmt: skip
    study = search.search_study(trials, _no_epochs(), params)
    fig = search.slice_figure(study, list(params))
    axes = {ax.get_xlabel(): ax for ax in fig.axes if ax.get_label() != "<colorbar>"}
    assert set(axes) == set(params)
    cell = axes["cell"].collections[0].get_offsets()
    assert cell.tolist() == [[0.0, 0.6], [1.0, 0.2]]  # categorical choices in their order: lstm, gru
    assert [t.get_text() for t in axes["cell"].get_xticklabels()] == ["'lstm'", "'gru'"]
    assert axes["lr"].get_xscale() == "log" and axes["lr"].collections[0].get_offsets()[:, 0].tolist() == [1e-3, 1e-2]
    # four plots in rows of three: the second row's plot stays clear of the first row's tick labels
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    top_row = [ax for ax in axes.values() if ax.get_subplotspec().rowspan.start == 0]
    (below,) = [ax for ax in axes.values() if ax.get_subplotspec().rowspan.start == 1]
    assert len(top_row) == 3
    lowest_of_top_row = min(ax.get_tightbbox(renderer).y0 for ax in top_row)  # tick labels and x label included
    assert below.get_tightbbox(renderer).y1 < lowest_of_top_row
    parallel = search.parallel_figure(study, list(params))
    assert [t.get_text() for t in parallel.axes[0].get_xticklabels()] == [BEST_METRIC, *sorted(params)]
    assert plt.get_fignums() == []  # every figure Optuna drew through pyplot was taken out of it
    assert matplotlib.rcParams["axes.facecolor"] == "white"  # and Optuna's ggplot style did not stay behind


def test_importances_count_trials_asha_stopped():
    """A default-sized study where ASHA stopped most trials still has importances (today's default: 2 of 12)."""
    params = {"dropout": FloatDistribution(0, 1), "lr": FloatDistribution(1e-4, 1e-2, log=True)}
    rng = np.random.default_rng(0)
    rows = [
        {"trial_id": f"t{i}", "trial_number": i, "status": "completed" if i < 2 else "stopped_early",
         "best_val_macro_f1": 0.3 + 0.4 * (i / 12) + 0.01 * rng.random(), "params_dropout": i / 12,
         "params_lr": float(10 ** rng.uniform(-4, -2)), "epochs_run": 6 if i < 2 else 1}
        for i in range(12)
    ]  # fmt: skip
    imp = search.param_importances(_trials(rows), _no_epochs(), params)
    assert imp.n_trials == 12 and set(imp.by_evaluator) == {"fANOVA", "mean decrease impurity"}
    assert "they come from 12 trials (fewer than 20)" in imp.warning
    for values in imp.by_evaluator.values():
        assert set(values) == {"dropout", "lr"} and sum(values.values()) == pytest.approx(1.0)
        assert values["dropout"] > values["lr"]  # the score follows dropout here
    errored = [{**r, "status": "errored"} if r["status"] == "stopped_early" else r for r in rows]
    few = search.param_importances(_trials(errored), _no_epochs(), params)
    assert few.by_evaluator == {} and "but the study has 2" in few.notes[0]


def test_importances_need_completed_trials_and_varying_params():
    params = {"dropout": FloatDistribution(0, 1), "cell": CategoricalDistribution(["lstm", "gru"])}
    rows = [
        {"trial_id": f"t{i}", "trial_number": i, "status": "completed", "best_val_macro_f1": 0.1 + 0.1 * i,
         "params_dropout": i / 10, "params_cell": "gru", "epochs_run": 2}
        for i in range(6)
    ]  # fmt: skip
    epochs = _no_epochs()
    imp = search.param_importances(_trials(rows), epochs, params)
    assert set(imp.by_evaluator) == {"fANOVA", "mean decrease impurity"}
    for values in imp.by_evaluator.values():
        assert values == pytest.approx({"dropout": 1.0})  # cell took one value: left out, with a note
    assert any("cell (one value" in n for n in imp.notes) and imp.n_trials == 6
    few = search.param_importances(_trials(rows[:2]), epochs, params)
    assert few.by_evaluator == {} and "at least 3 completed trials" in few.notes[0]


def test_integer_settings_get_integer_ticks_in_the_slice_plots():
    params = {"num_layers": IntDistribution(1, 3), "dropout": FloatDistribution(0.0, 0.5)}
    trials = _trials(
        [
            {"trial_id": f"t{i}", "trial_number": i, "status": "completed", "best_val_macro_f1": 0.3 + 0.1 * i,
             "params_num_layers": n, "params_dropout": 0.1 * i, "epochs_run": 2}
            for i, n in enumerate((1, 3, 2))
        ]
    )  # fmt: skip
    fig = search.slice_figure(search.search_study(trials, _no_epochs(), params), list(params))
    FigureCanvasAgg(fig).draw()
    (layers,) = [ax for ax in fig.axes if ax.get_xlabel() == "num_layers"]
    lo, hi = layers.get_xlim()
    ticks = [t for t in layers.get_xticks() if lo <= t <= hi]
    assert ticks and all(float(t).is_integer() for t in ticks)  # no tick at 1.5 or 2.5 layers


def test_importances_warn_when_few_trials_or_the_evaluators_disagree():
    agree = {"fANOVA": {"lr": 0.6, "dropout": 0.3, "cell": 0.1}, "mdi": {"lr": 0.5, "dropout": 0.4, "cell": 0.1}}
    assert search.importance_warning(agree, 40) == ""
    assert "they come from 12 trials (fewer than 20)" in search.importance_warning(agree, 12)
    disagree = {"fANOVA": agree["fANOVA"], "mdi": {"lr": 0.1, "dropout": 0.3, "cell": 0.6}}
    text = search.importance_warning(disagree, 40)
    assert "fANOVA and mdi disagree (Spearman rank correlation of their importances -1.00" in text
    assert "most important: lr against cell" in text
    other_top = {"fANOVA": agree["fANOVA"], "mdi": {"lr": 0.4, "dropout": 0.45, "cell": 0.15}}  # rho 0.5, top differs
    assert "most important: lr against dropout" in search.importance_warning(other_top, 40)


def test_token_frequencies_and_tsne():
    freq = token_frequencies([["b", "a"], ["a", "c", "b"], ["a"]])
    assert freq.values.tolist() == [["a", 3], ["b", 2], ["c", 1]]
    assert raw_tokens(["Hello  World!", ""]) == [["Hello", "World!"], []]
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(40, 5))
    vectors[:3] = 0  # tweets without a known word
    index = sample_rows(np.abs(vectors).sum(axis=1) > 0, max_points=30, seed=0)
    labels = np.arange(40) % 3
    points = plots.tsne_points(vectors[index], labels[index], seed=0)
    assert len(points) == 30 and set(index).isdisjoint({0, 1, 2})
    assert points["label"].tolist() == [i % 3 for i in index]


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
    assert main([str(folder)]) == 2
    assert message in capsys.readouterr().err
    if breakage != "missing_folder":
        assert not (folder / "report.html").exists()


def test_bad_arguments_exit_2(small_study, capsys):
    with pytest.raises(SystemExit) as e:
        main([str(small_study), "--top", "0"])
    assert e.value.code == 2 and "must be an integer >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # the study keeps what the data section needs: no training file to give
        main([str(small_study), "--train", "train.csv"])
    assert e.value.code == 2 and "unrecognized arguments: --train" in capsys.readouterr().err
    with pytest.raises(ResultsError, match="no trial with a validation score"):
        best_trial(_trials([{"status": "errored", "best_val_macro_f1": None}]))


# ------------------------------------------------------------------- a study whose final verdict is "worse"

WINNER, SEARCH_BEST = "t5", "t3"  # of the `worse_study` fixture: the saved model's trial is the search's second best


@pytest.fixture(scope="module")
def worse(worse_study, tmp_path_factory):
    folder = _copy_study(worse_study, tmp_path_factory.mktemp("worse") / "worse")
    assert main([str(folder)]) == 0
    return folder, (folder / "report.html").read_text(encoding="utf-8")


def _section(page, name):
    start = page.index(f'<section id="{name}">')
    return page[start : page.index("</section>", start)]


def test_a_worse_verdict_is_red_and_says_worse(worse):
    _, page = worse
    final = _section(page, "final")
    boxes = re.findall(r'<p class="verdict ([a-z]+)">([^<]*)</p>', final)
    assert [cls for cls, _ in boxes] == ["worse", "worse"]  # macro-F1 and AUC: red, not green
    assert all(text.endswith(": worse.") for _, text in boxes)
    assert f"trial {WINNER} against {html.escape(BASELINE_NAMES[list(BASELINE_NAMES)[-1]])}" in boxes[0][1]
    assert ".verdict.worse{background:#ffebee;border-color:#e53935}" in page
    assert 'class="verdict better"' not in page


def test_the_header_shows_the_model_beside_the_strongest_baseline(worse):
    folder, page = worse
    final = json.loads((folder / "study.json").read_text())["final"]
    strongest = final["baselines"][final["better_baseline"]]["cv"]["mean"]
    headline = re.search(r'<p class="headline">([^<]*)</p>', page).group(1)
    assert headline == html.escape(
        f"final model macro-F1 {final['winner']['cv']['mean']:.4f} (5-fold CV) against "
        f"{BASELINE_NAMES[final['better_baseline']]} {strongest:.4f} · on the CV folds: worse"
    )


def test_the_search_to_cv_difference_is_signed(worse, tmp_path):
    from study.report.final import final_section

    folder, page = worse
    info = json.loads((folder / "study.json").read_text())
    w = info["final"]["winner"]
    gap = w["search_score"] - w["cv"]["mean"]
    assert gap > 0 and f"search − CV = {gap:+.4f} (above the CV estimate)" in _section(page, "final")
    w["search_score"] = w["cv"]["mean"] - 0.02  # a search score below its CV estimate: not "optimistic"
    below = _copy_study(folder, tmp_path / "below")
    (below / "study.json").write_text(json.dumps(info))
    text = "".join(final_section(load_results(below), tmp_path / "figures").blocks)
    assert "search − CV = -0.0200 (below the CV estimate)" in text
    assert "optimistic" not in text.split("The candidates")[0]


def test_the_header_with_a_test_set_puts_the_baseline_on_the_test_set_beside_the_model(worse_study):
    from study.report.final import headline_text

    final = json.loads((worse_study / "study.json").read_text())["final"]
    better = final["better_baseline"]
    final["test"] = {"n": 200, "model": {"macro_f1": 0.41, "auc": 0.6}, "baselines": {better: {"macro_f1": 0.45}}}
    final["headline"] = {"source": "test", "n": 200, "macro_f1": 0.41, "auc": 0.6}
    assert headline_text(final) == (
        f"final model macro-F1 0.4100 (test set, 200 tweets) against {BASELINE_NAMES[better]} 0.4500 · "
        "on the CV folds: worse"
    )
    assert headline_text(None) == ""


def test_two_folds_give_no_usable_interval():
    from study.report.final import interval_text, usable_interval

    smoke = {"mean": 0.2494, "std": 0.08, "low": 0.0, "high": 1.0, "n": 2, "level": 0.95}
    assert not usable_interval(smoke) and interval_text(smoke) == "0.2494 (no usable interval from 2 folds)"
    five = {"mean": 0.392, "std": 0.03, "low": 0.342, "high": 0.442, "n": 5, "level": 0.95}
    assert usable_interval(five) and interval_text(five) == "0.3920 [0.3420, 0.4420]"


def test_the_sections_about_the_model_describe_the_saved_one(worse):
    _, page = worse
    final, summary_html, curves, model = (_section(page, s) for s in ("final", "summary", "curves", "model"))
    assert f"trial {WINNER} (#2 in the search)" in final and f"trial {SEARCH_BEST}: search score 0.5200" in final
    settings = final[final.index("The saved model&#x27;s settings") :]
    assert "<th>hidden_size</th><td>23</td>" in settings and "<th>batch_size (fixed)</th><td>64</td>" in settings
    assert f"{WINNER} (the saved model&#x27;s configuration)" in summary_html
    assert f"the search&#x27;s best trial (not saved)</th><td>{SEARCH_BEST}:" in summary_html
    assert f"the saved model&#x27;s trial {WINNER}" in curves.lower()
    assert f"Trial {WINNER}, the saved model&#x27;s configuration" in model
    assert "CV, epoch chosen on the held-out fold (old rule: optimistic)" in final  # the old estimate, as what it is
    assert "inner validation split" in final  # how each fold's epoch was chosen


def test_settings_are_shown_as_used(worse):
    _, page = worse
    settings = page[page.index("All settings of the study, as used") :]
    assert "<th>vector_size</th><td>300 (auto)</td>" in settings
    assert "<th>n_startup_trials</th><td>3 (auto)</td>" in settings
    assert "<th>max_concurrent</th><td>2 (auto)</td>" in settings


def test_the_data_accounting_warns_of_texts_in_two_parts(worse):
    _, page = worse
    data = _section(page, "data")
    assert "<td>train.csv</td><td>500</td><td>12</td><td>3</td><td>485</td>" in data
    (warning,) = re.findall(r'<p class="warn">([^<]*)</p>', data)
    assert warning.startswith("4 distinct cleaned texts are in both train and valid")


def test_few_trials_warn_that_importances_are_a_rough_guess(worse):
    _, page = worse
    assert re.search(r'<p class="warn">Read these importances as a rough guess: they come from \d+ trials', page)


def test_the_worse_report_in_headless_chromium(worse, render_html, tmp_path):
    folder, page = worse
    shot = render_html(folder / "report.html", tmp_path, height=4000)
    n_img = len(re.findall(r"<img ", page))
    assert shot["images_total"] == shot["images_loaded"] == n_img and shot["errors"] == 0
    assert shot["overflow"] == "false" and shot["screenshot"].stat().st_size > 10_000
