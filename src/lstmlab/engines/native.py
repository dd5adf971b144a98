"""The native engine: torch's own fused LSTM kernel (`torch.lstm`; oneDNN on CPU).

It runs the plain cell (with or without projection), plus weight drop, which only
changes the recurrent weights that enter the kernel. It cannot run peephole,
layer-norm, coupled or zoneout cells: `engines.select` says so.

The trace: the fused kernel does not expose its gates, but they are a function of
what it does return. With every h_{t-1} known, all pre-activations come from two big
GEMMs, ``z = input_gates(x) + h_prev @ W_hh^T`` (T·B rows at once), and the cell
states from the scan ``c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t`` (one fused elementwise op per
step). This is exact math (equal to the reference up to rounding) and differentiable:
gradients on the trace flow through the recomputation into the weights and, through
h_prev, into the kernel's own backward pass. Layers then run one `torch.lstm` call
each, so their outputs can be traced.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..cell import TRACE_FIELDS, CellSpec, LayerWeights, input_gates, recurrent_weight
from ..inputs import valid_mask
from .base import EngineResult, SequenceBatch
from .layers import previous_states, stack_directions


def unsupported_reason(spec: CellSpec, need_trace: bool, like: Tensor | None = None) -> str | None:
    """Why this engine cannot run the request, or None when it can (any device and dtype)."""
    del need_trace, like  # the trace is recomputed from the kernel's outputs
    if spec.changes_cell_math:
        return f"torch's fused kernel has no {'/'.join(spec.variant_names())} cell"
    return None


def _flat_weights(layers: list[list[LayerWeights]]) -> list[Tensor]:
    """Weights in torch.lstm's order: per layer, per direction w_ih, w_hh[, b_ih, b_hh][, w_hr]."""
    flat = []
    for directions in layers:
        for weights in directions:
            flat += [weights.w_ih, weights.w_hh]
            if weights.b_ih is not None:
                flat += [weights.b_ih, weights.b_hh]
            if weights.w_hr is not None:
                flat.append(weights.w_hr)
    return flat


def _fused(x: Tensor, h0: Tensor, c0: Tensor, layers: list[list[LayerWeights]], lengths: Tensor | None,
           dropout: float, training: bool) -> tuple[Tensor, Tensor, Tensor]:
    """One torch.lstm call over `layers`: output (T, B, D*P), h_n, c_n in the caller's batch order."""
    has_biases = layers[0][0].b_ih is not None
    args = (_flat_weights(layers), has_biases, len(layers), dropout, training, len(layers[0]) == 2)
    if lengths is None:
        return torch.lstm(x, (h0, c0), *args, False)
    packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
    hx = (h0.index_select(1, packed.sorted_indices), c0.index_select(1, packed.sorted_indices))
    data, h_n, c_n = torch.lstm(packed.data, packed.batch_sizes, hx, *args)
    output, _ = pad_packed_sequence(packed._replace(data=data), total_length=x.shape[0])
    unsort = packed.unsorted_indices
    return output, h_n.index_select(1, unsort), c_n.index_select(1, unsort)


def _cell_states(f: Tensor, candidate: Tensor, c0: Tensor, reverse: bool, valid: Tensor | None) -> Tensor:
    """The scan c_t = f_t ⊙ c_{t-1} + candidate_t, held still over padded steps: (T, B, H)."""
    states, c = [None] * f.shape[0], c0
    for t in (reversed(range(f.shape[0])) if reverse else range(f.shape[0])):
        c_new = torch.addcmul(candidate[t], f[t], c)
        c = c_new if valid is None else torch.where(valid[t], c_new, c)
        states[t] = c
    return torch.stack(states)


def recompute_trace(x: Tensor, output: Tensor, h0: Tensor, c0: Tensor, directions: list[LayerWeights],
                    spec: CellSpec, valid: Tensor | None) -> dict[str, Tensor]:
    """One layer's trace from its input x (T, B, I) and fused output (T, B, D*P).

    h0: (D, B, P), c0: (D, B, H); valid: (T, B, 1) or None. Returns {"i": (T, B, D, H), ...}.
    """
    width = output.shape[-1] // len(directions)
    fields = []
    for direction, weights in enumerate(directions):
        reverse = direction == 1
        hs = output[..., direction * width:(direction + 1) * width]  # (T, B, P)
        h_prev = previous_states(hs, h0[direction], reverse, valid)
        z = input_gates(x, weights, spec) + h_prev @ weights.w_hh.T  # (T, B, 4H)
        z_i, z_f, z_g, z_o = z.chunk(4, dim=-1)
        i, f, g, o = torch.sigmoid(z_i), torch.sigmoid(z_f), torch.tanh(z_g), torch.sigmoid(z_o)
        c = _cell_states(f, i * g, c0[direction], reverse, valid)
        values = dict(i=i, f=f, g=g, o=o, c=c, h=hs)
        if valid is not None:
            values = {name: value * valid for name, value in values.items()}
        fields.append(values)
    return {name: stack_directions([f[name] for f in fields]) for name in TRACE_FIELDS}


def forward(batch: SequenceBatch, need_trace: bool) -> EngineResult:
    reason = unsupported_reason(batch.spec, need_trace)
    if reason is not None:
        raise ValueError(f"engine 'native' cannot run this: {reason}; use engine='reference' or 'auto'")
    # Weight drop: one mask per call, shared by the kernel and the trace recomputation.
    layers = [[w._replace(w_hh=recurrent_weight(w.w_hh, batch.spec, batch.training)) for w in directions]
              for directions in batch.layers]
    if not need_trace:
        output, h_n, c_n = _fused(batch.x, batch.h0, batch.c0, layers, batch.lengths, batch.dropout, batch.training)
        return EngineResult(output, h_n, c_n, None)
    valid = None if batch.lengths is None else valid_mask(batch.lengths, batch.x.shape[0]).unsqueeze(-1)
    layer_input, h_n, c_n, traces = batch.x, [], [], []
    per_layer = len(layers[0])
    for k, directions in enumerate(layers):
        rows = slice(k * per_layer, (k + 1) * per_layer)
        output, h_last, c_last = _fused(layer_input, batch.h0[rows], batch.c0[rows], [directions],
                                        batch.lengths, 0.0, batch.training)
        traces.append(recompute_trace(layer_input, output, batch.h0[rows], batch.c0[rows], directions,
                                      batch.spec, valid))
        h_n.append(h_last)
        c_n.append(c_last)
        layer_input = output
        if batch.dropout and batch.training and k < len(layers) - 1:
            layer_input = F.dropout(layer_input, batch.dropout, training=True)
    return EngineResult(layer_input, torch.cat(h_n), torch.cat(c_n), traces)
