"""Locked (variational) dropout, Gal & Ghahramani 2016, as used by AWD-LSTM.

Ordinary dropout draws a new mask at every time step; locked dropout draws one mask per
sequence and reuses it at every step, so the recurrent network sees a consistent
"thinned" input rather than noise that averages out over time.
"""

from __future__ import annotations

import torch
from torch import nn


class LockedDropout(nn.Module):
    """Drop the same features at every time step. Input and output (T, B, F), time-major."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"locked dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty(1, x.size(1), x.size(2)).bernoulli_(keep) / keep  # (1, B, F)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"
