"""The trial function's process settings (the trial itself runs in the study tests)."""

import os
import subprocess
import sys

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


def _start(capacity: str | None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != ONEDNN_CACHE_VARIABLE}
    env["ONEDNN_VERBOSE"] = "profile_create"  # a line per primitive created: cache_hit or cache_miss
    if capacity is not None:
        env[ONEDNN_CACHE_VARIABLE] = capacity
    return subprocess.Popen([sys.executable, "-c", TWO_STEPS], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)  # fmt: skip


def test_trial_process_switches_off_onednn_cache_unless_the_environment_sets_it():
    cases = {None: ("0", False), "1024": ("1024", True)}  # given -> (the value the process runs with, cache hits)
    procs = {given: _start(given) for given in cases}  # both at once: each is mostly torch's import
    for given, (expected, cached) in cases.items():
        out, err = procs[given].communicate(timeout=120)
        assert procs[given].returncode == 0, err[-2000:]
        assert out.splitlines()[0] == expected, given
        assert "create:cache_miss" in out  # oneDNN ran, and said so
        assert ("create:cache_hit" in out) is cached, given  # the second step reused the first step's kernels: a cache
