"""A polyphonic music model: piano-roll frames -> `lstmlab.LSTM` -> 88 independent Bernoullis.

Boulanger-Lewandowski et al. (2012)'s frame-level setting: at every frame the model gives
each of the 88 keys a probability of sounding in the next frame, from all frames before;
the loss is the negative log-likelihood of the frame (summed over keys), per frame.

Shapes are time-major: frames (T, B, 88) in {0, 1} -> logits (T, B, 88).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lstmlab.config import choice
from lstmlab.data.chorales import KEYS
from lstmlab.models.recurrent import CELLS, VARIANT_CHOICES, recurrent_stack


@dataclass
class MusicModelConfig:
    """Recurrent layers over piano-roll frames, a linear read-out per key."""

    cell: str = choice("lstm", CELLS)  # gru/rnn: baselines (same hidden size)
    hidden_size: int = 256  # recurrent units per layer
    num_layers: int = 1  # stacked recurrent layers
    dropout: float = 0.3  # on the top layer's output (and between layers), training only
    variant: str = choice("", VARIANT_CHOICES)  # Greff et al.'s LSTM variant (V, NIG, ..., FGR); "" = plain cell
    engine: str = choice("auto", ("auto", "reference", "native", "fused"))  # lstmlab.LSTM engine


class PianoRollModel(nn.Module):
    """``model(frames) -> logits``: frames (T, B, 88), logits (T, B, 88) for the *next* frames."""

    def __init__(self, config: MusicModelConfig):
        super().__init__()
        self.config = config
        self.recurrent = recurrent_stack(config.cell, KEYS, config.hidden_size, config.num_layers,
                                         dropout=config.dropout, engine=config.engine, variant=config.variant)
        self.dropout = nn.Dropout(config.dropout)
        self.readout = nn.Linear(config.hidden_size, KEYS)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dim() != 3 or frames.shape[-1] != KEYS:
            raise ValueError(f"expected frames of shape (T, B, {KEYS}), got {tuple(frames.shape)}")
        states, _ = self.recurrent(frames)  # (T, B, H)
        return self.readout(self.dropout(states))  # (T, B, 88)
