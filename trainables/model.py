"""The classifier: stacked (bi)directional RNN / LSTM / GRU with skip connections and dot-product attention.

Inputs are either token ids (looked up in an embedding matrix of word vectors) or float sequences (the `mean`
encoding: D timesteps of one feature). Padding never reaches the recurrent state or the attention: every
layer runs on packed sequences and attention scores beyond a tweet's length are masked. Embedding dropout
zeroes whole timesteps of the input (a token's whole vector), in training only.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from trainables.hparams import ModelConfig

MODULES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}  # hparams.CELLS


class RNNClassifier(nn.Module):
    def __init__(self, cfg: ModelConfig, embeddings: torch.Tensor | None = None, freeze_embeddings: bool = True):
        super().__init__()
        self.cfg = cfg
        self.embedding = None
        if embeddings is not None:
            if embeddings.shape[1] != cfg.input_size:
                raise ValueError(
                    f"`input_size` ({cfg.input_size}) must equal the embedding dimension ({embeddings.shape[1]})."
                )
            # tuned vectors get sparse gradients: a batch touches a few hundred of tens of thousands of rows
            self.embedding = nn.Embedding.from_pretrained(
                embeddings, freeze=freeze_embeddings, padding_idx=0, sparse=not freeze_embeddings
            )
        cell = MODULES[cfg.cell]
        widths = [cfg.input_size] + [cfg.out_size] * (cfg.num_layers - 1)
        self.layers = nn.ModuleList(
            cell(w, cfg.hidden_size, batch_first=True, bidirectional=cfg.bidirectional) for w in widths
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.token_drop = nn.Dropout(cfg.embedding_dropout)  # applied to a (B, T, 1) mask of ones
        self.head = nn.Linear(cfg.out_size * (2 if cfg.attention else 1), cfg.num_classes)

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, extra_embeddings: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Class logits of a batch.

        Args:
            x: (B, T) token ids, or (B, T) / (B, T, F) float features.
            lengths: (B,) int64 real lengths, each in [1, T], on the CPU.
            extra_embeddings: (K, E) rows for ids V..V+K-1 past the embedding matrix (words a saved model meets
                only when predicting, with n-gram vectors), or None.

        Returns:
            logits (B, C) and attention weights (B, T) (None without attention); weights are 0 on padding.
        """
        if self.embedding is None:
            h = x.unsqueeze(-1) if x.dim() == 2 else x  # (B, T, F)
        elif extra_embeddings is None:
            h = self.embedding(x)  # (B, T, E)
        else:
            weight = torch.cat([self.embedding.weight, extra_embeddings.to(self.embedding.weight)])  # (V+K, E)
            h = nn.functional.embedding(x, weight, padding_idx=0)  # (B, T, E)
        if self.training and self.cfg.embedding_dropout > 0:
            h = h * self.token_drop(h.new_ones(h.shape[0], h.shape[1], 1))  # (B, T, E), whole timesteps zeroed
        T = h.shape[1]
        packed = bool((lengths < T).any())
        for i, rnn in enumerate(self.layers):
            if i > 0:
                h = self.drop(h)
            if packed:
                out, state = rnn(pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False))
                out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)  # (B, T, D), 0 on padding
            else:
                out, state = rnn(h)  # (B, T, D)
            if self.cfg.skip and h.shape[-1] == out.shape[-1]:
                out = out + h  # padding stays 0: both terms are 0 there after the first layer
            h = out
        h_n = state[0] if isinstance(state, tuple) else state  # (layers*dirs=dirs, B, H) of the last layer
        query = torch.cat(list(h_n), dim=-1)  # (B, D): forward final state, backward state at t=0
        if not self.cfg.attention:
            return self.head(self.drop(query)), None
        scores = torch.bmm(h, query.unsqueeze(-1)).squeeze(-1)  # (B, T)
        mask = torch.arange(T, device=h.device)[None, :] >= lengths.to(h.device)[:, None]  # (B, T) True on padding
        weights = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)  # (B, T)
        context = torch.bmm(weights.unsqueeze(1), h).squeeze(1)  # (B, D)
        return self.head(self.drop(torch.cat([context, query], dim=-1))), weights
