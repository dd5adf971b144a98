"""The reference engine: plain PyTorch, an explicit time loop, every option.

It is the specification every faster engine is checked against. It is short on
purpose: `cell.lstm_step` holds the math; this file walks the time steps of one layer
and direction and records the trace; `layers.forward_layers`, which every engine
shares, walks the layers and directions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..cell import (
    TRACE_FIELDS, CellSpec, LayerWeights, input_gates, lstm_step, previous_gates, recurrent_weight, zoneout,
    zoneout_keep,
)
from ..inputs import valid_mask
from .base import EngineResult, SequenceBatch
from .layers import forward_layers


def run_direction(
    x: Tensor, h0: Tensor, c0: Tensor, weights: LayerWeights, spec: CellSpec,
    lengths: Tensor | None, reverse: bool, training: bool,
) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
    """One layer, one direction over the whole sequence.

    x: (T, B, I); h0: (B, P); c0: (B, H); lengths: (B,) int64 or None (all T valid).
    Returns hs (T, B, P), h_n (B, P), c_n (B, H) and the trace fields, each (T, B, ·),
    zero where a step is not valid. A sequence's state is held still over its padded
    steps, so a reversed sequence starts from h0 at its own last valid step. FGR's previous
    gates start at zero and are held still over padded steps likewise.
    """
    steps = x.shape[0]
    valid = None if lengths is None else valid_mask(lengths, steps).unsqueeze(-1)  # (T, B, 1)
    x_gates = input_gates(x, weights, spec)  # (T, B, 4H): one GEMM for all steps
    w_hh = recurrent_weight(weights.w_hh, spec, training)
    keep_c = zoneout_keep(spec.zoneout_c, training, (steps, *c0.shape), c0)  # (T, B, H) or None
    keep_h = zoneout_keep(spec.zoneout_h, training, (steps, *h0.shape), h0)  # (T, B, P) or None
    h, c = h0, c0
    gates = c0.new_zeros(c0.shape[0], 3 * c0.shape[1]) if spec.full_gate_recurrence else None  # (B, 3H)
    records: dict[str, list[Tensor]] = {name: [None] * steps for name in TRACE_FIELDS}
    for t in (reversed(range(steps)) if reverse else range(steps)):
        step = lstm_step(x_gates[t], h, c, weights, spec, w_hh, gates)
        c_new = zoneout(step.c, c, None if keep_c is None else keep_c[t])  # (B, H)
        h_new = zoneout(step.h, h, None if keep_h is None else keep_h[t])  # (B, P)
        values = step._replace(c=c_new, h=h_new)
        if valid is not None:
            c_new = torch.where(valid[t], c_new, c)
            h_new = torch.where(valid[t], h_new, h)
            values = type(step)(*(v * valid[t] for v in values))
        if gates is not None:
            gates = previous_gates(step) if valid is None else torch.where(valid[t], previous_gates(step), gates)
        h, c = h_new, c_new
        for name, value in zip(TRACE_FIELDS, values):
            records[name][t] = value
    trace = {name: torch.stack(values) for name, values in records.items()}
    return trace["h"], h, c, trace


def forward(batch: SequenceBatch, need_trace: bool) -> EngineResult:
    return forward_layers(batch, need_trace, run_direction)
