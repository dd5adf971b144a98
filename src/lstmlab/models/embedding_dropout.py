"""Embedding dropout (Gal & Ghahramani 2016; AWD-LSTM): drop whole words, not features.

A row of the embedding matrix is zeroed for the whole batch, so every occurrence of the
dropped token vanishes from this batch's input; the kept rows are scaled by 1/(1-p).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def embedding_dropout(embedding: nn.Embedding, tokens: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Look up `tokens` (T, B) in `embedding`, dropping whole rows with probability p -> (T, B, E)."""
    if not training or p == 0.0:
        return embedding(tokens)
    weight = embedding.weight  # (V, E)
    keep = 1.0 - p
    mask = weight.new_empty(weight.size(0), 1).bernoulli_(keep) / keep  # (V, 1)
    return F.embedding(tokens, weight * mask, embedding.padding_idx)
