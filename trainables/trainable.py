"""The Ray Tune function trainable: `fit` from train.py with tune.report and a checkpoint every epoch.

Each checkpoint holds `state.pt` (model, optimiser, RNG states, epoch; loaded with weights_only=True) and
`val_probs.npy` (the epoch's validation probabilities, which the driver reads for the best epochs).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch
from ray import tune

from trainables.prepare import EncodedData
from trainables.train import EpochReport, HParams, fit

STATE_FILE, PROBS_FILE = "state.pt", "val_probs.npy"


def load_state(checkpoint: tune.Checkpoint) -> dict[str, Any]:
    with checkpoint.as_directory() as d:
        return torch.load(Path(d) / STATE_FILE, weights_only=True, map_location="cpu")


def train_sentiment(config: dict[str, Any], data: EncodedData, fixed: dict[str, Any]) -> None:
    hp = HParams.from_dict({**fixed, **config})
    checkpoint = tune.get_checkpoint()
    state = load_state(checkpoint) if checkpoint else None
    node_id = ray.get_runtime_context().get_node_id()

    def report(r: EpochReport) -> None:
        with tempfile.TemporaryDirectory() as d:
            torch.save(r.state(), Path(d) / STATE_FILE)
            np.save(Path(d) / PROBS_FILE, r.val_probs.astype(np.float32))
            tune.report({**r.metrics, "node_id": node_id}, checkpoint=tune.Checkpoint.from_directory(d))

    fit(hp, data, report, state)
