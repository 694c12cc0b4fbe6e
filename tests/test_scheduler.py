import pickle

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from study.search.scheduler import FullRungASHA, min_rung_size

RUNGS = dict(metric="f1", mode="max", max_t=9, grace_period=1, reduction_factor=3)


def _trials(n):
    return [Trial("t", trial_id=f"t{i}", stub=True) for i in range(n)]


def _decide(scheduler, trial, epoch, f1):
    return scheduler.on_trial_result(None, trial, {"training_iteration": epoch, "f1": f1})


@pytest.mark.parametrize(
    "reduction_factor, num_samples, expected", [(3, 30, 3), (3, 9, 3), (3, 8, 1), (3, 2, 1), (4, 1, 1), (2, 4, 2)]
)
def test_min_rung_size_is_the_reduction_factor_in_studies_of_rf_squared_trials(reduction_factor, num_samples, expected):
    assert min_rung_size(reduction_factor, num_samples) == expected


def test_no_trial_passes_a_rung_before_it_holds_min_rung_trials():
    scheduler, trials = FullRungASHA(3, **RUNGS), _trials(5)
    for t in trials:
        scheduler.on_trial_add(None, t)
    # rung 1: the first two stop whatever their score; the third goes on only in the top third of the three
    assert _decide(scheduler, trials[0], 1, 0.50) == TrialScheduler.STOP
    assert _decide(scheduler, trials[1], 1, 0.40) == TrialScheduler.STOP
    assert _decide(scheduler, trials[2], 1, 0.45) == TrialScheduler.STOP  # below the 2/3 quantile of 0.40, 0.50
    assert _decide(scheduler, trials[3], 1, 0.60) == TrialScheduler.CONTINUE
    assert _decide(scheduler, trials[3], 2, 0.30) == TrialScheduler.CONTINUE  # between rungs: no decision
    assert _decide(scheduler, trials[3], 3, 0.61) == TrialScheduler.STOP  # first at rung 3
    assert _decide(scheduler, trials[4], 1, 0.70) == TrialScheduler.CONTINUE


def test_ray_asha_lets_the_first_arrivals_through_and_min_rung_1_is_ray_asha():
    for scheduler in (ASHAScheduler(**RUNGS), FullRungASHA(1, **RUNGS)):
        trials = _trials(3)
        for t in trials:
            scheduler.on_trial_add(None, t)
        assert _decide(scheduler, trials[0], 1, 0.30) == TrialScheduler.CONTINUE
        assert _decide(scheduler, trials[1], 1, 0.31) == TrialScheduler.CONTINUE
        assert _decide(scheduler, trials[2], 1, 0.20) == TrialScheduler.STOP
        assert _decide(scheduler, trials[0], 9, 0.40) == TrialScheduler.STOP  # max_t


def test_the_rungs_survive_save_and_restore(tmp_path):
    scheduler, trials = FullRungASHA(3, **RUNGS), _trials(4)
    for t in trials:
        scheduler.on_trial_add(None, t)
    for t, f1 in zip(trials[:2], (0.5, 0.4)):
        _decide(scheduler, t, 1, f1)
    scheduler.save(str(tmp_path / "s.pkl"))
    restored = FullRungASHA(3, **RUNGS)
    restored.restore(str(tmp_path / "s.pkl"))
    assert _decide(restored, trials[2], 1, 0.6) == TrialScheduler.CONTINUE
    assert pickle.loads(pickle.dumps(restored))._brackets[0].min_rung == 3


def test_min_rung_below_one_is_refused():
    with pytest.raises(ValueError, match="`min_rung` must be >= 1, but got 0"):
        FullRungASHA(0, **RUNGS)
