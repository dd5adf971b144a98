"""The layer walk the engines share, and its helpers for stacking directions.

An engine supplies `run_direction` (one layer, one direction over the whole sequence);
`forward_layers` runs it over every layer and direction, feeds each layer's output to
the next (with dropout between layers) and stacks the directions' outputs and traces.
`previous_states` gives the state each step started from, for engines that recompute
or differentiate per step from the whole sequence of states.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cell import GATES, STATES, TRACE_FIELDS, LayerWeights
from .base import EngineResult, SequenceBatch

# (x, h0, c0, weights, spec, lengths, reverse, training) -> (hs, h_n, c_n, trace fields)
RunDirection = Callable[..., tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]]

# (layer input (T, B, I), weights of the layer's directions) -> {name: (T, B, D, ·)} or None
LayerOutputs = Callable[[Tensor, list[LayerWeights]], dict[str, Tensor] | None]


def stack_directions(values: list[Tensor]) -> Tensor:
    """Per-direction (T, B, ·) tensors -> (T, B, D, ·); one direction as a view, no copy."""
    return values[0].unsqueeze(2) if len(values) == 1 else torch.stack(values, dim=2)


def stack_trace(fields: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Per-direction trace fields -> {name: (T, B, D, ·)} for TRACE_FIELDS.

    A direction may also give "gates": the (T, B, 4H) buffer its i, f, g, o are views of,
    when nothing needs their gradient. With every direction giving it, that buffer is
    stacked once and i, f, g, o are views of the result: one contiguous copy instead of
    four strided ones (four strided copies of a bidirectional layer's gates cost a quarter
    of a traced inference call; see benchmarks/results/fused-engine-notes.md).
    """
    combined = [f.get("gates") for f in fields]
    if len(fields) > 1 and all(g is not None for g in combined):
        stacked = dict(zip(GATES, torch.stack(combined, dim=2).chunk(4, dim=-1)))
        return {**stacked, **{n: stack_directions([f[n] for f in fields]) for n in STATES}}
    return {n: stack_directions([f[n] for f in fields]) for n in TRACE_FIELDS}


def stacked_trace(stacked: dict[str, Tensor]) -> dict[str, Tensor]:
    """The trace fields as views of a layer's stacked buffers (see `forward_layers`)."""
    return {**dict(zip(GATES, stacked["gates"].chunk(4, dim=-1))), "c": stacked["c"], "h": stacked["h"]}


def previous_states(hs: Tensor, h0: Tensor, reverse: bool, valid: Tensor | None) -> Tensor:
    """h_{t-1} as seen by step t: (T, B, P) from hs (T, B, P) and h0 (B, P); valid (T, B, 1)
    or None. Reverse runs from each sequence's own end (h0 at its last valid step)."""
    if not reverse:
        return torch.cat((h0.unsqueeze(0), hs[:-1]), dim=0)
    following = torch.cat((hs[1:], torch.zeros_like(hs[:1])), dim=0)  # hs[t + 1]
    if valid is None:
        following[-1] = h0
        return following
    next_valid = torch.cat((valid[1:], torch.zeros_like(valid[:1])), dim=0)  # (T, B, 1)
    return torch.where(next_valid, following, h0)


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
