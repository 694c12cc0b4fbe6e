"""The named search spaces of the RNN classifier, as Optuna distributions (plain data, no computation).

Each space says which hyperparameters TPE searches, which are fixed, and which configurations are
tried first. Names match HParams fields in trainables/train.py, and the representation settings a space may
search (trainables/vectorize.py `SEARCHED`: vectorizer, vector_size, window, sg, min_count), whose trials take
their data from the study's representation store (study/search/representations.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from trainables.vectorize import SEARCHED


@dataclass(frozen=True)
class SearchSpace:
    name: str
    description: str
    params: dict[str, BaseDistribution]  # searched by TPE
    fixed: dict[str, Any] = field(default_factory=dict)  # the same for every trial
    enqueue: tuple[dict[str, Any], ...] = ()  # configurations tried first, in order

    def __post_init__(self) -> None:
        overlap = set(self.params) & set(self.fixed)
        if overlap:
            raise ValueError(f"space {self.name!r}: {sorted(overlap)} are both searched and fixed.")
        representation = sorted(set(self.fixed) & set(SEARCHED))
        if representation:
            raise ValueError(
                f"space {self.name!r}: the representation settings {representation} may be searched, not fixed "
                "(a study's own representation comes from its data settings)."
            )
        for point in self.enqueue:
            if set(point) != set(self.params):
                raise ValueError(f"space {self.name!r}: an enqueued point must set exactly {sorted(self.params)}.")
            try:  # Optuna's public check that values lie in their distributions
                optuna.trial.create_trial(params=point, distributions=self.params, value=0.0)
            except ValueError as e:
                raise ValueError(f"space {self.name!r}: an enqueued point is outside the space: {e}") from None


DEFAULT = SearchSpace(
    name="default",
    description="cell, attention and skip plus hidden size, layers, dropout, clip, lr (log) and batch size",
    params={
        "cell": CategoricalDistribution(["rnn", "lstm", "gru"]),
        "attention": CategoricalDistribution([True, False]),
        "skip": CategoricalDistribution([True, False]),
        "hidden_size": IntDistribution(16, 256, log=True),
        "num_layers": IntDistribution(1, 3),
        "dropout": FloatDistribution(0.0, 0.5),
        "clip": FloatDistribution(0.1, 5.0, log=True),
        "lr": FloatDistribution(1e-4, 1e-2, log=True),
        "batch_size": CategoricalDistribution([32, 64, 128, 256, 512]),
    },
    fixed={"bidirectional": True},
)

# The original work's ranges, with its best trial (§3.1.9) tried first.
SEED = SearchSpace(
    name="seed",
    description="the original work's ranges (LSTM, bidirectional, attention, skip), its best trial enqueued first",
    params={
        "hidden_size": IntDistribution(8, 256, log=True),
        "num_layers": IntDistribution(1, 3),
        "dropout": FloatDistribution(0.1, 0.5),
        "clip": FloatDistribution(0.1, 5.0, log=True),
        "lr": FloatDistribution(1e-4, 1e-2, log=True),
        "batch_size": CategoricalDistribution([64, 128, 256, 512, 1024, 2048]),
    },
    fixed={"cell": "lstm", "bidirectional": True, "attention": True, "skip": True},
    enqueue=({"hidden_size": 16, "num_layers": 3, "dropout": 0.3, "clip": 0.4, "lr": 1e-4, "batch_size": 2048},),
)

SMOKE = SearchSpace(
    name="smoke",
    description="tiny models for a quick check that everything runs",
    params={
        "cell": CategoricalDistribution(["lstm", "gru"]),
        "hidden_size": IntDistribution(8, 32, log=True),
        "lr": FloatDistribution(1e-3, 1e-2, log=True),
        "dropout": FloatDistribution(0.0, 0.3),
    },
    fixed={
        "num_layers": 1,
        "bidirectional": True,
        "attention": True,
        "skip": False,
        "clip": 1.0,
        "batch_size": 64,
    },
)

# Everything `default` searches, plus the representation and the training options that matter with frozen or
# tuned vectors. The representation grid is kept small on purpose (2 x 2 x 2 x 2 x 2 = 32 representations, the
# study's own settings among them), each trained at most once per study and cached on disk: a study pays for the
# representations its trials use, and the study's own one is already there.
WIDE = SearchSpace(
    name="wide",
    description="default's network settings plus the representation (word2vec or fasttext, size, window, sg, "
    "min_count), fine-tuning, embedding dropout, AdamW weight decay, LR schedule and label smoothing",
    params={
        **DEFAULT.params,
        "vectorizer": CategoricalDistribution(["word2vec", "fasttext"]),
        "vector_size": CategoricalDistribution([100, 300]),
        "window": CategoricalDistribution([3, 5]),
        "sg": CategoricalDistribution([False, True]),
        "min_count": CategoricalDistribution([1, 2]),
        "freeze_embeddings": CategoricalDistribution([True, False]),
        "embedding_dropout": FloatDistribution(0.0, 0.4),
        "weight_decay": FloatDistribution(1e-6, 1e-1, log=True),
        "lr_schedule": CategoricalDistribution(["none", "cosine", "onecycle"]),
        "label_smoothing": FloatDistribution(0.0, 0.2),
    },
    fixed={"bidirectional": True},
)
