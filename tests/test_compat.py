"""study/compat.py: every Ray internal the study uses, pinned. Each test fails when the installed Ray changes
what the product relies on, before a study misbehaves."""

import inspect
from pathlib import Path

import pytest

RUNGS = dict(metric="f1", mode="max", max_t=9, grace_period=1, reduction_factor=3)


def test_the_trial_controller_has_what_the_reset_fix_wraps_and_the_fix_applies_once():
    from ray.tune.execution.tune_controller import TuneController

    from study.compat import retry_trials_whose_worker_dies_in_reset

    for name in ("_trial_task_failure", "_actor_failed", "_schedule_trial_reset"):
        assert callable(getattr(TuneController, name)), name
    assert list(inspect.signature(TuneController._trial_task_failure).parameters) == ["self", "trial", "exception"]
    init = inspect.getsource(TuneController.__init__)
    assert "self._trial_to_actor" in init and "self._resetting_trials" in init
    original = TuneController._trial_task_failure
    retry_trials_whose_worker_dies_in_reset()
    patched = TuneController._trial_task_failure
    retry_trials_whose_worker_dies_in_reset()  # idempotent
    assert TuneController._trial_task_failure is patched
    assert patched is not original or getattr(TuneController, "_rnn_study_reset_fix", False)  # applied earlier
    assert "trial_task_failure(self, trial, exception)" in inspect.getsource(patched)


def test_rays_bracket_api_is_what_full_rung_asha_builds_on():
    """Ray's ASHA keeps its rungs in `_brackets` (a list of `_Bracket`) and asks `_Bracket.cutoff` for the score
    to beat; FullRungASHA replaces both."""
    from ray.tune.schedulers.async_hyperband import AsyncHyperBandScheduler, _Bracket

    from study.compat import FullRungBracket
    from study.search.scheduler import FullRungASHA

    ray_asha = AsyncHyperBandScheduler(brackets=1, **RUNGS)
    assert isinstance(ray_asha._brackets, list) and [type(b) for b in ray_asha._brackets] == [_Bracket]
    assert list(inspect.signature(_Bracket.cutoff).parameters) == ["self", "recorded"]
    assert "cutoff(" in inspect.getsource(_Bracket.on_result)
    ours = FullRungASHA(3, **RUNGS)
    assert [type(b) for b in ours._brackets] == [FullRungBracket] and FullRungBracket.__mro__[1] is _Bracket
    assert vars(ours._brackets[0]).keys() == vars(ray_asha._brackets[0]).keys() | {"min_rung"}


def test_the_callbacks_set_on_a_restored_tuner_are_the_ones_its_run_uses(tmp_path):
    """Tuner.restore takes no callbacks and brings back the pickled ones; `set_restored_callbacks` sets them
    through the restored tuner's private `_local_tuner`."""
    from ray import tune

    from study.compat import set_restored_callbacks

    class Marker(tune.Callback):
        pass

    def trainable(config):
        tune.report({"x": 1})

    tune.Tuner(trainable, run_config=tune.RunConfig(name="e", storage_path=str(tmp_path), callbacks=[Marker()]))
    assert "callbacks" not in inspect.signature(tune.Tuner.restore).parameters
    restored = tune.Tuner.restore(str(tmp_path / "e"), trainable=trainable)
    assert [type(c).__name__ for c in restored._local_tuner.get_run_config().callbacks] == ["Marker"]
    ours = [Marker()]
    set_restored_callbacks(restored, ours)
    assert restored._local_tuner._run_config.callbacks is ours  # the run config that fit() passes to tune.run
    assert "callbacks=self._run_config.callbacks" in inspect.getsource(type(restored._local_tuner)).replace(" ", "")


def test_the_address_file_and_canonical_addresses_are_rays(tmp_path, monkeypatch):
    from study.compat import canonical_address, ray_address_file

    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    assert ray_address_file() == tmp_path / "ray" / "ray_current_cluster"
    host, port = canonical_address("127.0.0.1:6379").rsplit(":", 1)
    assert port == "6379" and host  # this node's IP, as Ray writes a local address
    with pytest.raises(ValueError, match="nonsense"):
        canonical_address("nonsense")


def test_the_saved_trials_are_those_of_rays_newest_experiment_state(small_study, tmp_path):
    """`saved_trials` reads Ray's experiment state file (its format is Ray's): the real study's trials, all ended,
    each with its last epoch's checkpoint; a state being written (cut short) or none at all reads as None."""
    import shutil

    from pyarrow import fs

    from study.compat import saved_trials
    from study.results import read_table

    experiment = small_study / "ray" / small_study.name
    local = fs.LocalFileSystem()
    trials = read_table(small_study / "trials.parquet")
    expected = {t: ("TERMINATED", f"checkpoint_{n - 1:06d}") for t, n in zip(trials["trial_id"], trials["epochs_run"])}
    assert saved_trials(local, str(experiment)) == expected
    copy = Path(shutil.copytree(experiment, tmp_path / "copy", ignore=shutil.ignore_patterns("train_*")))
    (state,) = copy.glob("experiment_state-*.json")
    state.write_text(state.read_text()[:200])
    assert saved_trials(local, str(copy)) is None
    assert saved_trials(local, str(tmp_path / "none")) is None
