"""Activation regularisation (AR) and temporal activation regularisation (TAR).

Merity et al. 2017: AR penalises large outputs of the top LSTM layer,
``alpha * mean(h_t ** 2)`` on the dropped-out output; TAR penalises fast change,
``beta * mean((h_t - h_{t-1}) ** 2)`` on the raw output. Both act on (T, B, H) tensors.
"""

from __future__ import annotations

import torch


def activation_regularization(dropped_output: torch.Tensor, alpha: float) -> torch.Tensor:
    """AR: alpha * mean(h^2) over (T, B, H). Zero when alpha is 0."""
    if alpha == 0.0:
        return dropped_output.new_zeros(())
    return alpha * dropped_output.pow(2).mean()


def temporal_activation_regularization(raw_output: torch.Tensor, beta: float) -> torch.Tensor:
    """TAR: beta * mean((h_t - h_{t-1})^2) over (T-1, B, H). Zero when beta is 0 or T == 1."""
    if beta == 0.0 or raw_output.size(0) < 2:
        return raw_output.new_zeros(())
    return beta * (raw_output[1:] - raw_output[:-1]).pow(2).mean()
