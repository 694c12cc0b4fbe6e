"""What a study keeps of its trials' checkpoints (study/search/checkpoints.py): the plan, and a real study that
ends with the best checkpoint of its top `--keep-checkpoints` trials only, its costs in study.json,
and still resumes."""

import json
from pathlib import Path

import pytest

from study.search.checkpoints import Removal, TrialCheckpoints, plan_removals
from trainables.trainable import HISTORY_FILE, PROBS_FILE, STATE_FILE


def test_the_plan_keeps_the_top_trials_best_whole_the_latest_history_and_the_predicted_probabilities():
    trials = [
        TrialCheckpoints("a", ("checkpoint_000000", "checkpoint_000001", "checkpoint_000002"), "checkpoint_000002",
                         "checkpoint_000001"),
        TrialCheckpoints("b", ("checkpoint_000000", "checkpoint_000001"), "checkpoint_000001", "checkpoint_000001"),
        TrialCheckpoints("c", ("checkpoint_000000",), "checkpoint_000000", "checkpoint_000000"),
        TrialCheckpoints("d", (), None, None),  # errored before its first checkpoint
    ]  # fmt: skip
    plan = plan_removals(trials, keep_whole=["a"], keep_probs=["a", "b"])
    assert plan == [
        Removal("a", "checkpoint_000000", None),  # an orphan: neither the latest nor a kept best
        Removal("a", "checkpoint_000002", (STATE_FILE, PROBS_FILE)),  # the latest keeps its history
        Removal("b", "checkpoint_000000", None),
        Removal("b", "checkpoint_000001", (STATE_FILE,)),  # latest and best: history and probabilities
        Removal("c", "checkpoint_000000", (STATE_FILE, PROBS_FILE)),
    ]
    assert plan_removals(trials, keep_whole=[], keep_probs=[])[1] == Removal("a", "checkpoint_000001", None)


def _files(folder: Path, name: str) -> set[str]:
    return {str(p.relative_to(folder / "ray" / folder.name)) for p in folder.glob(f"ray/{folder.name}/*/*/{name}")}


@pytest.mark.slow
def test_a_study_keeps_the_best_checkpoint_of_its_top_trials_only_and_says_what_checkpoints_cost(tmp_path, monkeypatch):
    import ray

    from study.config import StudyConfig
    from study.results import read_table
    from study.search.driver import run_study

    monkeypatch.setenv("RNN_STUDY_CACHE", str(tmp_path / "cache"))
    cfg = StudyConfig.from_settings(space="smoke", num_samples=3, max_epochs=3, grace_period=3, demo_rows=300,
                      vector_size=16, final_top=0, keep_predictions=2, keep_checkpoints=1, name="k",
                      results_dir=str(tmp_path / "results"))  # fmt: skip
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    try:
        outcome = run_study(cfg)
        folder = outcome.folder
        trials = read_table(folder / "trials.parquet").sort_values("best_val_macro_f1", ascending=False)
        best = trials.iloc[0]
        (state,) = _files(folder, STATE_FILE)  # one trial keeps one checkpoint's state: the top trial's best epoch
        assert best["trial_id"] in state
        assert json.loads((folder / "ray" / "k" / Path(state).parent / HISTORY_FILE).read_text())  # whole
        assert len(_files(folder, HISTORY_FILE)) >= 3  # every trial's latest keeps its epoch history
        assert {p.split("/")[0].split("_")[2] for p in _files(folder, PROBS_FILE)} == set(trials["trial_id"][:2])
        disk = outcome.info["disk"]
        assert disk["checkpoints_written"] == trials["epochs_run"].sum() == 9 and disk["checkpoints_kept"] == 1
        assert disk["checkpoint_bytes_per_trial_epoch"] == disk["checkpoint_bytes_written"] / 9 > 0
        assert 0 < disk["folder_bytes"] < 3 * disk["checkpoint_bytes_written"]
        predictions = read_table(folder / "predictions.parquet")

        again = run_study(
            StudyConfig.from_settings(resume="k", results_dir=str(tmp_path / "results"))
        )  # nothing left to run
        assert again.info["status"] == "completed" and again.info["disk"]["checkpoints_kept"] == 1
        assert read_table(folder / "predictions.parquet").equals(predictions)  # what the results need stayed
        assert read_table(folder / "epochs.parquet")["trial_id"].value_counts().to_dict() == {
            t: 3 for t in trials["trial_id"]
        }
    finally:
        if started:
            ray.shutdown()
