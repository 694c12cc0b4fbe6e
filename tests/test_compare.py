"""`python -m study.compare`: two tiny real studies side by side, the statistics on hand-checked cases,
the refusals (exit code 2), and the page in headless Chromium."""

import json
import re
import shutil

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from study.compare import main
from study.final import stats as cvstats
from study.report import compare, stats
from study.report.load import StudyResults, load_results
from study.results import PREDICTIONS_SCHEMA, read_table, write_table

FIGURES = ("final", "scores", "cost", "curves", "trial_scores", "differences")
SECTIONS = ("final", "side-by-side", "curves", "trials", "tests")


def _copy_study(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("ray", "figures", "report.html"))
    return dst


@pytest.fixture(scope="module")
def compared(small_studies, tmp_path_factory):
    out = tmp_path_factory.mktemp("comparison")
    a, b = small_studies
    assert main([str(a), str(b), "--labels", "GRU,LSTM", "--out", str(out), "--boot", "300"]) == 0
    return out


@pytest.fixture(scope="module")
def other_validation_set(small_studies, tmp_path_factory):
    """A copy of the second study whose validation labels and data fingerprint differ."""
    folder = _copy_study(small_studies[1], tmp_path_factory.mktemp("other") / "other")
    preds = read_table(folder / "predictions.parquet")
    preds["label"] = (preds["label"] + 1) % 3
    write_table(preds.to_dict("records"), folder / "predictions.parquet", PREDICTIONS_SCHEMA)
    study = json.loads((folder / "study.json").read_text())
    study["data"]["fingerprint"] = "0" * 20
    study["settings"]["data_seed"] = 7
    (folder / "study.json").write_text(json.dumps(study))
    return folder


def _probs(y, n_classes, strength, seed):
    """Probabilities that favour the true class by `strength` (0: none)."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(n_classes), len(y)) + strength * np.eye(n_classes)[y]
    return p / p.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------------- the whole page


def test_every_figure_and_section(compared):
    for name in FIGURES:
        assert (compared / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG", name
    page = (compared / "comparison.html").read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'<section id="{section}">' in page, section
    assert "GRU vs LSTM: best macro-F1" in page and "Verdict:" in page
    assert "same data fingerprint" in page  # the two seeds share the demo data's validation set
    assert not re.search(r"""(src|href)=["'](https?:)?//""", page)


def test_page_renders_in_headless_chromium(compared, render_html, tmp_path):
    shot = render_html(compared / "comparison.html", tmp_path, height=3000)
    assert shot["images_total"] == len(FIGURES) == shot["images_loaded"]
    assert shot["errors"] == 0 and shot["console"] == []
    assert shot["screenshot"].stat().st_size > 10_000


def test_different_validation_sets(small_studies, other_validation_set, tmp_path, capsys):
    a = str(small_studies[0])
    assert main([a, str(other_validation_set), "--out", str(tmp_path / "r"), "--paired", "require"]) == 2
    err = capsys.readouterr().err
    assert "a paired test needs one validation set" in err and "labels differ" in err
    assert not (tmp_path / "r" / "comparison.html").exists()
    # without `require` the studies are still shown side by side, without a paired test
    assert main([a, str(other_validation_set), "--out", str(tmp_path / "a"), "--boot", "200"]) == 0
    page = (tmp_path / "a" / "comparison.html").read_text(encoding="utf-8")
    assert "No paired test" in page and not (tmp_path / "a" / "figures" / "differences.png").exists()


def test_final_models_ranked_by_cv_and_paired_on_shared_folds(compared, small_studies):
    page = (compared / "comparison.html").read_text(encoding="utf-8")
    assert page.index('<section id="final">') < page.index('<section id="side-by-side">')
    finals = {
        label: json.loads((f / "study.json").read_text())["final"] for label, f in zip(("GRU", "LSTM"), small_studies)
    }
    first = max(finals, key=lambda k: finals[k]["winner"]["cv"]["mean"])
    ranking = page[page.index("ranked by their final models") :]
    assert ranking.index(f"<td>{first}</td>") < ranking.index(f"<td>{'LSTM' if first == 'GRU' else 'GRU'}</td>")
    assert "GRU against LSTM:" in page and "Holm-adjusted p" in page  # the same demo folds: a paired test


def test_a_study_without_a_final_stage_is_ranked_last_by_its_optimistic_score(small_studies, tmp_path):
    plain = _copy_study(small_studies[1], tmp_path / "plain")
    info = json.loads((plain / "study.json").read_text())
    del info["final"]
    (plain / "study.json").write_text(json.dumps(info))
    assert (
        main([str(small_studies[0]), str(plain), "--labels", "A,B", "--out", str(tmp_path / "o"), "--boot", "200"]) == 0
    )
    page = (tmp_path / "o" / "comparison.html").read_text(encoding="utf-8")
    assert "No final stage in B" in page and "A against B" not in page
    ranking = page[page.index("ranked by their final models") :]
    assert ranking.index("<td>A</td>") < ranking.index("<td>B</td>")


def test_validation_match_rules(small_studies, other_validation_set):
    a, b = (compare.best_model(load_results(f), n) for f, n in zip(small_studies, "ab", strict=True))
    assert compare.validation_match(a, b).same
    other = compare.best_model(load_results(other_validation_set), "c")
    assert not compare.validation_match(a, other).same
    # same rows and labels, but another fingerprint: the split settings decide
    study = {**b.results.study, "data": {**b.results.study["data"], "fingerprint": "f" * 20}}
    refingered = compare.BestModel(
        "d", StudyResults(b.results.folder, study, *_frames(b.results)), b.trial_id, b.y, b.probs, ""
    )
    match = compare.validation_match(a, refingered)
    assert match.same and "same split settings" in match.reason
    study["settings"] = {**study["settings"], "valid_fraction": 0.3}
    resplit = compare.BestModel(
        "e", StudyResults(b.results.folder, study, *_frames(b.results)), b.trial_id, b.y, b.probs, ""
    )
    assert not compare.validation_match(a, resplit).same


def _frames(r):
    return r.trials, r.epochs, r.predictions, r.data


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{a}", "--out", "{out}"], "at least two study folders"),
        (["{a}", "{missing}", "--out", "{out}"], "is not a folder"),
        (["{a}", "{b}", "--labels", "X", "--out", "{out}"], "`--labels` must give 2 distinct"),
        (["{a}", "{b}", "--labels", "X,X", "--out", "{out}"], "`--labels` must give 2 distinct"),
        (["{a}", "{b}", "--boot", "10", "--out", "{out}"], "`boot` must be >= 100"),
    ],
)
def test_bad_input_exits_2(small_studies, tmp_path, capsys, args, message):
    names = {"a": small_studies[0], "b": small_studies[1], "missing": tmp_path / "nope", "out": tmp_path / "out"}
    assert main([a.format(**names) for a in args]) == 2
    assert message in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ statistics


def test_stratified_resamples_keep_class_counts():
    y = np.array([0] * 5 + [1] * 3 + [2] * 2)
    idx = stats.bootstrap_indices(y, 50, seed=1)
    assert idx.shape == (50, 10)
    for row in idx:
        assert np.bincount(y[row], minlength=3).tolist() == [5, 3, 2]


def test_resampled_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 120)
    probs = _probs(y, 3, 0.4, seed=1)
    idx = np.vstack([np.arange(120), stats.bootstrap_indices(y, 3, seed=2)])
    f1 = stats.metric_resampled("macro_f1", y, probs, idx)
    auc = stats.metric_resampled("auc", y, probs, idx)
    for i, rows in enumerate(idx):
        yr, pr = y[rows], probs[rows]
        assert f1[i] == pytest.approx(f1_score(yr, pr.argmax(1), average="macro", labels=[0, 1, 2], zero_division=0))
        assert auc[i] == pytest.approx(roc_auc_score(yr, pr, multi_class="ovr", average="macro"))
    y2 = rng.integers(0, 2, 80)
    p2 = _probs(y2, 2, 0.3, seed=3)
    assert stats.metric_resampled("auc", y2, p2, np.arange(80)[None])[0] == pytest.approx(roc_auc_score(y2, p2[:, 1]))


def test_bootstrap_ci_contains_the_point_estimate():
    y = np.random.default_rng(0).integers(0, 3, 300)
    probs = _probs(y, 3, 0.5, seed=4)
    for metric in stats.METRICS:
        ci = stats.bootstrap_ci(y, probs, metric, n_boot=400, level=0.9, seed=0)
        assert ci.low <= ci.point <= ci.high and ci.high - ci.low < 0.3 and ci.level == 0.9


def test_paired_bootstrap():
    y = np.random.default_rng(0).integers(0, 3, 300)
    good, weak = _probs(y, 3, 1.0, seed=5), _probs(y, 3, 0.0, seed=6)
    same = stats.paired_bootstrap(y, good, good, "macro_f1", n_boot=300)
    assert same.difference == 0 and same.low == same.high == 0 and same.p_value == 1.0
    better = stats.paired_bootstrap(y, good, weak, "macro_f1", n_boot=300)
    assert better.difference > 0.2 and better.low > 0 and better.p_value < 0.01
    assert stats.paired_bootstrap(y, weak, good, "auc", n_boot=300).high < 0


def test_mcnemar_on_a_handmade_case():
    y = np.zeros(20, int)
    a = np.array([0] * 8 + [1] * 2 + [0] * 5 + [1] * 5)  # right on 0-7 and 10-14
    b = np.array([1] * 8 + [0] * 2 + [0] * 5 + [1] * 5)  # right on 8-9 and 10-14
    m = stats.mcnemar(y, a, b)
    assert (m.only_a, m.only_b) == (8, 2)
    assert m.p_value == pytest.approx(2 * (1 + 10 + 45) / 1024)  # exact binomial, 10 discordant rows
    assert stats.mcnemar(y, a, a).p_value == 1.0


def test_holm():
    assert cvstats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert cvstats.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])


def test_verdict_in_plain_words():
    f1 = {"A": stats.Interval(0.7, 0.65, 0.75, 0.95), "B": stats.Interval(0.6, 0.55, 0.65, 0.95)}
    match = compare.ValidationMatch(True, "same")
    tests = {m: stats.PairedBootstrap(m, 0.1, 0.05, 0.15, 0.002, 1000) for m in stats.METRICS}
    pair = compare.PairResult("A", "B", match, tests, stats.McNemar(30, 10, 0.002), 0.004)
    assert "Verdict: A is better than B at the 0.05 level" in compare.verdict(pair, f1, 0.05, 3)
    even = compare.PairResult("A", "B", match, tests, stats.McNemar(12, 10, 0.8), 0.3)
    assert "no significant difference" in compare.verdict(even, f1, 0.05, 1)
    apart = compare.PairResult("A", "B", compare.ValidationMatch(False, "the labels differ"), {}, None, float("nan"))
    assert "No paired test: the labels differ" in compare.verdict(apart, f1, 0.05, 1)


def _compared_with_a_changed_copy(study_folder, tmp_path, setting: str, value) -> tuple[str, str, str]:
    """Two copies of a study, the second with another data fingerprint through `setting`, compared: the page and
    its final and significance sections."""
    a, b = _copy_study(study_folder, tmp_path / "a"), _copy_study(study_folder, tmp_path / "b")
    study = json.loads((b / "study.json").read_text())
    study["data"]["fingerprint"] = "0" * 20
    study["settings"][setting] = value
    (b / "study.json").write_text(json.dumps(study))
    assert main([str(a), str(b), "--labels", "A,B", "--out", str(tmp_path / "o"), "--boot", "200"]) == 0
    page = (tmp_path / "o" / "comparison.html").read_text(encoding="utf-8")
    return page, page[page.index('<section id="final">') :], page[page.index('<section id="tests">') :]


def test_both_sections_agree_that_studies_differing_only_in_encoding_share_their_rows(worse_study, tmp_path, capsys):
    """Another fingerprint through `vector_size` alone: the final section pairs the folds, as the tests pair the
    validation rows (no "data differ" in one section and a paired test in the next)."""
    page, final, tests = _compared_with_a_changed_copy(worse_study, tmp_path, "vector_size", 100)
    assert "A against B:" in final and "no paired test" not in final and "differ (" not in final
    assert "same split settings; the fingerprints differ through settings that change no row (vector_size)" in tests
    assert "No paired test" not in tests
    # the same models on the same rows: no difference, so every verdict box is grey
    assert re.findall(r'<p class="verdict ([a-z]+)">', page) == ["even", "even"]


def test_studies_on_other_rows_are_paired_in_neither_section(worse_study, tmp_path):
    _, final, tests = _compared_with_a_changed_copy(worse_study, tmp_path, "data_seed", 3)
    assert "A and B: no paired test, the data fingerprints differ" in final and "A against B:" not in final
    assert "No paired test: the data fingerprints differ" in tests and "split settings [&#x27;data_seed&#x27;]" in tests
