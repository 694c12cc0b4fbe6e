"""The settings of one training run, without torch: the model's (ModelConfig) and fit's (HParams).

They live apart from model.py and train.py so that a search space (search_spaces/) and the study's settings can
read their names, types and checks without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

CELLS = ("rnn", "lstm", "gru")  # vanilla (tanh) RNN, LSTM, GRU: model.py maps them to torch's modules
SCHEDULES = ("none", "cosine", "onecycle")


@dataclass(frozen=True)
class ModelConfig:
    cell: str = "lstm"  # one of CELLS
    input_size: int = 300  # features per timestep: embedding dim, or 1 for the `mean` encoding
    hidden_size: int = 64  # H, per direction
    num_layers: int = 2  # stacked recurrent layers
    bidirectional: bool = True
    dropout: float = 0.3  # between stacked layers and before the classifier
    embedding_dropout: float = 0.0  # share of input timesteps (whole token vectors) zeroed in training
    skip: bool = True  # residual connection around every layer whose input and output widths match
    attention: bool = True  # dot-product attention over all timesteps, query = last hidden state
    num_classes: int = 3

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"`cell` must be one of {CELLS}, but got {self.cell!r}.")
        for name in ("input_size", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, but got {getattr(self, name)}.")
        for name in ("dropout", "embedding_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), but got {getattr(self, name)}.")
        if self.num_classes < 2:
            raise ValueError(f"`num_classes` must be >= 2, but got {self.num_classes}.")

    @property
    def out_size(self) -> int:
        return self.hidden_size * (2 if self.bidirectional else 1)


@dataclass(frozen=True)
class HParams:
    """The settings of one training run: the model's (their defaults and checks are ModelConfig's), then fit's."""

    cell: str = ModelConfig.cell
    hidden_size: int = ModelConfig.hidden_size
    num_layers: int = ModelConfig.num_layers
    bidirectional: bool = ModelConfig.bidirectional
    dropout: float = ModelConfig.dropout
    embedding_dropout: float = ModelConfig.embedding_dropout
    skip: bool = ModelConfig.skip
    attention: bool = ModelConfig.attention
    clip: float = 1.0  # max gradient L2 norm; 0 disables clipping
    lr: float = 1e-3  # Adam learning rate (one-cycle: its peak)
    batch_size: int = 128
    max_epochs: int = 10
    freeze_embeddings: bool = True  # `sequence` mode: keep the word vectors fixed
    weight_decay: float = 0.0  # AdamW's decoupled weight decay, not on the embedding matrix; 0: Adam
    lr_schedule: str = "none"  # "none" | "cosine" (to 0 over max_epochs) | "onecycle"; stepped every batch
    label_smoothing: float = 0.0  # share of the target mass spread over every class in the training loss
    seed: int = 0
    device: str = "auto"  # "auto" (CUDA when present) | "cpu" | "cuda" | "cuda:N"
    num_threads: int = 0  # torch intra-op threads; 0 leaves torch's default

    def __post_init__(self) -> None:
        self.model_config(ModelConfig.input_size, ModelConfig.num_classes)  # the model's own checks
        for name in ("batch_size", "max_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, but got {getattr(self, name)}.")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise ValueError(f"`lr` must be a finite number > 0, but got {self.lr}.")
        if not self.clip >= 0:
            raise ValueError(f"`clip` must be >= 0 (0 disables clipping), but got {self.clip}.")
        if self.num_threads < 0:
            raise ValueError(f"`num_threads` must be >= 0, but got {self.num_threads}.")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ValueError(f"`weight_decay` must be a finite number >= 0, but got {self.weight_decay}.")
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"`lr_schedule` must be one of {SCHEDULES}, but got {self.lr_schedule!r}.")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"`label_smoothing` must be in [0, 1), but got {self.label_smoothing}.")

    def model_config(self, input_size: int, num_classes: int) -> ModelConfig:
        """The model of these settings for data of `input_size` features per step and `num_classes` classes."""
        shared = {f.name: getattr(self, f.name) for f in fields(ModelConfig) if hasattr(self, f.name)}
        return ModelConfig(input_size=input_size, num_classes=num_classes, **shared)

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> HParams:
        """Build from a Tune config or settings dict, whose every key must be a field.

        Raises:
            ValueError: a key that is no field (the message names it and the fields), or a bad value.
        """
        names = [f.name for f in fields(cls)]
        if unknown := sorted(set(config) - set(names)):
            raise ValueError(f"hyperparameters must be among {', '.join(names)}, but got `{unknown[0]}`.")
        return cls(**config)
