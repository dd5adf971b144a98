"""The reference engine: plain PyTorch, an explicit time loop, every option.

It is the specification every faster engine is checked against. It is short on
purpose: `cell.lstm_step` holds the math; this file only walks layers, directions
and time steps, and records the trace.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cell import TRACE_FIELDS, CellSpec, LayerWeights, input_gates, lstm_step, recurrent_weight, zoneout
from ..inputs import valid_mask
from .base import EngineResult, SequenceBatch


def run_direction(
    x: Tensor, h0: Tensor, c0: Tensor, weights: LayerWeights, spec: CellSpec,
    valid: Tensor | None, reverse: bool, training: bool,
) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
    """One layer, one direction over the whole sequence.

    x: (T, B, I); h0: (B, P); c0: (B, H); valid: (T, B, 1) bool or None (all valid).
    Returns hs (T, B, P), h_n (B, P), c_n (B, H) and the trace fields, each (T, B, ·),
    zero where a step is not valid. A sequence's state is held still over its padded
    steps, so a reversed sequence starts from h0 at its own last valid step.
    """
    steps = x.shape[0]
    x_gates = input_gates(x, weights, spec)  # (T, B, 4H): one GEMM for all steps
    w_hh = recurrent_weight(weights.w_hh, spec, training)
    h, c = h0, c0
    records: dict[str, list[Tensor]] = {name: [None] * steps for name in TRACE_FIELDS}
    for t in (reversed(range(steps)) if reverse else range(steps)):
        step = lstm_step(x_gates[t], h, c, weights, spec, w_hh)
        c_new = zoneout(step.c, c, spec.zoneout_c, training)  # (B, H)
        h_new = zoneout(step.h, h, spec.zoneout_h, training)  # (B, P)
        values = step._replace(c=c_new, h=h_new)
        if valid is not None:
            c_new = torch.where(valid[t], c_new, c)
            h_new = torch.where(valid[t], h_new, h)
            values = type(step)(*(v * valid[t] for v in values))
        h, c = h_new, c_new
        for name, value in zip(TRACE_FIELDS, values):
            records[name][t] = value
    trace = {name: torch.stack(values) for name, values in records.items()}
    return trace["h"], h, c, trace


def forward(batch: SequenceBatch, need_trace: bool) -> EngineResult:
    """All layers and directions. See `engines.base.SequenceBatch` for the inputs."""
    valid = None
    if batch.lengths is not None:
        valid = valid_mask(batch.lengths, batch.x.shape[0]).unsqueeze(-1)  # (T, B, 1)
    layer_input = batch.x
    h_n, c_n, layer_traces = [], [], []
    num_layers = len(batch.layers)
    for layer, directions in enumerate(batch.layers):
        outputs, fields = [], []
        for direction, weights in enumerate(directions):
            index = layer * len(directions) + direction
            hs, h_last, c_last, trace = run_direction(
                layer_input, batch.h0[index], batch.c0[index], weights, batch.spec,
                valid, reverse=direction == 1, training=batch.training,
            )
            outputs.append(hs)
            h_n.append(h_last)
            c_n.append(c_last)
            fields.append(trace)
        layer_input = torch.cat(outputs, dim=-1)  # (T, B, D*P)
        if batch.dropout and batch.training and layer < num_layers - 1:
            layer_input = F.dropout(layer_input, batch.dropout, training=True)
        if need_trace:
            layer_traces.append({n: torch.stack([f[n] for f in fields], dim=2) for n in TRACE_FIELDS})
    return EngineResult(layer_input, torch.stack(h_n), torch.stack(c_n), layer_traces if need_trace else None)
