"""The fused CPU engine: each layer-direction's time loop in C++ (csrc/fused_lstm.cpp;
the packed-weight loops and their thread team in csrc/fused_packed_calls.h,
fused_recurrent.h, fused_recurrent_ln.h, fused_packed.h and fused_team.h; the per-step
loops in fused_per_step.h; row kernels in fused_kernels.h and fused_layer_norm.h; the
streaming step in csrc/fused_step.h).

This module walks the layers (`forward`, `run_direction`, `stacked_outputs`) and is the
engine's public face; the rest lives in fused_extension.py (build, loading, the C++
calls' structures, buffer pool, packed weights), fused_direction.py (the autograd
Function of one layer-direction and its backward's GEMMs) and fused_stream.py (the
streaming step of `LSTM.step` and `lstmlab.Stream`).

Cells without projection or zoneout (plain, peephole, coupled, layer norm) run the
packed loops: W_hh (and, without layer norm, W_ih) is packed once per call into panels
for register-blocked tiles that compute all four gates of a block of hidden units, with
the gate math right after each tile. Batch rows are independent, so where the weights
fit in a core's L2 each thread runs the whole sequence for its share of the rows, with no
wait between threads; otherwise one thread team (at::parallel_for) splits each step's
hidden units, with one wait per step (two with layer norm), and where W_hh does not fit
in L2 each tile asks for its share of the next panel ahead (it comes from L3 every step);
the loops visit their panels in zigzag order, so a step starts with those still in L2.
Without layer norm the loop adds the bias itself, and when W_ih is small and the batch
has rows enough it computes the whole input share x W_ih^T + b inside the tile, so no
(T, B, 4H) input-gates buffer exists; otherwise Python computes x W_ih^T in one GEMM
first. With layer norm, one GEMM makes x W_ih^T and C++ normalises it row by row
(csrc/fused_input_norm.h); after the backward loop one C++ pass gives its gradient and
every layer-norm gain and bias gradient. Where nothing needs a gradient, both directions
of a bidirectional layer write into one (T, B, 2, ·) buffer per output
(`stacked_outputs`), so no copy stacks them.
Projection and zoneout take a per-step loop (one GEMM per step and a pass of gate math).
After the backward loop Python does the large GEMMs: dW_hh = sum_t dZ_t^T h_{t-1}, dX and
dW_ih, dW_hr = dH^T M, and the peephole gradients. The gates the forward
keeps for the backward pass are the trace, so the trace costs no extra arithmetic; with
neither trace nor autograd, the loops keep only the current step's gates.

Runs every cell of `lstmlab.LSTM` but FGR: plain, peephole, coupled, layer norm and zoneout
(in any combination), Greff's removed parts one at a time (`cell_bits`), projection, bidirectional, multi-layer, packed (valid lengths), weight
drop and dropout between layers. Zoneout's keep weights are drawn in Python exactly as
the reference draws them, so with the same seed both engines give the same numbers.

The extension is compiled at first use with torch.utils.cpp_extension (g++ and ninja)
for the CPU's vector unit (AVX-512, AVX2 or generic, read from torch at run time) and
cached under ``$LSTMLAB_CACHE`` (default ``~/.cache/lstmlab``); see fused_extension.py.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from ..cell import CellSpec, LayerWeights, input_gates, recurrent_weight, zoneout_keep
from .base import EngineResult, SequenceBatch
from . import fused_ops
from .fused_direction import FusedDirection, _NoGradContext
from .fused_extension import (
    SUPPORTED_DTYPES, buffer_pool_bytes, buffer_pool_limit, build_error, capability, cell_bits, load_extension,
    packed_forward_weight, release_buffers, unsupported_reason,
)
from .fused_stream import packed_step_weights, step_cell_reason, step_supported, step_weights, stream_step
from .layers import forward_layers

__all__ = [  # the engine's public names (engines.select, nn, stream, tests, benchmarks use them)
    "SUPPORTED_DTYPES", "FusedDirection", "buffer_pool_bytes", "buffer_pool_limit", "build_error", "capability",
    "forward", "load_extension", "packed_forward_weight", "packed_step_weights", "packed_without_layer_norm",
    "release_buffers", "run_direction", "stacked_outputs", "step_cell_reason", "step_supported", "step_weights",
    "stream_step", "unsupported_reason",
]


def packed_without_layer_norm(spec: CellSpec, weights: LayerWeights) -> bool:
    """Whether the cell runs the packed loops without layer norm: no projection, no zoneout
    (zoneout takes the per-step loop in evaluation too). These loops add the bias, can
    compute the input share in their tile and write into `stacked_outputs`' buffers."""
    return not spec.layer_norm and weights.w_hr is None and not spec.zoneout_c and not spec.zoneout_h


def _needs_grad(tensors) -> bool:
    """Whether autograd records a call on these tensors (None entries are skipped)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def run_direction(x: Tensor, h0: Tensor, c0: Tensor, weights: LayerWeights, spec: CellSpec,
                  lengths: Tensor | None, reverse: bool, training: bool,
                  need_trace: bool = True, out: dict[str, Tensor] | None = None) -> tuple[Tensor, Tensor, Tensor, dict]:
    """Same contract as `reference.run_direction`: hs (T, B, P), h_n, c_n, trace fields.

    need_trace False: the trace fields are not wanted; without autograd either, the loop
    may then keep only one step of gates and cells (the fields hold that step only).
    out: {"h": (T, B, H), and "gates" (T, B, 4H), "c" (T, B, H) when the trace is kept}:
    views to write the results into (`stacked_outputs`); nothing may need their gradient.
    """
    lengths = x.new_empty(0, dtype=torch.int64) if lengths is None else lengths.cpu().contiguous()
    w_hh = recurrent_weight(weights.w_hh, spec, training)
    steps = x.shape[0]  # zoneout weights drawn as the reference draws them (same random stream)
    keep_c = zoneout_keep(spec.zoneout_c, training, (steps, *c0.shape), c0)  # (T, B, H) or None
    keep_h = zoneout_keep(spec.zoneout_h, training, (steps, *h0.shape), h0)  # (T, B, P) or None
    # The packed loops of the cells without layer norm, projection or zoneout add the bias
    # themselves and, when W_ih is small and the batch large enough, compute the whole input
    # share in the step's tile (no (T, B, 4H) buffer); otherwise FusedDirection makes it
    # with one GEMM first (see fused_direction.FUSED_INPUT_MIN_BATCH). Layer norm:
    # FusedDirection makes the input share itself (one GEMM, then LN row by row in C++).
    # The other cells get input_gates, bias included.
    if packed_without_layer_norm(spec, weights) or spec.layer_norm:
        bias = w_hh.new_zeros(w_hh.shape[0]) if weights.b_ih is None else weights.b_ih + weights.b_hh  # (4H,)
        x_gates, input_share = None, (x, weights.w_ih, bias, weights.ln_ih if spec.layer_norm else None)
    else:
        # .to: float32 again where bfloat16 autocast made the GEMM's result bfloat16 (the loop is float32)
        x_gates, input_share = input_gates(x, weights, spec).to(x.dtype), (None, None, None, None)  # (T, B, 4H)
    inputs = (x_gates, h0, c0, w_hh, weights.w_hr, weights.peephole, weights.ln_hh, weights.ln_c_weight,
              weights.ln_c_bias)
    differentiable = _needs_grad(inputs + input_share)
    out_list = [] if out is None else [out.get(n, x.new_empty(0)) for n in ("gates", "c", "h")]
    arguments = (*inputs, keep_c, keep_h, lengths, reverse, cell_bits(spec), need_trace or differentiable,
                 *input_share, out_list)
    if fused_ops.tracing(x):  # torch.compile / torch.export: the custom op, one node of the graph
        i, f, g, o, cells, hiddens, h_n, c_n = fused_ops.run(*inputs, keep_c, keep_h, lengths, reverse, cell_bits(spec),
                                                             *input_share, differentiable)
        return hiddens, h_n, c_n, dict(i=i, f=f, g=g, o=o, c=cells, h=hiddens)
    if differentiable:
        i, f, g, o, cells, hiddens, h_n, c_n = FusedDirection.apply(*arguments)
    else:  # the same computation without autograd.Function's per-call cost
        i, f, g, o, cells, hiddens, h_n, c_n = FusedDirection.forward(_NoGradContext(), *arguments)
    fields = dict(i=i, f=f, g=g, o=o, c=cells, h=hiddens)
    if not differentiable and i._base is not None:  # the (T, B, 4H) buffer of i, f, g, o (see layers.stack_trace)
        fields["gates"] = i._base
    return hiddens, h_n, c_n, fields


def stacked_outputs(batch: SequenceBatch, need_trace: bool, x: Tensor,
                    directions: list[LayerWeights]) -> dict[str, Tensor] | None:
    """Pooled (T, B, D, ·) buffers that a bidirectional layer's directions write into
    (`layers.forward_layers`): "h", and with the trace "gates" and "c". None where
    the directions make their own: one direction (nothing to stack), autograd (each
    direction's outputs are its own autograd outputs), or a cell outside the packed loops
    without layer norm (projection, zoneout, layer norm).

    Copies that stacked the directions took a quarter of a bidirectional traced
    inference call (benchmarks/results/fused-engine-notes.md).
    """
    weights = directions[0]
    if len(directions) == 1 or not packed_without_layer_norm(batch.spec, weights) or fused_ops.tracing(x):
        return None
    if _needs_grad([x, batch.h0, batch.c0, *(t for w in directions for t in w)]):
        return None
    steps, rows, hidden = x.shape[0], x.shape[1], weights.w_hh.shape[1]
    pooled = load_extension().pooled_empty
    stacked = {"h": pooled([steps, rows, len(directions), hidden], x)}
    if need_trace:
        stacked |= {"gates": pooled([steps, rows, len(directions), 4 * hidden], x),
                    "c": pooled([steps, rows, len(directions), hidden], x)}
    return stacked


def forward(batch: SequenceBatch, need_trace: bool) -> EngineResult:
    reason = unsupported_reason(batch.spec, need_trace)
    if reason is not None:
        raise ValueError(f"engine 'fused' cannot run this: {reason}; use engine='reference' or 'auto'")
    return forward_layers(batch, need_trace, functools.partial(run_direction, need_trace=need_trace),
                          functools.partial(stacked_outputs, batch, need_trace))
