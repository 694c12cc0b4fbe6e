import dataclasses
import io
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from trainables.hparams import HParams, ModelConfig
from trainables.model import RNNClassifier
from trainables.prepare import EncodedData
from trainables.train import NonFiniteLossError, build_model, epoch_batches, fit, predict_proba, train_step

T, V, D = 12, 60, 8


def _encoded(n_train=300, n_valid=90, seed=0, mode="sequence") -> EncodedData:
    """Synthetic data whose first token names the class: learnable in a couple of epochs."""
    rng = np.random.default_rng(seed)

    def split(n):
        y = rng.integers(0, 3, n)
        lengths = rng.integers(2, T + 1, n)
        x = np.zeros((n, T), np.int32)
        for i in range(n):
            x[i, : lengths[i]] = rng.integers(5, V, lengths[i])
            x[i, 0] = 2 + y[i]
        return x, lengths.astype(np.int64), y.astype(np.int64)

    (xt, lt, yt), (xv, lv, yv) = split(n_train), split(n_valid)
    emb = rng.normal(size=(V, D)).astype(np.float32)
    emb[0] = 0
    if mode == "mean":
        xt, xv = emb[xt].mean(1), emb[xv].mean(1)
        lt, lv = np.full(n_train, D), np.full(n_valid, D)
        emb = None
    return EncodedData(mode, xt, lt, yt, xv, lv, yv, emb, ("NEG", "NEU", "POS"), "synthetic")


HP = HParams(cell="lstm", hidden_size=8, num_layers=2, batch_size=32, max_epochs=3, lr=1e-2, seed=3)


def _strip_time(history):
    return [{k: v for k, v in m.items() if k != "epoch_time_s"} for m in history]


def test_metrics_record_every_epoch():
    reports = []
    history = fit(HP, _encoded(), reports.append)
    assert [m["epoch"] for m in history] == [1, 2, 3]
    m = history[-1]
    for key in (
        "train_loss",
        "val_loss",
        "val_macro_f1",
        "val_accuracy",
        "val_auc",
        "train_macro_f1",
        "epoch_time_s",
    ):
        assert math.isfinite(m[key]), key
    assert len(m["val_f1_per_class"]) == 3 and len(m["val_recall_per_class"]) == 3
    assert len(reports) == 3
    probs = reports[-1].val_probs
    assert probs.shape == (90, 3)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    assert history[-1]["val_macro_f1"] > 0.8  # the class token is easy to find


@pytest.mark.parametrize("mode", ["sequence", "mean"])
@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_same_seed_same_metrics(mode, cell):
    hp = HParams(cell=cell, hidden_size=6, num_layers=1, batch_size=64, max_epochs=2, seed=1)
    a = _strip_time(fit(hp, _encoded(mode=mode)))
    b = _strip_time(fit(hp, _encoded(mode=mode)))
    assert a == b
    c = _strip_time(fit(HParams(**{**hp.__dict__, "seed": 2}), _encoded(mode=mode)))
    assert a != c


def test_resume_from_saved_state_equals_uninterrupted_run():
    data = _encoded()
    states = []
    full = fit(HP, data, lambda r: states.append(r.state()))
    buf = io.BytesIO()
    torch.save(states[0], buf)  # as a checkpoint would: through bytes, loaded with weights_only
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    resumed = fit(HP, data, state=state)
    assert [m["epoch"] for m in resumed] == [2, 3]
    assert _strip_time(resumed) == _strip_time(full[1:])


def test_clipping_bounds_the_gradient_norm():
    torch.manual_seed(0)
    model = RNNClassifier(ModelConfig(cell="rnn", input_size=4, hidden_size=8, num_layers=1, num_classes=3))
    x = torch.randn(16, 5, 4) * 50
    y = torch.randint(0, 3, (16,))
    lengths = torch.full((16,), 5)
    before = [p.detach().clone() for p in model.parameters()]
    # plain SGD with lr=1 moves every parameter by exactly minus its (clipped) gradient
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    train_step(model, opt, nn.CrossEntropyLoss(), x, lengths, y, clip=0.0)
    unclipped = torch.sqrt(sum(((p - b) ** 2).sum() for p, b in zip(model.parameters(), before, strict=False)))
    assert unclipped > 0.05  # the test means something only if clipping has work to do
    model.load_state_dict({k: v for k, v in zip(model.state_dict(), before, strict=False)})
    train_step(model, opt, nn.CrossEntropyLoss(), x, lengths, y, clip=0.05)
    step = torch.sqrt(sum(((p - b) ** 2).sum() for p, b in zip(model.parameters(), before, strict=False)))
    assert step <= 0.05 + 1e-6


def test_non_finite_loss_is_an_error():
    data = _encoded()
    emb = data.embeddings.copy()
    emb[5:] = np.nan
    bad = EncodedData(**{**data.__dict__, "embeddings": emb})
    with pytest.raises(NonFiniteLossError, match="lower `lr`"):
        fit(HParams(hidden_size=4, num_layers=1, max_epochs=1), bad)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"lr": 0}, "`lr` must be a finite number > 0, but got 0"),
        ({"lr": -1e-3}, "`lr` must be"),
        ({"batch_size": 0}, "`batch_size` must be >= 1, but got 0"),
        ({"max_epochs": -2}, "`max_epochs` must be >= 1"),
        ({"dropout": 1.5}, "`dropout` must be in [0, 1), but got 1.5"),
        ({"clip": -1}, "`clip` must be >= 0"),
        ({"cell": "cnn"}, "`cell` must be one of"),
        ({"weight_decay": -0.1}, "`weight_decay` must be a finite number >= 0"),
        ({"lr_schedule": "step"}, "`lr_schedule` must be one of ('none', 'cosine', 'onecycle')"),
        ({"label_smoothing": 1.0}, "`label_smoothing` must be in [0, 1)"),
        ({"embedding_dropout": 1.0}, "`embedding_dropout` must be in [0, 1)"),
    ],
)
def test_hparams_errors(kwargs, message):
    with pytest.raises(ValueError) as e:
        HParams(**kwargs)
    assert message in str(e.value)


def test_hparams_from_dict_refuses_unknown_keys():
    hp = HParams.from_dict({"hidden_size": 16, "lr": 0.01})
    assert hp.hidden_size == 16 and hp.lr == 0.01
    with pytest.raises(ValueError, match=r"must be among cell, hidden_size, .*num_threads, but got `vectorizer`"):
        HParams.from_dict({"hidden_size": 16, "vectorizer": "mean"})


def test_hparams_take_the_model_defaults_and_build_its_config():
    hp = HParams()
    for f in dataclasses.fields(ModelConfig):
        if hasattr(hp, f.name):
            assert getattr(hp, f.name) == f.default, f.name
    cfg = HParams(cell="gru", hidden_size=8, attention=False).model_config(input_size=5, num_classes=4)
    assert (cfg.cell, cfg.hidden_size, cfg.attention, cfg.input_size, cfg.num_classes) == ("gru", 8, False, 5, 4)


@pytest.mark.parametrize("freeze", [True, False])
def test_checkpoint_keeps_no_frozen_vectors_and_only_the_changed_rows_of_tuned_ones(freeze):
    data = _encoded()
    unused = np.random.default_rng(1).normal(size=(5000, D)).astype(np.float32)  # rows no tweet uses
    data = dataclasses.replace(data, embeddings=np.vstack([data.embeddings, unused]))
    hp = HParams(hidden_size=4, num_layers=1, max_epochs=2, freeze_embeddings=freeze)
    states = []
    full = fit(hp, data, lambda r: states.append(r.state()))
    buf = io.BytesIO()
    torch.save(states[0], buf)  # as a checkpoint would: through bytes, loaded with weights_only
    assert "embedding.weight" not in states[0]["model"]
    if freeze:
        assert "tuned_embedding" not in states[0]
    else:
        rows = set(states[0]["tuned_embedding"]["rows"].tolist())
        used = set(np.unique(data.x_train).tolist())
        assert rows <= used and len(rows) >= len(used) - 1  # the padding row never changes
        assert buf.tell() < data.embeddings.nbytes / 2  # the whole matrix and its two moments: 3x its size
    buf.seek(0)
    resumed = fit(hp, data, state=torch.load(buf, weights_only=True))
    assert _strip_time(resumed) == _strip_time(full[1:])


def test_read_only_shared_arrays_frozen_embeddings_are_not_copied():
    """Trials read Ray's object-store arrays, which are read-only: frozen vectors are shared, trained ones copied."""
    from trainables.train import build_model

    data = _encoded()
    for a in (data.x_train, data.len_train, data.y_train, data.x_valid, data.len_valid, data.embeddings):
        a.flags.writeable = False
    frozen = build_model(HParams(freeze_embeddings=True), data)
    assert frozen.embedding.weight.data_ptr() == data.embeddings.ctypes.data
    trained = build_model(HParams(freeze_embeddings=False), data)
    assert trained.embedding.weight.data_ptr() != data.embeddings.ctypes.data
    before = data.embeddings.copy()
    fit(HParams(hidden_size=4, num_layers=1, max_epochs=1, freeze_embeddings=False), data)
    np.testing.assert_array_equal(data.embeddings, before)


@pytest.mark.parametrize("bucket", [True, False])
def test_epoch_batches_cover_every_row_once(bucket):
    lengths = torch.from_numpy(np.random.default_rng(0).integers(1, 33, 1000))
    batches = epoch_batches(lengths, 64, bucket, torch.Generator().manual_seed(0))
    assert sorted(torch.cat(batches).tolist()) == list(range(1000))
    assert sorted(len(b) for b in batches)[1:] == [64] * (len(batches) - 1)  # one short batch at most


def test_bucketed_batches_pad_less_and_change_each_epoch():
    lengths = torch.from_numpy(np.random.default_rng(0).integers(1, 33, 4000))
    g = torch.Generator().manual_seed(0)

    def padded(batches):  # timesteps the RNN runs over: each batch is cut to its longest tweet
        return sum(len(b) * int(lengths[b].max()) for b in batches)

    first, second = epoch_batches(lengths, 64, True, g), epoch_batches(lengths, 64, True, g)
    random = epoch_batches(lengths, 64, False, g)
    assert padded(first) < 0.7 * padded(random)
    assert [b.tolist() for b in first] != [b.tolist() for b in second]
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert all(
        torch.equal(a, b) for a, b in zip(epoch_batches(lengths, 64, True, g1), epoch_batches(lengths, 64, True, g2))
    )


@pytest.mark.parametrize("attention", [True, False])
def test_predict_proba_is_in_row_order_whatever_the_batching(attention):
    data = _encoded()
    model = build_model(dataclasses.replace(HP, attention=attention), data)
    x, lengths = torch.from_numpy(data.x_valid), torch.from_numpy(data.len_valid)
    by_length = predict_proba(model, x, lengths, 16, True, torch.device("cpu"))
    one_by_one = np.concatenate(
        [predict_proba(model, x[i : i + 1], lengths[i : i + 1], 1, True, torch.device("cpu")) for i in range(len(x))]
    )
    np.testing.assert_allclose(by_length, one_by_one, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------- training options


def _weights_after(hp: HParams, data: EncodedData) -> dict[str, torch.Tensor]:
    states = []
    fit(hp, data, lambda r: states.append(r.state()))
    return states[-1]["model"]


def test_weight_decay_uses_adamw_shrinks_the_network_and_spares_the_embedding_matrix():
    data = _encoded()
    hp = dataclasses.replace(HP, max_epochs=2, freeze_embeddings=False)
    plain = _weights_after(hp, data)
    decayed = _weights_after(dataclasses.replace(hp, weight_decay=0.5), data)
    network = [k for k in plain if not k.startswith("embedding.")]
    assert all(not torch.equal(plain[k], decayed[k]) for k in network)
    assert sum(decayed[k].norm() ** 2 for k in network) < sum(plain[k].norm() ** 2 for k in network)
    from trainables.train import Optimizer

    model = build_model(dataclasses.replace(hp, weight_decay=0.5), data)
    opt = Optimizer(dataclasses.replace(hp, weight_decay=0.5), model, 10)
    assert isinstance(opt.dense, torch.optim.AdamW) and opt.dense.param_groups[0]["weight_decay"] == 0.5
    embedding = model.embedding.weight
    assert not any(p is embedding for g in opt.dense.param_groups for p in g["params"])  # never decayed
    assert isinstance(Optimizer(hp, model, 10).dense, torch.optim.Adam)  # no decay: Adam as before


def test_tuned_word_vectors_get_sparse_gradients_a_lazy_adam_and_clipping():
    from trainables.train import Optimizer, clip_gradients

    data = _encoded()
    hp = dataclasses.replace(HP, freeze_embeddings=False)
    model = build_model(hp, data)
    opt = Optimizer(hp, model, 10)
    assert [type(o).__name__ for o in opt.optimizers] == ["Adam", "SparseAdam"]
    before = model.embedding.weight.detach().clone()
    x, lengths = torch.from_numpy(data.x_train[:8]), torch.from_numpy(data.len_train[:8])
    logits, _ = model(x, lengths)
    opt.zero_grad()
    nn.functional.cross_entropy(logits, torch.from_numpy(data.y_train[:8])).backward()
    assert model.embedding.weight.grad.is_sparse
    clip_gradients(list(model.parameters()), 1e-3)
    grads = [p.grad.coalesce().values() if p.grad.is_sparse else p.grad for p in model.parameters()]
    assert torch.sqrt(sum(g.pow(2).sum() for g in grads)) == pytest.approx(1e-3, rel=1e-3)
    opt.step()
    changed = (model.embedding.weight.detach() != before).any(dim=1)
    used = torch.zeros(len(before), dtype=torch.bool)
    used[x[x > 0].unique()] = True
    assert changed[used].all() and not changed[~used].any()  # only the rows the batch used
    history = fit(hp, data)  # it learns (chance is 0.33)
    assert history[-1]["train_loss"] < history[0]["train_loss"] and history[-1]["val_macro_f1"] > 0.5


def _lrs(hp: HParams, n: int = 300) -> list[float]:
    """The learning rate of every optimiser step of `fit`."""
    from trainables import train as train_module

    seen = []
    step = train_module.train_step

    def recording(model, optimizer, *args, **kwargs):
        seen.append(optimizer.dense.param_groups[0]["lr"])  # the schedule's current value
        return step(model, optimizer, *args, **kwargs)

    train_module.train_step = recording
    try:
        fit(hp, _encoded(n_train=n))
    finally:
        train_module.train_step = step
    return seen


def test_schedules_set_the_learning_rate_of_every_step():
    hp = dataclasses.replace(HP, max_epochs=3, batch_size=32, lr=0.01)
    steps = 3 * math.ceil(300 / 32)
    assert _lrs(hp) == [0.01] * steps  # none: constant
    cosine = _lrs(dataclasses.replace(hp, lr_schedule="cosine"))
    expected = [0.01 * (1 + math.cos(math.pi * t / steps)) / 2 for t in range(steps)]
    np.testing.assert_allclose(cosine, expected, rtol=1e-6, atol=1e-12)
    one = _lrs(dataclasses.replace(hp, lr_schedule="onecycle"))
    assert len(one) == steps
    assert one[0] == pytest.approx(0.01 / 25)  # starts at lr / div_factor
    peak = int(np.argmax(one))
    assert one[peak] == pytest.approx(0.01, rel=1e-3) and abs(peak - 0.3 * steps) <= 1  # peaks at 30% of the steps
    assert one[-1] < 0.01 / 1e3  # ends near lr / final_div_factor


def test_batch_count_is_the_number_of_batches_an_epoch_has():
    g = torch.Generator().manual_seed(0)
    for n, b, bucket in [(300, 32, True), (300, 32, False), (7000, 64, True), (7001, 128, True), (5, 128, True)]:
        lengths = torch.randint(1, 12, (n,))
        assert math.ceil(n / b) == len(epoch_batches(lengths, b, bucket, g))  # the steps per epoch `fit` schedules


def test_a_schedule_resumes_from_a_checkpoint_where_it_left_off():
    hp = dataclasses.replace(HP, lr_schedule="onecycle")
    data = _encoded()
    states = []
    full = fit(hp, data, lambda r: states.append(r.state()))
    buf = io.BytesIO()
    torch.save(states[0], buf)
    buf.seek(0)
    resumed = fit(hp, data, state=torch.load(buf, weights_only=True))
    assert _strip_time(resumed) == _strip_time(full[1:])


def test_label_smoothing_changes_the_training_loss_only():
    data = _encoded()
    hp = dataclasses.replace(HP, max_epochs=1)
    plain, smooth = fit(hp, data)[0], fit(dataclasses.replace(hp, label_smoothing=0.2), data)[0]
    assert smooth["train_loss"] != pytest.approx(plain["train_loss"], rel=1e-3)
    logits = torch.tensor([[4.0, 0.0, 0.0]])
    y = torch.tensor([0])
    assert nn.CrossEntropyLoss(label_smoothing=0.2)(logits, y) > nn.CrossEntropyLoss()(logits, y)
    # the validation loss is the plain negative log-likelihood of the probabilities
    states = []
    fit(dataclasses.replace(hp, label_smoothing=0.2), data, lambda r: states.append(r))
    probs = states[0].val_probs
    nll = -np.mean(np.log(probs[np.arange(len(data.y_valid)), data.y_valid]))
    assert states[0].metrics["val_loss"] == pytest.approx(nll, rel=1e-5)


@pytest.mark.parametrize("mode", ["sequence", "mean"])
def test_embedding_dropout_zeroes_whole_tokens_in_training_only(mode):
    data = _encoded(mode=mode)
    model = build_model(dataclasses.replace(HP, embedding_dropout=0.5), data)
    x, lengths = torch.from_numpy(data.x_valid[:8]), torch.from_numpy(data.len_valid[:8])
    model.eval()
    a, b = model(x, lengths)[0], model(x, lengths)[0]
    assert torch.equal(a, b)  # evaluation: no dropout
    plain = build_model(HP, data)
    plain.load_state_dict(model.state_dict())
    plain.eval()
    assert torch.equal(plain(x, lengths)[0], a)  # and the same as without embedding dropout
    model.train()
    torch.manual_seed(0)
    assert not torch.equal(model(x, lengths)[0], a)
    seen = []
    handle = model.layers[0].register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    torch.manual_seed(1)
    model(x, lengths)
    handle.remove()
    inputs = seen[0]
    if isinstance(inputs, nn.utils.rnn.PackedSequence):
        inputs = nn.utils.rnn.pad_packed_sequence(inputs, batch_first=True, total_length=x.shape[1])[0]
    zero = (inputs == 0).all(dim=-1)  # (B, T): whole timesteps zeroed
    real = torch.arange(x.shape[1])[None, :] < lengths[:, None]
    assert zero[real].any() and not zero[real].all()
    partial = ((inputs == 0) & ~zero[..., None]).any(dim=-1) & real
    if mode == "sequence":
        assert not partial.any()  # a token's vector is dropped whole or kept whole
