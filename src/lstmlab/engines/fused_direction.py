"""One layer-direction of the fused engine as an autograd Function: the C++ loop forward and
backward (csrc/fused_lstm.cpp), and the big GEMMs around it in Python (the input share
before the loop where the loop does not compute it; dW_hh, dW_hr, dX, dW_ih and the
peephole gradients after it).

Inside ``torch.autocast("cpu", dtype=torch.bfloat16)`` the GEMMs over all steps (the input
share x W_ih^T, and dX, dW_ih, dW_hh) take bfloat16 operands (`bf16_gemms`), while the
recurrence, the states, the gates' nonlinearities and every result stay float32. On CPUs
with bfloat16 instructions those GEMMs run faster: the speech recipe's training step,
1.2-1.4x (benchmarks/results/speech_throughput.md).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..inputs import valid_mask
from .fused_extension import (
    COUPLED, BackwardInputs, BackwardOutputs, ForwardInputs, ForwardOutputs, load_extension, or_empty,
)
from .fused_extension import packed_forward_weight
from .layers import previous_states

# The packed loops compute the input share x W_ih^T per step inside the tile (no (T, B, 4H)
# buffer) when W_ih is at most this large (it is re-read every step; ~half of a core's L2)
# and the batch has at least FUSED_INPUT_MIN_BATCH rows; otherwise one GEMM before the
# loop. With fewer rows each W_ih load serves too few of them: two full row blocks (one
# per thread) are needed to beat the GEMM (measurements: benchmarks/results/fused-engine-notes.md).
FUSED_INPUT_MAX_BYTES = 1 << 20
FUSED_INPUT_MIN_BATCH = 12


class _Saved(NamedTuple):
    """What FusedDirection.forward keeps for the backward (empty tensors or None where absent)."""

    gates: Tensor
    cells: Tensor
    hidden_pre: Tensor
    hiddens: Tensor
    h0: Tensor
    c0: Tensor
    w_hh: Tensor
    w_hr: Tensor
    peephole: Tensor
    ln_g_hh: Tensor
    ln_g_c: Tensor
    ln_b_c: Tensor
    keep_c: Tensor
    keep_h: Tensor
    r_hat: Tensor | None
    rstd_r: Tensor | None
    c_hat: Tensor | None
    rstd_c: Tensor | None
    cells_fresh: Tensor | None
    lengths: Tensor
    x: Tensor
    w_ih: Tensor
    u_hat: Tensor
    rstd_u: Tensor
    ln_g_ih: Tensor


class FusedDirection(torch.autograd.Function):
    """One layer-direction: (x_gates, h0, c0, W_hh, W_hr, peephole, LN gains) -> i, f, g, o, C, H, h_n, c_n.

    The gates i, f, g, o (T, B, H) are views of one (T, B, 4H) buffer, returned apart so
    that a loss on one of them hands the backward that gate's gradient alone (no
    concatenation with zeros for the others).

    Optional weights are None when the cell does not have them. x_gates None: the input
    share comes from x (T, B, I) and W_ih (4H, I) here, and the backward returns their
    gradients and the bias's (4H), which the loop adds. Cells without layer norm,
    projection or zoneout: the loop computes x W_ih^T in its tile when W_ih is small and
    the batch large enough (FUSED_INPUT_MAX_BYTES, FUSED_INPUT_MIN_BATCH), else one GEMM
    here does first (and the loop writes the gates over its output). Layer norm
    (ln_ih given): one GEMM here, normalised row by row in C++ to u_hat, to which the loop
    adds the gain and bias. The other cells pass x_gates with the bias in it. The big
    buffers come from the extension's buffer pool (csrc/fused_buffers.h), so repeated calls
    do not fault their pages in again. out: [] or [gates, cells, hiddens], (T, B, ·) views
    to write into (see `fused.run_direction`), each empty where a new buffer should be made.
    """

    @staticmethod
    def forward(ctx, x_gates, h0, c0, w_hh, w_hr, peephole, ln_hh, ln_c_weight, ln_c_bias, keep_c, keep_h, lengths,
                reverse, cell, keep_trace, x, w_ih, bias, ln_ih, out):
        ctx.set_materialize_grads(False)  # outputs without a gradient arrive as None
        # Without autograd the weights rarely change between calls: their packed copies are
        # cached (packed_forward_weight); with autograd each call packs its own.
        result, flags, saved = direction_forward(
            x_gates, h0, c0, w_hh, w_hr, peephole, ln_hh, ln_c_weight, ln_c_bias, keep_c, keep_h, lengths, reverse,
            cell, keep_trace, x, w_ih, bias, ln_ih, out, cache_packed=isinstance(ctx, _NoGradContext))
        ctx.save_for_backward(*saved)
        ctx.flags = flags
        return (*result.gates.chunk(4, dim=-1), result.cells, result.hiddens, result.h_n, result.c_n)

    @staticmethod
    def backward(ctx, d_i, d_f, d_g, d_o, d_cells, d_hiddens, dh_n, dc_n):
        needs_x, needs_w_ih, needs_bias = ctx.needs_input_grad[-5:-2]  # then ln_ih, out
        grads = direction_backward(ctx.flags._replace(needs_x=needs_x, needs_w_ih=needs_w_ih, needs_bias=needs_bias),
                                   _Saved(*ctx.saved_tensors), (d_i, d_f, d_g, d_o), d_cells, d_hiddens, dh_n, dc_n)
        return (*grads[:9], None, None, None, None, None, None, *grads[9:], None)


class DirectionFlags(NamedTuple):
    """What a layer-direction's backward needs to know besides the saved tensors."""

    reverse: bool
    cell: int  # the cell's variant bits (fused_extension.cell_bits)
    has_projection: bool
    has_peephole: bool
    has_layer_norm: bool
    has_cell_zoneout: bool
    packed_loops: bool  # the C++ side ran them (no projection, no zoneout)
    input_here: bool  # x, W_ih given: their gradients (and the bias's) are this function's
    needs_x: bool = True
    needs_w_ih: bool = True
    needs_bias: bool = True
    bf16_gemms: bool = False  # the forward ran under bfloat16 autocast: so do the backward's GEMMs


def bf16_autocast(x: Tensor) -> bool:
    """Whether the GEMMs over all steps take bfloat16 operands: float32 CPU input inside
    ``torch.autocast("cpu", dtype=torch.bfloat16)``."""
    return (x.dtype == torch.float32 and x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16)


def _mm(a: Tensor, b: Tensor, out: Tensor, bf16: bool) -> Tensor:
    """out = a @ b (float32 `out`); bf16: from bfloat16 copies of a and b (the product is
    rounded to bfloat16, then written to `out` as float32)."""
    if not bf16:
        return torch.mm(a, b, out=out)
    return out.copy_(torch.mm(a.to(torch.bfloat16), b.to(torch.bfloat16)))


def direction_forward(x_gates, h0, c0, w_hh, w_hr, peephole, ln_hh, ln_c_weight, ln_c_bias, keep_c, keep_h, lengths,
                      reverse, cell, keep_trace, x, w_ih, bias, ln_ih, out, cache_packed: bool,
                      bf16: bool | None = None):
    """FusedDirection's forward without autograd: (ForwardOutputs, DirectionFlags, the
    tensors the backward needs in _Saved's order, empty tensors where absent).

    The arguments are FusedDirection.forward's; cache_packed: use the packed copies of the
    weights that `packed_forward_weight` keeps (calls without autograd only). bf16: the
    GEMMs over all steps take bfloat16 operands; None = as the autocast around the call says.
    """
    empty = w_hh.new_empty(0)  # stands in for every absent tensor
    input_here = x_gates is None
    if bf16 is None:
        bf16 = bf16_autocast(x if input_here else x_gates)
    u_hat = rstd_u = None
    if input_here and _input_gemm_first(x, w_ih, ln_ih, bf16):
        x_gates, u_hat, rstd_u = _input_share(x, w_ih, ln_ih, bool(cell & COUPLED), bf16)
    in_loop = input_here and x_gates is None
    w_hh, w_ih_in_loop = w_hh.contiguous(), or_empty(w_ih if in_loop else None, empty)
    packed_loops = w_hr is None and keep_c is None and keep_h is None  # see csrc/fused_packed_calls.h
    packed = ([packed_forward_weight(w_hh), packed_forward_weight(w_ih_in_loop) if in_loop else empty]
              if packed_loops and cache_packed else [])
    inputs = ForwardInputs(
        input_gates=or_empty(x_gates, empty), x=or_empty(x if in_loop else None, empty), w_ih=w_ih_in_loop,
        bias=or_empty(bias, empty), ln_g_ih=or_empty(ln_ih, empty), h0=h0.contiguous(), c0=c0.contiguous(),
        w_hh=w_hh, w_hr=or_empty(w_hr, empty), peephole=or_empty(peephole, empty),
        ln_g_hh=or_empty(ln_hh, empty), ln_g_c=or_empty(ln_c_weight, empty), ln_b_c=or_empty(ln_c_bias, empty),
        keep_c=or_empty(keep_c, empty), keep_h=or_empty(keep_h, empty), lengths=lengths, reverse=reverse,
        cell=cell, keep_trace=keep_trace, out=out, packed_weights=packed)
    result = ForwardOutputs._make(load_extension().forward(inputs))
    saved = _Saved(result.gates, result.cells, result.hidden_pre, result.hiddens, h0, c0, w_hh, inputs.w_hr,
                   inputs.peephole, inputs.ln_g_hh, inputs.ln_g_c, inputs.ln_b_c, inputs.keep_c, inputs.keep_h,
                   *(or_empty(t, empty) for t in (result.r_hat, result.rstd_r, result.c_hat, result.rstd_c,
                                                  result.cells_fresh)),
                   lengths, *(or_empty(t, empty) for t in (x, w_ih, u_hat, rstd_u, ln_ih)))
    flags = DirectionFlags(reverse, cell, w_hr is not None, peephole is not None, ln_hh is not None,
                           keep_c is not None, packed_loops, input_here, bf16_gemms=bf16)
    return result, flags, saved


def direction_backward(flags: DirectionFlags, saved: _Saved, d_gates, d_cells, d_hiddens, dh_n, dc_n) -> tuple:
    """FusedDirection's backward: the gradients of (x_gates, h0, c0, W_hh, W_hr, peephole,
    ln_hh, ln_c_weight, ln_c_bias, x, W_ih, bias, ln_ih), None where there is none.

    d_gates: the gradients of i, f, g, o (each (T, B, H) or None); the others those of
    the cells, hiddens, h_n and c_n, or None.
    """
    c_prev = h_prev = None
    if not flags.packed_loops:  # the packed loops find c_{t-1} in cells and c0
        valid = valid_mask(saved.lengths, saved.gates.shape[0]).unsqueeze(-1) if saved.lengths.numel() else None
        c_prev = previous_states(saved.cells, saved.c0, flags.reverse, valid).contiguous()  # (T, B, H)
        h_prev = previous_states(saved.hiddens, saved.h0, flags.reverse, valid)  # (T, B, P)
    grads = _loop_backward(flags, saved, d_gates, d_cells, d_hiddens, dh_n, dc_n, c_prev)
    d_recurrent = grads.d_rec if flags.has_layer_norm else grads.dz  # gradient of W_hh h_{t-1}
    if flags.packed_loops:  # sum_t d_t^T h_{t-1} without a shifted copy of the hidden states
        d_w_hh = sum_with_previous(d_recurrent, saved.hiddens, saved.h0, flags.reverse, saved.lengths,
                                   flags.bf16_gemms)  # (4H, P)
    else:
        d_w_hh = _weight_gradient(d_recurrent, h_prev, bf16=flags.bf16_gemms)  # (4H, P)
    d_w_hr = _weight_gradient(grads.dh_total, saved.hidden_pre) if flags.has_projection else None  # (P, H)
    d_peephole = _peephole_gradient(flags, saved, grads.dz, c_prev) if flags.has_peephole else None
    d_x, d_w_ih, d_bias, d_ln_ih, d_ln = _input_share_gradients(flags, saved, grads)
    return (None if flags.input_here else grads.dz, grads.dh0, grads.dc0, d_w_hh, d_w_hr, d_peephole, *d_ln,
            d_x, d_w_ih, d_bias, d_ln_ih)


class _NoGradContext:
    """Stands in for autograd's ctx when nothing needs a gradient: `fused.run_direction` then
    calls FusedDirection.forward directly, saving autograd.Function.apply's own cost
    (a tenth of a batch-1 call's Python time)."""

    def set_materialize_grads(self, value: bool) -> None:
        pass

    def save_for_backward(self, *tensors: Tensor) -> None:
        pass


def _input_gemm_first(x: Tensor, w_ih: Tensor, ln_ih: Tensor | None, bf16: bool) -> bool:
    """Whether x W_ih^T is one GEMM before the loop (layer norm; a small batch; a large
    W_ih; bfloat16 autocast) rather than computed in the loop's tile (see FUSED_INPUT_MAX_BYTES)."""
    return (bf16 or ln_ih is not None or x.shape[1] < FUSED_INPUT_MIN_BATCH
            or w_ih.numel() * w_ih.element_size() > FUSED_INPUT_MAX_BYTES)


def _input_share(x: Tensor, w_ih: Tensor, ln_ih: Tensor | None, coupled: bool, bf16: bool):
    """u = x W_ih^T (T, B, 4H) in a pooled buffer, and for layer norm u made u_hat in place:
    (x_gates, u_hat or None, rstd_u (T*B,) or None). Without layer norm the loop writes the
    gates over u (see csrc/fused_lstm.cpp). bf16: the GEMM from bfloat16 operands."""
    extension = load_extension()
    u = extension.pooled_empty([*x.shape[:2], w_ih.shape[0]], x)
    _mm(x.flatten(0, 1), w_ih.T, u.view(-1, w_ih.shape[0]), bf16)
    if ln_ih is None:
        return u, None, None
    return u, u, extension.input_layer_norm(u.view(-1, u.shape[-1]), coupled)  # u_hat kept for the backward


def _loop_backward(flags: DirectionFlags, saved: _Saved, d_gates, d_cells, d_hiddens, dh_n, dc_n,
                   c_prev) -> BackwardOutputs:
    """The C++ backward loop. Absent trace gradients go as empty tensors (zeros there)."""
    empty = saved.w_hh.new_empty(0)
    has_layer_norm, has_cell_zoneout = flags.has_layer_norm, flags.has_cell_zoneout
    layer_norm = [t if has_layer_norm else empty for t in (saved.r_hat, saved.rstd_r, saved.c_hat, saved.rstd_c)]
    inputs = BackwardInputs(
        d_hiddens=_dense(d_hiddens, saved.hiddens),
        d_gates_trace=[empty if g is None else _dense(g, g) for g in d_gates],
        d_cells_trace=empty if d_cells is None else _dense(d_cells, d_cells), dh_n=_dense(dh_n, saved.h0),
        dc_n=_dense(dc_n, saved.c0), gates=saved.gates, cells=saved.cells, c_prev=empty if c_prev is None else c_prev,
        c0=saved.c0, w_hh=saved.w_hh, w_hr=saved.w_hr, peephole=saved.peephole, ln_g_hh=saved.ln_g_hh,
        ln_g_c=saved.ln_g_c, ln_b_c=saved.ln_b_c, r_hat=layer_norm[0], rstd_r=layer_norm[1], c_hat=layer_norm[2],
        rstd_c=layer_norm[3], keep_c=saved.keep_c, keep_h=saved.keep_h,
        cells_fresh=saved.cells_fresh if has_cell_zoneout else empty, lengths=saved.lengths, reverse=flags.reverse,
        cell=flags.cell)
    return BackwardOutputs._make(load_extension().backward(inputs))


def _peephole_gradient(flags: DirectionFlags, saved: _Saved, dz: Tensor, c_prev: Tensor | None) -> Tensor:
    """(3H,): sum over t, b of dz_i c_{t-1}, dz_f c_{t-1} and dz_o c_t."""
    dz_i, dz_f, _, dz_o = dz.chunk(4, dim=-1)
    seen_by_o = saved.cells_fresh if flags.has_cell_zoneout else saved.cells  # o's peephole sees c before zoneout
    if flags.packed_loops:
        d_i, d_f = (weighted_previous(d, saved.cells, saved.c0, flags.reverse, saved.lengths) for d in (dz_i, dz_f))
    else:
        d_i, d_f = (dz_i * c_prev).sum((0, 1)), (dz_f * c_prev).sum((0, 1))
    return torch.cat((d_i, d_f, (dz_o * seen_by_o).sum((0, 1))))


def _input_share_gradients(flags: DirectionFlags, saved: _Saved, grads: BackwardOutputs):
    """(d_x, d_w_ih, d_bias, d_ln_ih, (d_ln_hh, d_ln_c_weight, d_ln_c_bias)): what autograd
    would give for the input share's GEMM (x, W_ih) and the bias, and with layer norm the
    gains' and biases' gradients, sums over rows that one C++ pass makes with dL/du."""
    d_ln, d_ln_ih = (None, None, None), None
    has_layer_norm, needs_bias = flags.has_layer_norm, flags.needs_bias
    flat = grads.dz.flatten(0, 1)  # (T*B, 4H): the gradient of the input share's GEMM x W_ih^T
    if has_layer_norm:
        flat, d_ln_ih, d_bias, *d_ln = load_extension().layer_norm_gradients(
            grads.dz, saved.u_hat, saved.rstd_u, saved.ln_g_ih, saved.r_hat, grads.d_cell_ln, saved.c_hat, bool(flags.cell & COUPLED))
    else:
        d_bias = flat.sum(0) if needs_bias else None
    d_x = d_w_ih = None
    if flags.input_here and flags.needs_x:
        d_x = load_extension().pooled_empty(list(saved.x.shape), saved.x)
        _mm(flat, saved.w_ih, d_x.view(-1, saved.x.shape[-1]), flags.bf16_gemms)
    if flags.input_here and flags.needs_w_ih:
        d_w_ih = _weight_gradient(flat, saved.x, bf16=flags.bf16_gemms)
    return d_x, d_w_ih, d_bias, d_ln_ih, d_ln


def _dense(grad: Tensor | None, like: Tensor) -> Tensor:
    """grad as a contiguous tensor (zeros like `like` for None); a copy, when one is needed,
    in a pooled buffer (gradients of sums arrive expanded from one number)."""
    if grad is None:
        return torch.zeros_like(like)
    if grad.is_contiguous():
        return grad
    return load_extension().pooled_empty(list(grad.shape), grad).copy_(grad)


# Largest weight gradient computed as a transposed product (see _weight_gradient).
TRANSPOSED_GRADIENT_MAX_NUMEL = 1 << 16


def _weight_gradient(d: Tensor, inputs: Tensor, first: tuple[Tensor, Tensor] | None = None,
                     bf16: bool = False) -> Tensor:
    """sum over rows of d^T inputs, plus a^T b for first = (a, b): (N, W) from d (..., N),
    inputs (..., W) and a (M, N), b (M, W). bf16: the sum over rows from bfloat16 operands
    (`first`, a batch of rows, stays float32).

    Small ones as (inputs^T d)^T, a transposed view: MKL runs that orientation markedly
    faster here, and making the parameter's .grad contiguous costs little. For large ones
    that costs more than it saves (measurements: benchmarks/results/fused-engine-notes.md).
    The result lies in a pooled buffer (csrc/fused_buffers.h): a new (4H, H) tensor per
    call faulted its pages in every time, and `first` is added in place, with no tensor of
    its own.
    """
    d, inputs = d.flatten(0, -2), inputs.flatten(0, -2)
    pooled = load_extension().pooled_empty
    if d.shape[1] * inputs.shape[1] <= TRANSPOSED_GRADIENT_MAX_NUMEL:
        out = _mm(inputs.T, d, pooled([inputs.shape[1], d.shape[1]], d), bf16)
        if first is not None:
            out.addmm_(first[1].T, first[0])
        return out.T
    out = _mm(d.T, inputs, pooled([d.shape[1], inputs.shape[1]], d), bf16)
    if first is not None:
        out.addmm_(first[0].T, first[1])
    return out


def _shifted(d: Tensor, states: Tensor, reverse: bool) -> tuple[Tensor, Tensor]:
    """d (T, B, ...) at the steps whose previous state is in `states`, and those states: views.

    Padded steps need no care: d is 0 there, and so are the states a row's first step
    would meet (a reversed row starts at its last valid step, where states[t + 1] is padding).
    """
    return (d[:-1], states[1:]) if reverse else (d[1:], states[:-1])


def _first_steps(d: Tensor, reverse: bool, lengths: Tensor) -> Tensor:
    """d (T, B, ...) at each row's first step (B, ...): t = 0, or reversed its last valid t."""
    if not reverse:
        return d[0]
    if not lengths.numel():
        return d[-1]
    return d[lengths - 1, torch.arange(d.shape[1])]


def sum_with_previous(d: Tensor, states: Tensor, initial: Tensor, reverse: bool, lengths: Tensor,
                      bf16: bool) -> Tensor:
    """sum over t of d_t^T s_{t-1}, with s_{t-1} = `initial` at each row's first step: (N, W).

    d: (T, B, N); states: (T, B, W) (0 at padded steps); initial: (B, W).
    """
    later, before = _shifted(d, states, reverse)
    first = _first_steps(d, reverse, lengths)  # (B, N)
    return _weight_gradient(later, before, first=(first, initial), bf16=bf16)


def weighted_previous(d: Tensor, states: Tensor, initial: Tensor, reverse: bool, lengths: Tensor) -> Tensor:
    """sum over t and b of d_t * s_{t-1} (elementwise), s_{t-1} as in `sum_with_previous`: (W,)."""
    later, before = _shifted(d, states, reverse)
    return (later * before).sum((0, 1)) + (_first_steps(d, reverse, lengths) * initial).sum(0)
