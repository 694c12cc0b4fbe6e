import itertools

import pytest
import torch

from trainables.hparams import ModelConfig
from trainables.model import RNNClassifier

B, T, V, E, C = 5, 9, 40, 8, 3


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([9, 1, 4, 7, 2])
    x = torch.randint(2, V, (B, T), generator=g)
    x[torch.arange(T)[None, :] >= lengths[:, None]] = 0  # padding id
    emb = torch.randn(V, E, generator=g)
    emb[0] = 0
    return x, lengths, emb


@pytest.mark.parametrize(
    "cell,bidirectional,attention,skip",
    list(itertools.product(["rnn", "lstm", "gru"], [True, False], [True, False], [True, False])),
)
def test_shapes_attention_and_padding(cell, bidirectional, attention, skip):
    torch.manual_seed(0)
    x, lengths, emb = _batch()
    cfg = ModelConfig(
        cell=cell,
        input_size=E,
        hidden_size=6,
        num_layers=3,
        bidirectional=bidirectional,
        dropout=0.2,
        skip=skip,
        attention=attention,
        num_classes=C,
    )
    model = RNNClassifier(cfg, emb).eval()
    logits, weights = model(x, lengths)
    assert logits.shape == (B, C)
    assert torch.isfinite(logits).all()
    if attention:
        assert weights.shape == (B, T)
        mask = torch.arange(T)[None, :] < lengths[:, None]
        torch.testing.assert_close(weights.sum(-1), torch.ones(B))
        assert (weights[~mask] == 0).all()
        assert (weights[mask] > 0).all()
    else:
        assert weights is None
    # padding never reaches the state: extra padding columns leave the logits unchanged
    padded = torch.cat([x, torch.zeros(B, 4, dtype=x.dtype)], dim=1)
    logits2, _ = model(padded, lengths)
    torch.testing.assert_close(logits, logits2, rtol=1e-5, atol=1e-6)
    # and the logits of one tweet do not depend on the others in its batch
    one, _ = model(x[1:2, :1], lengths[1:2])
    torch.testing.assert_close(one, logits[1:2], rtol=1e-5, atol=1e-6)


def test_mean_mode_reads_one_feature_per_timestep():
    cfg = ModelConfig(cell="gru", input_size=1, hidden_size=4, num_layers=2, num_classes=C)
    model = RNNClassifier(cfg).eval()
    x = torch.randn(B, 12)  # (B, D) mean vectors = 12 timesteps of 1 feature
    logits, weights = model(x, torch.full((B,), 12))
    assert logits.shape == (B, C) and weights.shape == (B, 12)


def test_skip_connection_changes_the_output():
    x, lengths, emb = _batch()
    outs = []
    for skip in (True, False):
        torch.manual_seed(0)
        cfg = ModelConfig(cell="lstm", input_size=E, hidden_size=4, num_layers=2, skip=skip, num_classes=C)
        outs.append(RNNClassifier(cfg, emb).eval()(x, lengths)[0])
    assert not torch.allclose(outs[0], outs[1])


def test_frozen_and_trainable_embeddings():
    _, _, emb = _batch()
    cfg = ModelConfig(input_size=E, hidden_size=4, num_layers=1, num_classes=C)
    assert not RNNClassifier(cfg, emb, freeze_embeddings=True).embedding.weight.requires_grad
    assert RNNClassifier(cfg, emb, freeze_embeddings=False).embedding.weight.requires_grad


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"cell": "transformer"}, "`cell` must be one of"),
        ({"hidden_size": 0}, "`hidden_size` must be >= 1, but got 0"),
        ({"num_layers": -1}, "`num_layers` must be >= 1"),
        ({"dropout": 1.0}, "`dropout` must be in [0, 1), but got 1.0"),
        ({"num_classes": 1}, "`num_classes` must be >= 2"),
    ],
)
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError) as e:
        ModelConfig(**kwargs)
    assert message in str(e.value)
