"""ASHA whose rungs promote only once they hold enough trials to compare.

Ray's ASHA compares a trial that reaches a rung with the trials recorded there before it. The first trial
to arrive has nothing to compare with and always goes on; the second goes on when it beats the first. In a
TPE study the first arrivals are the random start-up trials, so these free promotions ran 8-10 of 30 trials
to the last epoch in the performance benchmark (ASHA spent 0.42 of FIFO's trial-epochs where successive
halving promises about 1/rf per rung). Here a trial passes a rung only when at least `min_rung - 1` trials
reached the rung before it, as in synchronous successive halving and Optuna's SuccessiveHalvingPruner,
where a rung promotes its best 1/rf only once it holds rf trials. Studies of fewer than rf**2 trials keep
Ray's rule (see `min_rung_size`).
"""

from __future__ import annotations

from ray.tune.schedulers.async_hyperband import AsyncHyperBandScheduler

from study.compat import FullRungBracket, use_brackets


def min_rung_size(reduction_factor: int, num_samples: int) -> int:
    """Trials (the deciding one included) a rung must hold before any may pass it.

    `reduction_factor`, as in successive halving, for studies of at least `reduction_factor**2` trials. A
    smaller study keeps Ray's rule (1): its rungs may never fill (a trial that errors never reaches them), and
    a smoke run of a few trials should still see one run to the end.
    """
    return reduction_factor if num_samples >= reduction_factor**2 else 1


class FullRungASHA(AsyncHyperBandScheduler):
    """`ASHAScheduler` (one bracket) whose rungs promote only once they hold `min_rung` trials.

    Args:
        min_rung: trials a rung must hold, the deciding one included, before a trial may pass it
            (1: Ray's ASHA).
        **kwargs: as for `ray.tune.schedulers.ASHAScheduler`.
    """

    def __init__(
        self, min_rung: int, *, max_t: int, grace_period: int, reduction_factor: float, stop_last_trials=True, **kwargs
    ):
        if min_rung < 1:
            raise ValueError(f"`min_rung` must be >= 1, but got {min_rung}.")
        rungs = dict(max_t=max_t, grace_period=grace_period, reduction_factor=reduction_factor)
        super().__init__(brackets=1, stop_last_trials=stop_last_trials, **rungs, **kwargs)
        bracket = FullRungBracket(min_rung, grace_period, max_t, reduction_factor, 0, stop_last_trials=stop_last_trials)
        use_brackets(self, [bracket])
