"""The training loop: `fit(hp, data, report)` in plain PyTorch, Adam + cross-entropy + gradient clipping.

After every epoch `report` receives an EpochReport (metrics, validation probabilities, and a function that
returns the full training state). `fit` can start from such a state and then gives the same result as an
uninterrupted run. Ray lives in trainable.py, which wraps this function unchanged.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from trainables.metrics import METRIC, classification_metrics
from trainables.model import ModelConfig, RNNClassifier
from trainables.prepare import EncodedData


@dataclass(frozen=True)
class HParams:
    """The settings of one training run: the model's (their defaults and checks are ModelConfig's), then fit's."""

    cell: str = ModelConfig.cell
    hidden_size: int = ModelConfig.hidden_size
    num_layers: int = ModelConfig.num_layers
    bidirectional: bool = ModelConfig.bidirectional
    dropout: float = ModelConfig.dropout
    skip: bool = ModelConfig.skip
    attention: bool = ModelConfig.attention
    clip: float = 1.0  # max gradient L2 norm; 0 disables clipping
    lr: float = 1e-3  # Adam learning rate
    batch_size: int = 128
    max_epochs: int = 10
    freeze_embeddings: bool = True  # `sequence` mode: keep the Word2Vec vectors fixed
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
        unknown = sorted(set(config) - set(names))
        if unknown:
            raise ValueError(f"hyperparameters must be among {', '.join(names)}, but got `{unknown[0]}`.")
        return cls(**config)


@dataclass(frozen=True)
class EpochReport:
    metrics: dict[str, Any]  # losses, validation metrics, epoch (1-based), epoch_time_s
    val_probs: np.ndarray  # (N_valid, C) validation probabilities of this epoch
    state: Callable[[], dict[str, Any]]  # the full training state after this epoch, for checkpoints


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite (e.g. a learning rate far too large)."""

    exit_code = 1  # a command says the message and exits 1 (study.cli.run_command): the traceback tells no more


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`device` is {name!r}, but no CUDA device is available here; use 'auto' or 'cpu'.")
    return device


def _shared(a: np.ndarray) -> torch.Tensor:
    """A tensor over the array's memory, without a copy, also for Ray's read-only object-store arrays.

    Only read from these tensors: writing into object-store memory is undefined.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(a)


def build_model(hp: HParams, data: EncodedData) -> RNNClassifier:
    embeddings = None
    if data.embeddings is not None:
        # Frozen vectors share the (read-only, zero-copy) array that every trial reads from Ray's object store;
        # vectors that training changes get a private copy.
        embeddings = _shared(data.embeddings if hp.freeze_embeddings else data.embeddings.copy())
    cfg = hp.model_config(data.input_size, len(data.classes))
    return RNNClassifier(cfg, embeddings, freeze_embeddings=hp.freeze_embeddings)


BUCKET_POOL = 50  # batches per pool whose tweets are sorted by length (as torchtext's BucketIterator)


def epoch_batches(
    lengths: torch.Tensor, batch_size: int, bucket: bool, generator: torch.Generator
) -> list[torch.Tensor]:
    """One epoch's batches of row positions, in random order.

    With `bucket`, a random permutation is cut into pools of BUCKET_POOL batches and each pool is sorted
    by length before it is cut into batches, so a batch holds tweets of similar length and the RNN runs
    few padded steps; the batch order is then shuffled. Ties are broken by the permutation, so batches
    differ from epoch to epoch. Without `bucket`, consecutive slices of a random permutation.
    """
    perm = torch.randperm(len(lengths), generator=generator)  # (N,)
    if not bucket:
        return list(perm.split(batch_size))
    pool = batch_size * BUCKET_POOL
    batches: list[torch.Tensor] = []
    for start in range(0, len(perm), pool):
        p = perm[start : start + pool]
        batches.extend(p[torch.argsort(lengths[p], stable=True)].split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def _batches(x: torch.Tensor, lengths: torch.Tensor, batches: list[torch.Tensor], trim: bool):
    """Yield (positions, x, lengths) batches; sequence batches are cut to their longest tweet."""
    for idx in batches:
        xb, lb = x[idx], lengths[idx]
        if trim:
            xb = xb[:, : int(lb.max())]
        yield idx, xb, lb


@torch.inference_mode()
def predict_proba(
    model: RNNClassifier,
    x: torch.Tensor,
    lengths: torch.Tensor,
    batch_size: int,
    trim: bool,
    device: torch.device,
) -> np.ndarray:
    """Class probabilities (N, C) float32 in evaluation mode, in the rows' order.

    Each batch holds tweets of ONE length and is cut to it (`trim`, `sequence` mode), so the recurrent layers
    run unpacked (on the CPU through oneDNN): 0.72 of the time of batches that mix lengths and need packing
    (BENCHMARKS.md, predict section). Padding never reaches the result either way.

    Args:
        model: the classifier (set to evaluation mode here).
        x: (N, T) token ids, or (N, D) mean vectors (`trim` False: every row has the same length).
        lengths: (N,) int64 real lengths, on the CPU.
        batch_size: the most rows per forward pass.
        trim: cut each batch's ids to its length.
        device: where the model is.
    """
    model.eval()
    order = torch.argsort(lengths, stable=True)  # (N,)
    counts = torch.unique_consecutive(lengths[order], return_counts=True)[1].tolist()
    probs = torch.empty(len(x), model.cfg.num_classes)  # (N, C)
    start = 0
    for count in counts:
        for s in range(start, start + count, batch_size):
            idx = order[s : min(s + batch_size, start + count)]  # (B,) rows of one length
            lb = lengths[idx]
            xb = x[idx, : int(lb[0])] if trim else x[idx]
            logits, _ = model(xb.to(device), lb)
            probs[idx] = torch.softmax(logits.float(), dim=-1).cpu()
        start += count
    return probs.numpy()


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    x: torch.Tensor,
    lengths: torch.Tensor,
    y: torch.Tensor,
    clip: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a batch, the gradient's L2 norm clipped to `clip` (0: no clipping).

    Returns:
        The batch loss (a detached scalar tensor) and the logits (B, C), detached.
    """
    logits, _ = model(x, lengths)
    loss = loss_fn(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return loss.detach(), logits.detach()


def fit(
    hp: HParams,
    data: EncodedData,
    report: Callable[[EpochReport], None] | None = None,
    state: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Train a classifier for `hp.max_epochs` epochs, reporting after each one.

    Args:
        hp: hyperparameters.
        data: encoded training and validation data (see prepare.py); with no validation rows, the metrics
            hold only the training ones and `val_probs` is (0, C).
        report: called after every epoch; may raise to stop training (Ray stops trials this way).
        state: a state returned by an earlier EpochReport.state(); training continues after its epoch.

    Returns:
        The metrics of every epoch run by this call.

    Raises:
        NonFiniteLossError: the training loss became NaN or infinite.
    """
    if hp.num_threads:
        torch.set_num_threads(hp.num_threads)
    device = resolve_device(hp.device)
    torch.manual_seed(hp.seed)
    model = build_model(hp, data).to(device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=hp.lr)
    loss_fn = nn.CrossEntropyLoss()
    shuffle = torch.Generator().manual_seed(hp.seed)
    start_epoch = 0
    if state is not None:
        missing, unexpected = model.load_state_dict(state["model"], strict=False)
        if unexpected or set(missing) - _frozen(model):
            raise ValueError(f"saved state does not fit this model: missing {missing}, unexpected {unexpected}.")
        optimizer.load_state_dict(state["optimizer"])
        shuffle.set_state(state["shuffle_rng"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch = int(state["epoch"])

    trim = data.mode == "sequence"
    x_tr, l_tr, y_tr = (_shared(a) for a in (data.x_train, data.len_train, data.y_train))
    x_va, l_va = _shared(data.x_valid), _shared(data.len_valid)
    y_tr_dev = y_tr.to(device)
    history = []
    for epoch in range(start_epoch + 1, hp.max_epochs + 1):
        t0 = time.perf_counter()
        model.train()
        batches = epoch_batches(l_tr, hp.batch_size, trim, shuffle)
        total_loss = torch.zeros((), device=device)
        train_pred = torch.empty(len(y_tr), dtype=torch.long)
        for idx, xb, lb in _batches(x_tr, l_tr, batches, trim):
            loss, logits = train_step(model, optimizer, loss_fn, xb.to(device), lb, y_tr_dev[idx.to(device)], hp.clip)
            total_loss += loss * len(idx)
            train_pred[idx] = logits.detach().argmax(-1).cpu()
        train_loss = float(total_loss) / len(y_tr)
        if not math.isfinite(train_loss):
            raise NonFiniteLossError(
                f"training loss became {train_loss} in epoch {epoch} (lr={hp.lr}, clip={hp.clip}); "
                "lower `lr`" + (" or set `clip` > 0." if hp.clip == 0 else ".")
            )
        train_f1 = classification_metrics(y_tr.numpy(), np.eye(len(data.classes))[train_pred.numpy()], "train_")
        metrics = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_macro_f1": train_f1["train_macro_f1"],
            "train_accuracy": train_f1["train_accuracy"],
        }
        val_probs = np.empty((0, len(data.classes)), np.float32)
        if len(data.y_valid):  # a final model trained on every labelled row has no validation rows
            val_probs = predict_proba(model, x_va, l_va, max(hp.batch_size, 512), trim, device)
            val_loss = float(
                nn.functional.nll_loss(
                    torch.log(torch.from_numpy(val_probs).clamp_min(1e-12)), torch.from_numpy(data.y_valid)
                )
            )
            metrics.update({"val_loss": val_loss, **classification_metrics(data.y_valid, val_probs, "val_")})
        metrics["epoch_time_s"] = time.perf_counter() - t0
        history.append(metrics)
        if report is not None:
            report(EpochReport(metrics, val_probs, _state_fn(model, optimizer, shuffle, epoch)))
    return history


def _frozen(model: nn.Module) -> set[str]:
    """Names of parameters that never change during training (the frozen embedding matrix)."""
    return {name for name, p in model.named_parameters() if not p.requires_grad}


def _state_fn(model: nn.Module, optimizer: torch.optim.Optimizer, shuffle: torch.Generator, epoch: int):
    frozen = _frozen(model)

    def state() -> dict[str, Any]:
        return {
            # frozen Word2Vec vectors come with the data, not the checkpoint (megabytes per epoch saved)
            "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if k not in frozen},
            "optimizer": copy.deepcopy(optimizer.state_dict()),  # later steps change it in place
            "shuffle_rng": shuffle.get_state(),
            "torch_rng": torch.get_rng_state(),
            "epoch": epoch,
        }

    return state


__all__ = ["METRIC", "EpochReport", "HParams", "NonFiniteLossError", "fit", "build_model", "predict_proba"]
