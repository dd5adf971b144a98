"""The native engine: torch's own fused LSTM kernel (`torch.lstm`; oneDNN on CPU).

It runs the plain cell (with or without projection), plus weight drop, which only
changes the recurrent weights that enter the kernel. It cannot produce a trace or
run peephole, layer-norm, coupled or zoneout cells: `engines.select` says so.
"""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..cell import LayerWeights, recurrent_weight
from .base import EngineResult, SequenceBatch


def unsupported_reason(spec, need_trace: bool) -> str | None:
    """Why this engine cannot run the request, or None when it can."""
    if need_trace:
        return "torch's fused kernel does not expose the gates (trace=True)"
    if spec.changes_cell_math:
        return f"torch's fused kernel has no {'/'.join(spec.variant_names())} cell"
    return None


def _flat_weights(batch: SequenceBatch) -> list[torch.Tensor]:
    """Weights in torch.lstm's order: per layer, per direction w_ih, w_hh[, b_ih, b_hh][, w_hr]."""
    flat = []
    for directions in batch.layers:
        for weights in directions:
            weights: LayerWeights
            flat += [weights.w_ih, recurrent_weight(weights.w_hh, batch.spec, batch.training)]
            if weights.b_ih is not None:
                flat += [weights.b_ih, weights.b_hh]
            if weights.w_hr is not None:
                flat.append(weights.w_hr)
    return flat


def forward(batch: SequenceBatch, need_trace: bool) -> EngineResult:
    reason = unsupported_reason(batch.spec, need_trace)
    if reason is not None:
        raise ValueError(f"engine 'native' cannot run this: {reason}; use engine='reference' or 'auto'")
    flat = _flat_weights(batch)
    has_biases = batch.layers[0][0].b_ih is not None
    num_layers, bidirectional = len(batch.layers), len(batch.layers[0]) == 2
    args = (flat, has_biases, num_layers, batch.dropout, batch.training, bidirectional)
    if batch.lengths is None:
        output, h_n, c_n = torch.lstm(batch.x, (batch.h0, batch.c0), *args, False)
        return EngineResult(output, h_n, c_n, None)
    packed = pack_padded_sequence(batch.x, batch.lengths.cpu(), enforce_sorted=False)
    hx = (batch.h0.index_select(1, packed.sorted_indices), batch.c0.index_select(1, packed.sorted_indices))
    data, h_n, c_n = torch.lstm(packed.data, packed.batch_sizes, hx, *args)
    output, _ = pad_packed_sequence(packed._replace(data=data), total_length=batch.x.shape[0])
    unsort = packed.unsorted_indices
    return EngineResult(output, h_n.index_select(1, unsort), c_n.index_select(1, unsort), None)
