"""The trial function's process settings (the trial itself runs in the study tests)."""

import os
import subprocess
import sys

import pytest

from trainables.trainable import ONEDNN_CACHE_VARIABLE

# what a trial process does: torch first (Ray Tune imports it), then the trial's setting, then training steps
TWO_STEPS = """
import os
import torch
from trainables.trainable import ONEDNN_CACHE_VARIABLE, no_kernel_cache_per_shape
no_kernel_cache_per_shape()
print(os.environ[ONEDNN_CACHE_VARIABLE])
torch.set_num_threads(1)
rnn = torch.nn.LSTM(4, 4, batch_first=True)
x = torch.randn(3, 5, 4)  # one length: oneDNN's RNN kernels
for _ in range(2):
    rnn(x)[0].sum().backward()
"""


def _run(capacity: str | None) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if k != ONEDNN_CACHE_VARIABLE}
    env["ONEDNN_VERBOSE"] = "profile_create"  # a line per primitive created: cache_hit or cache_miss
    if capacity is not None:
        env[ONEDNN_CACHE_VARIABLE] = capacity
    out = subprocess.run([sys.executable, "-c", TWO_STEPS], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.splitlines()[0], out.stdout


@pytest.mark.parametrize(("given", "expected", "cached"), [(None, "0", False), ("1024", "1024", True)])
def test_trial_process_switches_off_onednn_cache_unless_the_environment_sets_it(given, expected, cached):
    value, log = _run(given)
    assert value == expected
    assert "create:cache_miss" in log  # oneDNN ran, and said so
    assert ("create:cache_hit" in log) is cached  # the second step reused the first's kernels only with a cache
