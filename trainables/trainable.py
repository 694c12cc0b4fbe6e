"""The Ray Tune function trainable: `fit` from train.py with tune.report and a checkpoint every epoch.

A trial whose config holds representation settings (a space that searches them) takes its data from the
study's representation store instead of the study's own data.

Each checkpoint holds `state.pt` (model, optimiser, RNG states, epoch; loaded with weights_only=True; frozen
word vectors left out, of tuned ones only the rows training changed), `val_probs.npy` (the epoch's validation
probabilities, which the driver reads for the best epochs) and `history.json` (every epoch's metrics so far).
Each report carries the checkpoint's size as `checkpoint_bytes`. Which checkpoints a study keeps is the
driver's choice (study/search/checkpoints.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from ray import tune

from trainables.hparams import HParams
from trainables.metrics import METRIC
from trainables.prepare import EncodedData
from trainables.train import EpochReport, fit
from trainables.vectorize import split_params

STATE_FILE, PROBS_FILE, HISTORY_FILE = "state.pt", "val_probs.npy", "history.json"
CHECKPOINT_BYTES = "checkpoint_bytes"  # a reported metric: the bytes of the epoch's checkpoint
# a reported metric that ranks checkpoints: METRIC, ties broken towards the earlier epoch (as a trial's `best_epoch`
# is chosen), so Ray's best checkpoint is that epoch's (macro-F1 steps are >= 1/N_valid, far above 1e-9 per epoch)
CHECKPOINT_SCORE = "checkpoint_score"


def load_state(checkpoint: tune.Checkpoint) -> dict[str, Any]:
    with checkpoint.as_directory() as d:
        return torch.load(Path(d) / STATE_FILE, weights_only=True, map_location="cpu")


def load_history(checkpoint: tune.Checkpoint) -> list[dict[str, Any]]:
    """The metrics of every epoch up to the checkpoint's."""
    with checkpoint.as_directory() as d:
        return json.loads((Path(d) / HISTORY_FILE).read_text())


def release_freed_memory() -> None:
    """Hand the C heap's free pages back to the OS (glibc; elsewhere a no-op).

    A reused trial process (`reuse_actors`) otherwise keeps the heap that its earlier trials freed: 447 MB after
    one trial and 478 MB after 60, against 438-439 MB throughout with the trim (benchmarks/worker_memory.py,
    oneDNN's cache off in both).
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


ONEDNN_CACHE_VARIABLE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"


def no_kernel_cache_per_shape() -> None:
    """Switch off oneDNN's primitive cache in this process, unless the environment sets its capacity.

    On the CPU, PyTorch runs an RNN batch whose tweets all have the same length through oneDNN, which caches a
    primitive for every input shape it meets (up to 1024). A reused trial process meets new shapes with every
    configuration: with the cache it grew from 443 to 499 MB over 60 trials and was still growing; without it,
    438-439 MB throughout, and epochs were no slower (benchmarks/worker_memory.py). oneDNN reads the variable
    when it creates its first primitive, so this must run before the process's first training step.
    """
    os.environ.setdefault(ONEDNN_CACHE_VARIABLE, "0")


def representation_data(store, params: dict[str, Any]) -> EncodedData:
    """The EncodedData of a searched representation from the study's store (study/search/representations.py): built
    once per study, shared through the object store, waited for while another trial's request builds it."""
    return ray.get(ray.get(store.get.remote(params))[0])


def train_sentiment(config: dict[str, Any], data: EncodedData | None, fixed: dict[str, Any], store=None) -> None:
    no_kernel_cache_per_shape()
    release_freed_memory()
    representation, config = split_params(config)
    if representation:  # a space that searches the representation: this trial's data comes from the store
        data = representation_data(store, representation)
    hp = HParams.from_dict({**fixed, **config})
    checkpoint = tune.get_checkpoint()
    state = load_state(checkpoint) if checkpoint else None
    history = load_history(checkpoint) if checkpoint else []
    node_id = ray.get_runtime_context().get_node_id()

    def report(r: EpochReport) -> None:
        metrics = {**r.metrics, "node_id": node_id}
        history.append(metrics)
        with tempfile.TemporaryDirectory() as d:
            torch.save(r.state(), Path(d) / STATE_FILE)
            np.save(Path(d) / PROBS_FILE, r.val_probs.astype(np.float32))
            # every epoch so far: a worker killed after saving this checkpoint but before Ray logged the
            # result loses the epoch from result.json, not from the study's records
            (Path(d) / HISTORY_FILE).write_text(json.dumps(history))
            written = sum(p.stat().st_size for p in Path(d).iterdir())
            score = metrics[METRIC] - 1e-9 * metrics["epoch"]
            report = {**metrics, CHECKPOINT_BYTES: written, CHECKPOINT_SCORE: score}
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(d))

    fit(hp, data, report, state)
