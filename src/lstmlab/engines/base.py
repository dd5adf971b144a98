"""What every engine receives and returns.

An engine runs a whole multi-layer LSTM on a padded, time-major batch. The module
(`lstmlab.nn.LSTM`) does the user-facing work (layouts, packing, validation), so an
engine has one simple contract.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

from ..cell import CellSpec, LayerWeights


class SequenceBatch(NamedTuple):
    """Inputs of an engine. L = layers, D = directions, P = H_out (proj or H)."""

    x: Tensor  # (T, B, I) time-major, padded
    h0: Tensor  # (L*D, B, P)
    c0: Tensor  # (L*D, B, H)
    layers: list[list[LayerWeights]]  # [layer][direction]
    spec: CellSpec
    lengths: Tensor | None  # (B,) int64 valid lengths (original batch order), None = all T
    dropout: float  # between layers, training only
    training: bool


class EngineResult(NamedTuple):
    """Outputs of an engine; padded positions of `output` and the trace are zero."""

    output: Tensor  # (T, B, D*P)
    h_n: Tensor  # (L*D, B, P)
    c_n: Tensor  # (L*D, B, H)
    trace: list[dict[str, Tensor]] | None  # per layer: {"i": (T, B, D, H), ..., "h": (T, B, D, P)}
