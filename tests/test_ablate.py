"""`python -m study.ablate`: refusals before Ray (exit 2, nothing written), the plan from a study's winner, the
report from fixed rows, and, on a real Ray, the command end to end on a tiny real study and a resume after Ctrl-C."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from search_spaces import get_space
from study.ablate import main, parser
from study.ablation.driver import ABLATION_JSON, ablate, current_rows, resolve, summarise
from study.ablation.effects import ABLATION_FILE, ABLATION_SCHEMA, BASE, Variant
from study.cli import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, run_command
from study.config import StudyConfig
from study.report.ablation import write_ablation_report
from study.results import SCHEMA_VERSION, read_table, write_json
from trainables.data_settings import flat_settings
from trainables.settings import ConfigError

TINY = {"space": "smoke", "demo_rows": 300, "vector_size": 16, "max_epochs": 1, "seed": 3, "data_seed": 1}
WINNER = {"trial_id": "t1", "rank": 1, "params": {"cell": "gru", "hidden_size": 8, "lr": 0.005, "dropout": 0.1}}


class RayStarted(BaseException):
    """Raised by the guard; a BaseException so that the command's last-resort `except Exception` cannot hide it."""


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("RNN_STUDY_CACHE", str(tmp_path / "cache"))  # demo data and Word2Vec, never ~/.cache
    monkeypatch.setenv("COLUMNS", "1000")  # rich would wrap long messages at 80 columns


@pytest.fixture
def no_ray(monkeypatch):
    """Fail the test if anything tries to start or join Ray."""
    import study.ablation.driver

    def refuse(cfg):
        raise RayStarted("Ray was started before the bad input was refused")

    monkeypatch.setattr(study.ablation.driver, "init_ray", refuse)


def _study_folder(folder, final=None, **changes):
    """A study folder's study.json as `study.run` writes it (settings, space), with a `final` block if given."""
    folder.mkdir(parents=True)
    cfg = StudyConfig.from_settings(**{**TINY, **changes})
    space = get_space(cfg.space)
    study = {"schema_version": SCHEMA_VERSION, "name": folder.name, "settings": flat_settings(cfg)}
    study["space"] = {"name": space.name, "fixed": space.fixed}
    if final is not None:
        study["final"] = final
    write_json(study, folder / "study.json")
    return folder


def _tree(folder):
    """Every path under `folder`, but the cache (the generated demo data is cached there, as by `study.run`)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if "cache" not in p.relative_to(folder).parts)


def _args(*argv):
    return parser().parse_args([str(a) for a in argv])


# ------------------------------------------------------------------------------------------ the plan


def test_the_base_is_the_winner_over_the_spaces_fixed_settings(tmp_path):
    folder = _study_folder(tmp_path / "s", final={"winner": WINNER})
    s = resolve(_args(folder, "--vary", "attention=false", "--vary", "cell=rnn,gru", "--folds", "3"), "cmd")
    fixed = get_space("smoke").fixed
    assert s.record["base"] == {**s.record["base"], **fixed, **WINNER["params"]}
    assert [v.name for v in s.variants] == [BASE, "attention=false", "cell=rnn"]  # gru is the base's
    assert s.variants[2].params == {**s.variants[0].params, "cell": "rnn"}
    assert s.plan.fixed == {"seed": 3, "max_epochs": 1, "num_threads": 1, "device": "cpu"}
    assert (s.plan.folds, s.plan.data_seed) == (3, 1)
    assert s.base_from == {"winner": {"trial_id": "t1", "rank": 1}, "changes": {}}
    assert len(s.data.labelled) == 300 and s.done.empty and s.out == folder / "ablation"


def test_base_changes_and_the_default_preset(tmp_path):
    folder = _study_folder(tmp_path / "s", final={"winner": WINNER})
    s = resolve(_args(folder, "--base", "num_layers=2", "--base", "hidden_size=16", "--max-epochs", "4"), "cmd")
    assert s.record["base"]["num_layers"] == 2 and s.record["base"]["hidden_size"] == 16
    assert s.base_from["changes"] == {"num_layers": 2, "hidden_size": 16} and s.plan.fixed["max_epochs"] == 4
    # no --vary: the original work's experiments, less the base's own values
    factors = {v.factor for v in s.variants[1:]}
    assert factors == {"cell", "hidden_size", "num_layers", "dropout", "skip", "clip", "attention"}
    assert "hidden_size=16" not in {v.name for v in s.variants}
    # a preset and --vary together: --vary's values replace the preset's for the factor both name
    s = resolve(_args(folder, "--preset", "original", "--vary", "cell=rnn", "--vary", "lr=0.01"), "cmd")
    names = {v.name for v in s.variants}
    assert {"cell=rnn", "lr=0.01", "attention=false"} <= names and "cell=lstm" not in names


def test_a_study_without_a_final_stage_runs_from_base_alone(tmp_path):
    folder = _study_folder(tmp_path / "s")
    s = resolve(_args(folder, "--base", "cell=rnn", "--vary", "attention=false"), "cmd")
    assert s.record["base"]["cell"] == "rnn" and s.base_from == {"winner": None, "changes": {"cell": "rnn"}}


def test_the_same_plan_resumes_and_another_is_refused(tmp_path):
    folder = _study_folder(tmp_path / "s", final={"winner": WINNER})
    s = resolve(_args(folder, "--vary", "attention=false"), "cmd")
    s.out.mkdir()
    write_json({"plan": s.record}, s.out / ABLATION_JSON)
    row = {"variant": BASE, "repeat": 0, "fold": 1, "macro_f1": 0.4, "curve": [0.3, 0.4]}
    from study.results import write_table

    write_table([row], s.out / ABLATION_FILE, ABLATION_SCHEMA)
    again = resolve(_args(folder, "--vary", "attention=false", "--repeats", "2"), "cmd")  # more repeats: same plan
    assert list(again.done["variant"]) == [BASE] and list(again.done["curve"].iloc[0]) == [0.3, 0.4]
    with pytest.raises(ConfigError, match=r"another plan \(it differs in: variants, max_epochs\)"):
        resolve(_args(folder, "--vary", "attention=false,true", "--vary", "skip=true", "--max-epochs", "2"), "cmd")


def test_current_rows_keep_the_plans_variants_and_repeats_in_plan_order():
    variants = [Variant(BASE, None, None, {}), Variant("cell=gru", "cell", "gru", {})]
    rows = pd.DataFrame(
        {
            "variant": ["cell=gru", BASE, "cell=rnn", BASE, "cell=gru"],
            "repeat": [0, 1, 0, 0, 2],
            "fold": [1, 1, 1, 2, 1],
        }
    )
    got = current_rows(rows, variants, repeats=2)
    assert list(zip(got["variant"], got["repeat"], got["fold"], strict=True)) == [
        (BASE, 0, 2),
        (BASE, 1, 1),
        ("cell=gru", 0, 1),
    ]


# ------------------------------------------------------------------------------------------ refusals


def _final(tmp):
    return _study_folder(tmp / "s", final={"winner": WINNER})


def _no_final(tmp):
    return _study_folder(tmp / "s")


def _out_file(tmp):
    folder = _final(tmp)
    (tmp / "taken").write_text("x")
    return folder


def _out_not_ours(tmp):
    folder = _final(tmp)
    (tmp / "other").mkdir()
    (tmp / "other" / "notes.txt").write_text("x")
    return folder


def _data_changed(tmp):
    folder = _final(tmp)
    study = json.loads((folder / "study.json").read_text())
    write_json({**study, "data": {"n_train": 999, "n_valid": 60}}, folder / "study.json")
    return folder


def _missing_csv(tmp):
    return _study_folder(tmp / "s", final={"winner": WINNER}, train=str(tmp / "gone.csv"))


BAD = [
    ("unknown factor", _final, ["--vary", "colour=red"], "`--vary` factors must be among"),
    ("value the model refuses", _final, ["--vary", "dropout=1.5"], "the variant dropout=1.5: `dropout` must be in"),
    ("unknown cell", _final, ["--vary", "cell=transformer"], "`cell` must be one of"),
    ("value of the wrong type", _final, ["--vary", "hidden_size=big"], "must be an integer, but got 'big'"),
    ("nothing to compare", _final, ["--vary", "cell=gru"], "leaves nothing to compare"),
    ("bad base", _final, ["--base", "colour=red"], "`--base` factors must be among"),
    ("base the model refuses", _final, ["--base", "hidden_size=0"], "`hidden_size` must be >= 1"),
    ("no final stage, no base", _no_final, ["--vary", "cell=rnn"], "has no final stage"),
    ("missing folder", lambda t: t / "nowhere", [], "is not a folder"),
    ("not a study folder", lambda t: t, [], "is not a study folder: it has no study.json"),
    ("one fold", _final, ["--folds", "1"], "`folds` must be >= 2"),
    ("more folds than rows", _final, ["--folds", "5000"], "smallest class"),
    ("no repeats", _final, ["--repeats", "0"], "`--repeats` must be >= 1"),
    ("no epochs", _final, ["--max-epochs", "0"], "`max_epochs` must be >= 1"),
    ("no cpus", _final, ["--cpus-per-trial", "0"], "`cpus_per_trial` must be > 0"),
    ("out is a file", _out_file, ["--out", "{tmp}/taken"], "is a file"),
    ("out holds something else", _out_not_ours, ["--out", "{tmp}/other"], "holds files but no ablation.json"),
    ("data changed", _data_changed, [], "changed since it ran (n_train 999 then, 240 now)"),
    ("data file gone", _missing_csv, [], "gone.csv"),
]


@pytest.mark.parametrize("make, extra, message", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_exits_2_with_nothing_written(make, extra, message, tmp_path, capsys, no_ray):
    folder = make(tmp_path)
    before = _tree(tmp_path)
    code = main([str(folder), *(e.format(tmp=tmp_path) for e in extra)])
    err = " ".join(capsys.readouterr().err.split())
    assert code == EXIT_BAD_INPUT, err
    assert message in err
    assert err.count("error:") == 1
    assert _tree(tmp_path) == before


def test_an_unknown_preset_exits_2_through_argparse(tmp_path, capsys, no_ray):
    with pytest.raises(SystemExit) as exc:
        main([str(_final(tmp_path)), "--preset", "newest"])
    assert exc.value.code == EXIT_BAD_INPUT
    assert "invalid choice: 'newest'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ the report


def _fixed_rows():
    rows = []
    changes = {
        BASE: ((0.0,) * 5, 2.0),
        "attention=false": ((-0.029, -0.028, -0.027, -0.026, -0.025), 1.5),
        "cell=gru": ((0.004, -0.005, 0.001, -0.002, 0.003), 2.5),
    }
    for name, (shifts, seconds) in changes.items():
        factor, _, value = name.partition("=")
        for fold, (noise, shift) in enumerate(zip((0.010, -0.004, 0.002, -0.007, 0.001), shifts, strict=True), 1):
            f1 = 0.40 + noise + shift
            rows.append(
                {
                    "variant": name,
                    "factor": None if name == BASE else factor,
                    "value": None if name == BASE else value,
                    "repeat": 0,
                    "fold": fold,
                    "macro_f1": f1,
                    "auc": f1 + 0.15,
                    "time_s": seconds,
                    "curve": [f1 - 0.04, f1 - 0.01, f1],
                    "error": None,
                }
            )
    return pd.DataFrame(rows, columns=ABLATION_SCHEMA.names)


def test_the_report_draws_every_figure_and_says_each_verdict(tmp_path):
    rows = _fixed_rows()
    record = {"study": "s", "base": {"cell": "lstm"}, "folds": 5, "seed": 0, "data_seed": 0, "max_epochs": 3}
    record |= {"labelled_rows": 500, "classes": ["a", "b"], "data": {"train": "t.csv", "vectorizer": "sequence"}}
    info = {
        "plan": record,
        "repeats": 1,
        "resources": {"cpus_per_task": 1.0, "gpus_per_task": 0.0},
        **summarise(rows, 5),
    }
    path = write_ablation_report(tmp_path, info, rows)
    page = path.read_text()
    assert {p.name for p in (tmp_path / "figures").iterdir()} == {"effects.png", "curves.png", "cost.png"}
    for section in ("verdicts", "effects", "base", "curves", "cost"):
        assert f'<section id="{section}">' in page
    lines = {e["variant"]: e["line"] for e in info["effects"]}
    assert lines["attention=false"].startswith("attention=false: -0.027 [-0.030, -0.024] macro-F1")
    assert lines["attention=false"].endswith(": worse")
    assert lines["cell=gru"].endswith("not distinguishable")
    assert lines["attention=false"] in page and "p (Holm)" in page
    assert info["effects"][0]["time_ratio"] == pytest.approx(0.75)
    assert info["base_score"]["macro_f1"]["mean"] == pytest.approx(0.4004)


# ------------------------------------------------------------------------------------------ on a real Ray


@pytest.fixture(scope="module")
def ray_2_cpus():
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield
    if started:
        ray.shutdown()


def _with_final(small_study, folder):
    """A copy of the tiny real study, with the `final` block its final stage writes (its best trial as winner)."""
    shutil.copytree(small_study, folder, ignore=shutil.ignore_patterns("ray", "figures", "report.html"))
    trials = read_table(folder / "trials.parquet").sort_values("best_val_macro_f1", ascending=False)
    best = trials.iloc[0]
    params = {k: best[f"params_{k}"] for k in get_space("smoke").params}
    params = {k: v.item() if hasattr(v, "item") else v for k, v in params.items()}
    study = json.loads((folder / "study.json").read_text())
    winner = {"trial_id": best["trial_id"], "rank": 1, "params": params, "epochs": 1}
    write_json({**study, "final": {"folds": 2, "winner": winner}}, folder / "study.json")
    return folder, params


@pytest.mark.slow
def test_the_command_end_to_end_on_a_tiny_real_study(small_study, ray_2_cpus, tmp_path, render_html, capsys):
    folder, params = _with_final(small_study, tmp_path / "study")
    other = "gru" if params["cell"] == "lstm" else "lstm"
    argv = [str(folder), "--vary", f"cell={other}", "--vary", "attention=false", "--folds", "2", "--max-epochs", "2"]
    assert main(argv) == EXIT_OK, capsys.readouterr().err
    out = folder / "ablation"
    rows = read_table(out / ABLATION_FILE, ABLATION_SCHEMA)
    assert sorted(zip(rows["variant"], rows["fold"], strict=True)) == sorted(
        (v, k) for v in (BASE, f"cell={other}", "attention=false") for k in (1, 2)
    )
    assert rows["error"].isna().all() and (rows["epochs"] == 2).all() and rows["curve"].map(len).eq(2).all()
    assert rows.groupby("fold")["n_held_out"].nunique().eq(1).all()  # the same folds for every variant
    info = json.loads((out / ABLATION_JSON).read_text())
    assert info["status"] == "completed" and info["rows_done"] == 6
    assert info["plan"]["base"]["cell"] == params["cell"] and info["plan"]["base"]["num_layers"] == 1
    assert info["base_from"]["winner"]["rank"] == 1
    assert [e["variant"] for e in info["effects"]] == [f"cell={other}", "attention=false"]
    assert all(e["pairs"] == 2 for e in info["effects"])
    err = " ".join(capsys.readouterr().err.split())
    assert info["effects"][1]["line"] in err
    seen = render_html(out / "report.html", tmp_path)
    assert seen["images_total"] == 3 and seen["images_loaded"] == 3
    assert seen["errors"] == 0 and seen["overflow"] == "false"


@pytest.mark.slow
def test_an_interrupted_ablation_reruns_only_the_missing_folds(small_study, ray_2_cpus, tmp_path, capsys, monkeypatch):
    folder, params = _with_final(small_study, tmp_path / "study")
    argv = [str(folder), "--vary", "attention=false", "--folds", "2", "--repeats", "2", "--max-epochs", "1"]
    args = parser().parse_args(argv)
    first = []

    def stop_after_three(row):
        first.append(row)
        if len(first) == 3:
            raise KeyboardInterrupt

    code = run_command("ablation", lambda console: ablate(args, console, "the command", stop_after_three))
    err = " ".join(capsys.readouterr().err.split())
    assert code == EXIT_INTERRUPTED, err
    assert "interrupted after 3 of 8 fold runs" in err and "Resume with the same command: the command" in err
    out = folder / "ablation"
    assert json.loads((out / ABLATION_JSON).read_text())["status"] == "interrupted"
    kept = read_table(out / ABLATION_FILE, ABLATION_SCHEMA)
    key = ["variant", "repeat", "fold"]
    assert len(kept) == 3

    second = []
    code = run_command("ablation", lambda console: ablate(args, console, "the command", second.append))
    assert code == EXIT_OK, capsys.readouterr().err
    first_keys = {tuple(r[k] for k in key) for r in first}
    second_keys = {tuple(r[k] for k in key) for r in second}
    assert len(second) == 5 and not first_keys & second_keys
    rows = read_table(out / ABLATION_FILE, ABLATION_SCHEMA)
    assert len(rows) == 8 and not rows.duplicated(key).any()
    before = kept.set_index(key)["started_at"]
    assert rows.set_index(key).loc[before.index, "started_at"].equals(before)  # the first run's rows kept as they were
    info = json.loads((out / ABLATION_JSON).read_text())
    assert info["status"] == "completed" and info["effects"][0]["pairs"] == 4  # 2 repeats x 2 folds

    # another plan into the same folder: refused, nothing changed
    files = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert main([str(folder), "--vary", "skip=true", "--folds", "2"]) == EXIT_BAD_INPUT
    assert "holds an ablation of another plan (it differs in: variants, max_epochs)" in " ".join(
        capsys.readouterr().err.split()
    )
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == files
    # the same command once more: nothing to run, so no Ray; the command writes the report (the steps above did not)
    import study.ablation.driver

    assert not (out / "report.html").exists()
    monkeypatch.setattr(study.ablation.driver, "init_ray", lambda cfg: pytest.fail("Ray started with nothing to run"))
    assert main(argv) == EXIT_OK
    assert (out / "report.html").is_file()
