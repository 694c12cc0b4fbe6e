"""`python -m study.run` end to end on a real local Ray cluster (2 CPUs), and its refusals before Ray starts."""

import json

import numpy as np
import optuna
import pandas as pd
import pytest

from study.results import read_table
from study.run import main

TINY = ["--smoke", "--num-samples", "3", "--max-epochs", "2", "--demo-rows", "300", "--vector-size", "16"]
NO_FINAL = ["--final-top", "0"]  # where the test is about the search only (tests/test_final.py covers the stage)


@pytest.fixture(scope="module")
def ray_2_cpus():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


def _check_results(folder, n_trials, max_epochs):
    trials = read_table(folder / "trials.parquet")
    epochs = read_table(folder / "epochs.parquet")
    preds = read_table(folder / "predictions.parquet")
    study = json.loads((folder / "study.json").read_text())
    assert len(trials) == n_trials and trials["trial_id"].is_unique
    assert set(trials["status"]) <= {"completed", "stopped_early"}
    assert (trials["epochs_run"] >= 1).all() and (trials["epochs_run"] <= max_epochs).all()
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    assert epochs.groupby("trial_id").size().to_dict() == dict(zip(trials["trial_id"], trials["epochs_run"]))
    assert trials["best_val_macro_f1"].between(0, 1).all() and trials["node_id"].notna().all()
    assert trials["params_hidden_size"].notna().all() and trials["params_num_layers"].notna().all()  # fixed too
    # predictions: the best epoch of the top trials, one row per validation tweet
    best = trials.sort_values("best_val_macro_f1", ascending=False).iloc[0]
    p = preds[preds["trial_id"] == best["trial_id"]]
    assert len(p) == study["data"]["n_valid"] and (p["epoch"] == best["best_epoch"]).all()
    probs = np.stack(p["probs"].to_numpy())
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-4)
    from sklearn.metrics import f1_score

    f1 = f1_score(p["label"], probs.argmax(1), average="macro")
    assert f1 == pytest.approx(best["best_val_macro_f1"], abs=1e-6)  # the stored predictions are that epoch's
    assert study["status"] == "completed" and study["best_trial"]["trial_id"] == best["trial_id"]
    assert study["data"]["fingerprint"] and study["packages"]["ray"].startswith("2.60")
    # Optuna's history agrees with trials.parquet
    ostudy = optuna.load_study(study_name=study["name"], storage=f"sqlite:///{folder / 'optuna.db'}")
    assert len(ostudy.trials) == n_trials
    assert {t.user_attrs["trial_id"] for t in ostudy.trials} == set(trials["trial_id"])
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in ostudy.trials)
    # every results file has the mode a plain open() gives (a shared folder on a cluster needs group read)
    from trainables.files import umask_mode

    for name in ("trials.parquet", "epochs.parquet", "predictions.parquet", "study.json", "optuna.db"):
        assert (folder / name).stat().st_mode & 0o777 == umask_mode(), name
    # Ray's own trial folders with TensorBoard logs
    assert list((folder / "ray").rglob("events.out.tfevents*"))
    return trials, epochs, study


@pytest.mark.slow
def test_end_to_end_on_demo_data(ray_2_cpus, tmp_path, capsys):
    assert main([*TINY, "--name", "demo", "--results-dir", str(tmp_path)]) == 0
    trials, epochs, study = _check_results(tmp_path / "demo", 3, 2)
    assert study["data"]["demo"] and study["settings"]["space"] == "smoke"
    captured = capsys.readouterr()
    assert str(tmp_path / "demo") in captured.out
    # the answer: the search's best as what it is, the final CV estimate beside the baseline, the saved model
    said = " ".join(captured.err.split())
    assert "the best of many tries on the split the search chose it on" in said
    assert "Final stage, 2-fold CV on every labelled row: trial" in said and "search score minus CV" in said
    assert "Baseline TF-IDF" in said and f"python -m study.predict {tmp_path / 'demo'}" in said
    assert (tmp_path / "demo" / "model" / "model.json").is_file() and study["final"]["winner"] is not None
    # an existing study is never overwritten
    before = (tmp_path / "demo" / "trials.parquet").read_bytes()
    assert main([*TINY, "--name", "demo", "--results-dir", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "demo" / "trials.parquet").read_bytes() == before


@pytest.mark.slow
def test_end_to_end_on_a_slice_of_the_greek_data(ray_2_cpus, tmp_path, shared_data_dir):
    full = pd.read_csv(shared_data_dir / "greek-election-tweets-ys19-2023" / "valid_set.csv")
    part = full.sample(n=360, random_state=0)  # a seeded slice; rows, not ids, pick it
    part.to_csv(tmp_path / "greek.csv", index=False)
    args = [*TINY, *NO_FINAL, "--train", str(tmp_path / "greek.csv"), "--name", "greek"]
    args += ["--results-dir", str(tmp_path / "r")]
    assert main(args) == 0
    trials, epochs, study = _check_results(tmp_path / "r" / "greek", 3, 2)
    assert study["classes"] == ["NEGATIVE", "NEUTRAL", "POSITIVE"] and study["data"]["n_valid"] == 72


@pytest.mark.slow
def test_asha_ranks_by_the_chosen_metric(ray_2_cpus, tmp_path):
    args = [*TINY, *NO_FINAL, "--num-samples", "4", "--max-epochs", "3", "--reduction-factor", "2"]
    args += ["--asha-metric", "val_loss"]
    assert main([*args, "--name", "loss", "--results-dir", str(tmp_path)]) == 0
    trials, epochs, study = _check_results(tmp_path / "loss", 4, 3)
    assert study["settings"]["asha_metric"] == "val_loss"
    # 4 trials = reduction_factor**2: a rung lets trials on only once it holds 2, so the first trial to reach
    # epoch 1 stops there. (Were the metric missing from the results, Ray's ASHA would silently stop nothing.)
    assert ((trials["epochs_run"] == 1) & (trials["status"] == "stopped_early")).sum() >= 1


@pytest.mark.slow
def test_gpus_asked_where_the_cluster_has_none(ray_2_cpus, tmp_path, capsys):
    assert main([*TINY, "--gpus-per-trial", "0.5", "--name", "gpu", "--results-dir", str(tmp_path)]) == 2
    assert "no node of this Ray cluster has a GPU" in capsys.readouterr().err
    assert not (tmp_path / "gpu").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--space", "nope"], "`space` must be one of the known search spaces"),
        (["--max-epochs", "-3"], "`max_epochs` must be >= 1"),
        (["--num-samples", "0"], "`num_samples` must be >= 1"),
        (["--train", "/no/such/file.csv"], "/no/such/file.csv"),
        (["--resume", "never-ran"], "no study named 'never-ran'"),
        (["--name", "../outside"], "`name` must be 1-100 letters"),
    ],
)
def test_bad_settings_exit_2_before_anything_is_written(tmp_path, capsys, args, message):
    results = tmp_path / "results"
    assert main([*args, "--results-dir", str(results)]) == 2
    assert message in capsys.readouterr().err.replace("\n", " ")
    assert not results.exists() or not any(results.iterdir())


def test_unknown_setting_in_the_toml_file(tmp_path, capsys):
    (tmp_path / "study.toml").write_text("num-samples = 3\nnum-trails = 5\n")
    assert main(["--config", str(tmp_path / "study.toml"), "--results-dir", str(tmp_path / "r")]) == 2
    assert "unknown setting 'num-trails'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_help_reads_well(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--train",
        "--valid",
        "--unlabelled",
        "--label-map",
        "--space",
        "--num-samples",
        "--max-epochs",
        "--grace-period",
        "--reduction-factor",
        "--max-concurrent",
        "--cpus-per-trial",
        "--gpus-per-trial",
        "--seed",
        "--name",
        "--results-dir",
        "--address",
        "--storage",
        "--resume",
        "--smoke",
        "exit codes",
    ):
        assert flag in out, flag


def test_help_lists_every_search_space_of_the_registry(capsys):
    from search_spaces import SPACES

    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    space = out[out.index("--space SPACE named") : out.index("--num-samples NUM_SAMPLES trials")]
    for name, s in SPACES.items():
        assert f"{name} ({' '.join(s.description.split())})" in space, name
    assert "wide" in SPACES


def test_an_option_value_may_start_with_a_dash(tmp_path, capsys):
    """`--label-map -1=NEGATIVE,...` with a space, as most people type it, reaches the data check (issue #14)."""
    rows = [f"tweet {i},{label},ND" for i, label in enumerate(["-1", "0", "1", "2"] * 3)]
    (tmp_path / "numeric.csv").write_text("\n".join(["Text,Sentiment,Party", *rows]) + "\n")
    argv = ["--train", str(tmp_path / "numeric.csv"), "--label-map", "-1=NEGATIVE,0=NEUTRAL,1=POSITIVE"]
    assert main([*argv, "--data-seed", "-1", "--results-dir", str(tmp_path / "r")]) == 2
    message = " ".join(capsys.readouterr().err.split())
    assert "not in the label map ['-1', '0', '1']: '2'" in message  # the map as given, read by the data check
    assert not (tmp_path / "r").exists()
    with pytest.raises(SystemExit) as e:  # an option right after still means the value is missing
        main(["--label-map", "--train", "x.csv"])
    assert e.value.code == 2 and "--label-map: expected one argument" in capsys.readouterr().err
