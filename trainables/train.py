"""The training loop: `fit(hp, data, report)` in plain PyTorch, Adam + cross-entropy + gradient clipping.

Options (all off by default): AdamW's decoupled weight decay (never on the embedding matrix), a learning-rate
schedule stepped every batch (cosine to 0, or one-cycle), label smoothing, and embedding dropout (model.py);
tuned word vectors get sparse gradients and a lazy Adam (`Optimizer`).
After every epoch `report` receives an EpochReport (metrics, validation probabilities, a function that
returns the full training state, and one that predicts other rows with that epoch's model). `fit` can start
from such a state and then gives the same result as an uninterrupted run. Ray lives in trainable.py, which
wraps this function unchanged.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from trainables.hparams import HParams
from trainables.metrics import classification_metrics, log_loss
from trainables.model import RNNClassifier
from trainables.prepare import EncodedData

EMBEDDING = "embedding.weight"  # the word vectors' parameter: frozen, or tuned by SparseAdam
TUNED_ROWS = "tuned_embedding"  # a training state's rows of tuned word vectors that differ from the data's
MOMENTS = ("exp_avg", "exp_avg_sq")  # SparseAdam's per-row state, kept for those rows only


@dataclass(frozen=True)
class EpochReport:
    metrics: dict[str, Any]  # losses, validation metrics, epoch (1-based), epoch_time_s
    val_probs: np.ndarray  # (N_valid, C) validation probabilities of this epoch
    state: Callable[[], dict[str, Any]]  # the full training state after this epoch, for checkpoints
    # (N, C) probabilities of the model as it stands after this epoch for other encoded rows (x, lengths);
    # it changes nothing of the training
    predict: Callable[[np.ndarray, np.ndarray], np.ndarray]


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
    batches: list[torch.Tensor] = []
    for p in perm.split(batch_size * BUCKET_POOL):
        batches.extend(p[torch.argsort(lengths[p], stable=True)].split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


@torch.inference_mode()
def predict_proba(
    model: RNNClassifier,
    x: torch.Tensor,
    lengths: torch.Tensor,
    batch_size: int,
    trim: bool,
    device: torch.device,
    extra: torch.Tensor | None = None,
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
        extra: (K, D) embedding rows of ids past the model's matrix (a saved FastText model's n-gram vectors
            of words it never saw, `LoadedModel.encode`), or None.
    """
    model.eval()
    extra = extra.to(device) if extra is not None and len(extra) else None
    order = torch.argsort(lengths, stable=True)  # (N,)
    counts = torch.unique_consecutive(lengths[order], return_counts=True)[1].tolist()
    probs = torch.empty(len(x), model.cfg.num_classes)  # (N, C)
    for same_length in order.split(counts):
        for idx in same_length.split(batch_size):  # (B,) rows of one length
            lb = lengths[idx]
            xb = x[idx, : int(lb[0])] if trim else x[idx]
            logits, _ = model(xb.to(device), lb, extra)
            probs[idx] = torch.softmax(logits.float(), dim=-1).cpu()
    return probs.numpy()


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | Optimizer,
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
        clip_gradients(list(model.parameters()), clip)
    optimizer.step()
    return loss.detach(), logits.detach()


def clip_gradients(parameters: list[nn.Parameter], max_norm: float) -> None:
    """Scale the gradients so that their joint L2 norm is at most `max_norm` (`clip_grad_norm_`'s rule), sparse
    gradients (tuned word vectors) included; with dense gradients only, `clip_grad_norm_` itself."""
    for p in parameters:
        if p.grad is not None and p.grad.is_sparse:
            p.grad = p.grad.coalesce()  # one value per row, so the norm counts each row once
    grads = [p.grad for p in parameters if p.grad is not None]
    if not any(g.is_sparse for g in grads):
        nn.utils.clip_grad_norm_(parameters, max_norm)
        return
    total = torch.sqrt(sum((g.values() if g.is_sparse else g).pow(2).sum() for g in grads))
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale)


class Optimizer:
    """The optimisers of one training run, stepped as one, with their learning-rate schedule.

    The network's parameters: Adam, or AdamW with `weight_decay` (decoupled decay). Word vectors that training
    tunes (`freeze_embeddings=False`): SparseAdam, a lazy Adam that updates only the rows a batch used and
    never decays them; dense Adam over a 40,000 x 300 matrix made a step 5x slower. Schedules (`lr_schedule`,
    stepped after every batch): cosine from `lr` to 0 at the last step (CosineAnnealingLR), or PyTorch's
    OneCycleLR with `lr` as its peak (up from lr/25 over the first 30% of the steps, then down to lr/1e4 by
    cosine, beta1 from 0.95 to 0.85 and back).
    """

    def __init__(self, hp: HParams, model: RNNClassifier, steps_per_epoch: int):
        trained = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        dense = [p for name, p in trained if not name.startswith("embedding.")]
        tuned = [p for name, p in trained if name.startswith("embedding.")]
        if hp.weight_decay:
            self.dense = torch.optim.AdamW(dense, lr=hp.lr, weight_decay=hp.weight_decay)
        else:
            self.dense = torch.optim.Adam(dense, lr=hp.lr)
        self.optimizers = [self.dense] + ([torch.optim.SparseAdam(tuned, lr=hp.lr)] if tuned else [])
        total = max(1, hp.max_epochs * steps_per_epoch)
        self.schedules: list[torch.optim.lr_scheduler.LRScheduler] = []
        for opt in self.optimizers:
            if hp.lr_schedule == "cosine":
                self.schedules.append(torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=0.0))
            elif hp.lr_schedule == "onecycle":
                self.schedules.append(torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp.lr, total_steps=total))

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()
        for schedule in self.schedules:
            schedule.step()

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "schedules": [s.state_dict() for s in self.schedules],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for opt, saved in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(saved)
        for schedule, saved in zip(self.schedules, state["schedules"], strict=True):
            schedule.load_state_dict(saved)


def fit(
    hp: HParams,
    data: EncodedData,
    report: Callable[[EpochReport], None] | None = None,
    state: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Train a classifier for `hp.max_epochs` epochs, reporting after each one.

    Args:
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
    trim = data.mode == "sequence"
    # steps per epoch: ceil(N / batch_size), bucketed or not (each pool but the last holds whole batches)
    optimizer = Optimizer(hp, model, math.ceil(len(data.y_train) / hp.batch_size))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=hp.label_smoothing)
    shuffle = torch.Generator().manual_seed(hp.seed)
    start_epoch = 0
    if state is not None:
        load_weights(model, state)
        optimizer.load_state_dict(_full_optimizer_state(state, model))
        shuffle.set_state(state["shuffle_rng"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch = int(state["epoch"])

    x_tr, l_tr, y_tr = (_shared(a) for a in (data.x_train, data.len_train, data.y_train))
    y_tr_dev = y_tr.to(device)

    def predict(x: np.ndarray | torch.Tensor, lengths: np.ndarray | torch.Tensor) -> np.ndarray:
        x, lengths = (_shared(a) if isinstance(a, np.ndarray) else a for a in (x, lengths))
        return predict_proba(model, x, lengths, max(hp.batch_size, 512), trim, device)

    history = []
    for epoch in range(start_epoch + 1, hp.max_epochs + 1):
        t0 = time.perf_counter()
        model.train()
        total_loss = torch.zeros((), device=device)
        train_pred = torch.empty(len(y_tr), dtype=torch.long)
        for idx in epoch_batches(l_tr, hp.batch_size, trim, shuffle):
            xb, lb = x_tr[idx], l_tr[idx]
            if trim:  # a sequence batch is cut to its longest tweet
                xb = xb[:, : int(lb.max())]
            y = y_tr_dev[idx.to(device)]
            loss, logits = train_step(model, optimizer, loss_fn, xb.to(device), lb, y, hp.clip)
            total_loss += loss * len(idx)
            train_pred[idx] = logits.detach().argmax(-1).cpu()
        train_loss = float(total_loss) / len(y_tr)
        if not math.isfinite(train_loss):
            raise NonFiniteLossError(
                f"training loss became {train_loss} in epoch {epoch} (lr={hp.lr}, clip={hp.clip}); "
                "lower `lr`" + (" or set `clip` > 0." if hp.clip == 0 else ".")
            )
        train = classification_metrics(y_tr.numpy(), np.eye(len(data.classes))[train_pred.numpy()], "train_")
        metrics = {"epoch": epoch, "train_loss": train_loss}
        metrics.update((k, train[k]) for k in ("train_macro_f1", "train_accuracy"))
        val_probs = np.empty((0, len(data.classes)), np.float32)
        if len(data.y_valid):  # a final model trained on every labelled row has no validation rows
            val_probs = predict(data.x_valid, data.len_valid)
            val_loss = log_loss(data.y_valid, val_probs)
            metrics.update({"val_loss": val_loss, **classification_metrics(data.y_valid, val_probs, "val_")})
        metrics["epoch_time_s"] = time.perf_counter() - t0
        history.append(metrics)
        if report is not None:
            state_fn = _state_fn(model, optimizer, shuffle, epoch, data.embeddings)
            report(EpochReport(metrics, val_probs, state_fn, predict))
    return history


def _frozen(model: nn.Module) -> set[str]:
    """Names of parameters that never change during training (the frozen embedding matrix)."""
    return {name for name, p in model.named_parameters() if not p.requires_grad}


def _state_fn(
    model: RNNClassifier, optimizer: Optimizer, shuffle: torch.Generator, epoch: int, base: np.ndarray | None
):
    frozen = _frozen(model)
    tuned = model.embedding is not None and EMBEDDING not in frozen

    def state() -> dict[str, Any]:
        # frozen word vectors come with the data, not the checkpoint (megabytes per epoch saved); of tuned ones
        # only the rows that training changed, with their SparseAdam moments
        weights = model.state_dict()
        saved = {
            "model": {k: v.detach().cpu().clone() for k, v in weights.items() if k not in frozen | {EMBEDDING}},
            "optimizer": optimizer.state_dict(),
            "shuffle_rng": shuffle.get_state(),
            "torch_rng": torch.get_rng_state(),
            "epoch": epoch,
        }
        if tuned:
            sparse = saved["optimizer"]["optimizers"][-1]
            moments = sparse["state"].get(0, {})
            saved[TUNED_ROWS] = changed_rows(weights[EMBEDDING], base, moments)
            kept = {k: v for k, v in moments.items() if k not in MOMENTS}
            saved["optimizer"]["optimizers"][-1] = {**sparse, "state": {0: kept} if moments else {}}
        saved["optimizer"] = copy.deepcopy(saved["optimizer"])  # later steps change it in place
        return saved

    return state


def changed_rows(weight: torch.Tensor, base: np.ndarray, moments: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The rows of tuned word vectors that differ from the data's matrix `base` or have SparseAdam moments.

    Every other row equals `base` and has zero moments, so these rows give the whole matrix and its optimiser
    state back exactly (`load_weights`, `_full_optimizer_state`).

    Returns:
        "rows" (K,) int64 row ids, and "weight", "exp_avg", "exp_avg_sq" (K, D) (the moments when present).
    """
    weight = weight.detach().cpu()
    changed = (weight != _shared(base)).any(dim=1)  # (V,)
    for name in MOMENTS:
        if name in moments:
            changed |= (moments[name].cpu() != 0).any(dim=1)
    rows = changed.nonzero().squeeze(1)  # (K,)
    return {"rows": rows, "weight": weight[rows], **{k: moments[k].cpu()[rows] for k in MOMENTS if k in moments}}


def load_weights(model: RNNClassifier, state: dict[str, Any]) -> None:
    """Load a training state's weights into `model`, built by `build_model` from the data the state was trained on
    (the word vectors come from that data; a tuned matrix's changed rows from the state).

    Raises:
        ValueError: the state's weights do not fit the model.
    """
    rows = state.get(TUNED_ROWS)
    missing, unexpected = model.load_state_dict(state["model"], strict=False)
    if unexpected or set(missing) - _frozen(model) - ({EMBEDDING} if rows is not None else set()):
        raise ValueError(f"saved state does not fit this model: missing {missing}, unexpected {unexpected}.")
    if rows is not None:
        with torch.no_grad():
            weight = model.embedding.weight
            weight[rows["rows"].to(weight.device)] = rows["weight"].to(weight.device, weight.dtype)


def _full_optimizer_state(state: dict[str, Any], model: RNNClassifier) -> dict[str, Any]:
    """The optimiser state of a training state, SparseAdam's moments rebuilt from the changed rows."""
    rows, saved = state.get(TUNED_ROWS), state["optimizer"]
    if rows is None or not any(k in rows for k in MOMENTS):
        return saved
    sparse = saved["optimizers"][-1]
    weight = model.embedding.weight
    moments = {}
    for name in MOMENTS:
        full = torch.zeros_like(weight, requires_grad=False)
        full[rows["rows"].to(weight.device)] = rows[name].to(weight.device, weight.dtype)
        moments[name] = full
    sparse = {**sparse, "state": {0: {**sparse["state"].get(0, {}), **moments}}}
    return {**saved, "optimizers": [*saved["optimizers"][:-1], sparse]}
