"""The reference engine: plain PyTorch, an explicit time loop, every option.

It is the specification every faster engine is checked against. It is short on
purpose: `cell.lstm_step` holds the math; this file only walks layers, directions
and time steps, and records the trace.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cell import (
    GATES, STATES, TRACE_FIELDS, CellSpec, LayerWeights, input_gates, lstm_step, recurrent_weight, zoneout,
    zoneout_keep,
)
from ..inputs import valid_mask
from .base import EngineResult, SequenceBatch

# (x, h0, c0, weights, spec, lengths, reverse, training) -> (hs, h_n, c_n, trace fields)
RunDirection = Callable[..., tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]]


def run_direction(
    x: Tensor, h0: Tensor, c0: Tensor, weights: LayerWeights, spec: CellSpec,
    lengths: Tensor | None, reverse: bool, training: bool,
) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
    """One layer, one direction over the whole sequence.

    x: (T, B, I); h0: (B, P); c0: (B, H); lengths: (B,) int64 or None (all T valid).
    Returns hs (T, B, P), h_n (B, P), c_n (B, H) and the trace fields, each (T, B, ·),
    zero where a step is not valid. A sequence's state is held still over its padded
    steps, so a reversed sequence starts from h0 at its own last valid step.
    """
    steps = x.shape[0]
    valid = None if lengths is None else valid_mask(lengths, steps).unsqueeze(-1)  # (T, B, 1)
    x_gates = input_gates(x, weights, spec)  # (T, B, 4H): one GEMM for all steps
    w_hh = recurrent_weight(weights.w_hh, spec, training)
    keep_c = zoneout_keep(spec.zoneout_c, training, (steps, *c0.shape), c0)  # (T, B, H) or None
    keep_h = zoneout_keep(spec.zoneout_h, training, (steps, *h0.shape), h0)  # (T, B, P) or None
    h, c = h0, c0
    records: dict[str, list[Tensor]] = {name: [None] * steps for name in TRACE_FIELDS}
    for t in (reversed(range(steps)) if reverse else range(steps)):
        step = lstm_step(x_gates[t], h, c, weights, spec, w_hh)
        c_new = zoneout(step.c, c, None if keep_c is None else keep_c[t])  # (B, H)
        h_new = zoneout(step.h, h, None if keep_h is None else keep_h[t])  # (B, P)
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


def stack_directions(values: list[Tensor]) -> Tensor:
    """Per-direction (T, B, ·) tensors -> (T, B, D, ·); one direction as a view, no copy."""
    return values[0].unsqueeze(2) if len(values) == 1 else torch.stack(values, dim=2)


def stack_trace(fields: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Per-direction trace fields -> {name: (T, B, D, ·)} for TRACE_FIELDS.

    A direction may also give "gates": the (T, B, 4H) buffer its i, f, g, o are views of,
    when nothing needs their gradient. With every direction giving it, that buffer is
    stacked once and i, f, g, o are views of the result: one contiguous copy instead of
    four strided ones (at 2 layers x 2 directions, (100, 32, 64, 128), 6.6 of 25 ms went
    to these copies).
    """
    combined = [f.get("gates") for f in fields]
    if len(fields) > 1 and all(g is not None for g in combined):
        stacked = dict(zip(GATES, torch.stack(combined, dim=2).chunk(4, dim=-1)))
        return {**stacked, **{n: stack_directions([f[n] for f in fields]) for n in STATES}}
    return {n: stack_directions([f[n] for f in fields]) for n in TRACE_FIELDS}


def stacked_trace(stacked: dict[str, Tensor]) -> dict[str, Tensor]:
    """The trace fields as views of a layer's stacked buffers (see `forward_layers`)."""
    return {**dict(zip(GATES, stacked["gates"].chunk(4, dim=-1))), "c": stacked["c"], "h": stacked["h"]}


def forward(batch: SequenceBatch, need_trace: bool) -> EngineResult:
    return forward_layers(batch, need_trace, run_direction)


# (layer input (T, B, I), weights of the layer's directions) -> {name: (T, B, D, ·)} or None
LayerOutputs = Callable[[Tensor, list[LayerWeights]], dict[str, Tensor] | None]


def forward_layers(batch: SequenceBatch, need_trace: bool, run_direction: RunDirection,
                   layer_outputs: LayerOutputs | None = None) -> EngineResult:
    """All layers and directions, each by `run_direction` (the engines share this walk).

    See `engines.base.SequenceBatch` for the inputs. `layer_outputs`, where it gives
    buffers for a layer, {"h": (T, B, D, P)} and with the trace also "c" (T, B, D, H) and
    "gates" (T, B, D, 4H): each direction then gets `out=` its slices of them
    ((T, B, ·) views) to write into, and the layer's output and trace are views of those
    buffers, without a copy to stack the directions.
    """
    layer_input = batch.x
    h_n, c_n, layer_traces = [], [], []
    num_layers = len(batch.layers)
    for layer, directions in enumerate(batch.layers):
        outputs, fields = [], []
        stacked = layer_outputs(layer_input, directions) if layer_outputs is not None else None
        for direction, weights in enumerate(directions):
            index = layer * len(directions) + direction
            out = {} if stacked is None else {"out": {n: v[:, :, direction] for n, v in stacked.items()}}
            hs, h_last, c_last, trace = run_direction(
                layer_input, batch.h0[index], batch.c0[index], weights, batch.spec,
                batch.lengths, reverse=direction == 1, training=batch.training, **out,
            )
            outputs.append(hs)
            h_n.append(h_last)
            c_n.append(c_last)
            fields.append(trace)
        if stacked is not None:
            layer_input = stacked["h"].flatten(2)  # (T, B, D*P), a view
        else:
            layer_input = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-1)  # (T, B, D*P)
        if batch.dropout and batch.training and layer < num_layers - 1:
            layer_input = F.dropout(layer_input, batch.dropout, training=True)
        if need_trace:
            layer_traces.append(stack_trace(fields) if stacked is None else stacked_trace(stacked))
    return EngineResult(layer_input, torch.stack(h_n), torch.stack(c_n), layer_traces if need_trace else None)
