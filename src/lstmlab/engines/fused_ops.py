"""The fused engine's layer-direction as torch.library custom ops, for torch.compile and torch.export.

Dynamo cannot trace into a C++ extension call, and an autograd.Function around one
breaks the graph. Registered as custom ops (`lstmlab::fused_direction` and its backward,
`lstmlab::fused_direction_backward`), with fake implementations that give the outputs'
shapes, the fused loop becomes one node of the captured graph: `torch.compile(lstm,
fullgraph=True)` and `torch.export.export(lstm, ...)` call the same C++ forward and
backward as eager mode, and give its numbers.

`fused.run_direction` takes this path only while torch compiles or exports (see
`tracing`); eager calls keep FusedDirection, which skips the dispatcher and hands the
backward each gate's gradient apart.

The forward op returns the gates (T, B, 4H) as one tensor, the cells, hiddens, h_n, c_n
and then what the backward needs (`SAVED_OUTPUTS`; empty tensors where the cell has
none). Custom ops may not return views of their inputs or of each other, and their
outputs must have the strides their fake implementations promise: the real
implementations return contiguous tensors with storage of their own.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .fused_direction import DirectionFlags, _Saved, bf16_autocast, direction_backward, direction_forward

# The forward op's outputs after gates, cells, hiddens, h_n, c_n: _Saved's fields that
# are not already among those or the op's inputs.
SAVED_OUTPUTS = ("hidden_pre", "r_hat", "rstd_r", "c_hat", "rstd_c", "cells_fresh", "u_hat", "rstd_u")


def tracing(x: Tensor) -> bool:
    """Whether this call is being captured: torch.compile, torch.export (fake tensors), torch.jit.trace."""
    return (torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing()
            or isinstance(x, torch._subclasses.fake_tensor.FakeTensor))


def _own_contiguous(tensors: list[Tensor], inputs: list[Tensor | None]) -> list[Tensor]:
    """Each tensor contiguous, copied where it shares storage with an input or an earlier
    output; empty ones made anew (one shared empty tensor would alias)."""
    seen = {t.untyped_storage().data_ptr() for t in inputs if t is not None and t.numel()}
    result = []
    for t in tensors:
        t = t.contiguous() if t.numel() else t.new_empty(0)
        if t.numel():
            pointer = t.untyped_storage().data_ptr()
            if pointer in seen:
                t = t.clone()
                pointer = t.untyped_storage().data_ptr()
            seen.add(pointer)
        result.append(t)
    return result


@torch.library.custom_op("lstmlab::fused_direction", mutates_args=())
def fused_direction(x_gates: Tensor | None, h0: Tensor, c0: Tensor, w_hh: Tensor, w_hr: Tensor | None,
                    peephole: Tensor | None, ln_hh: Tensor | None, ln_c_weight: Tensor | None,
                    ln_c_bias: Tensor | None, keep_c: Tensor | None, keep_h: Tensor | None, lengths: Tensor,
                    reverse: bool, cell: int, x: Tensor | None, w_ih: Tensor | None, bias: Tensor | None,
                    ln_ih: Tensor | None, cache_packed: bool, bf16: bool) -> list[Tensor]:
    """One layer-direction's forward (FusedDirection's arguments, without keep_trace and
    out): [gates (T, B, 4H), cells (T, B, H), hiddens (T, B, P), h_n (B, P), c_n (B, H),
    *SAVED_OUTPUTS]. cache_packed: nothing needs a gradient, so the packed copies of the
    weights may be kept between calls (see `packed_forward_weight`). bf16: the GEMMs over
    all steps take bfloat16 operands (decided where the op is called, `run`: a compiled
    graph runs its ops with autocast switched off, so the op cannot ask autocast itself)."""
    result, _, saved = direction_forward(x_gates, h0, c0, w_hh, w_hr, peephole, ln_hh, ln_c_weight, ln_c_bias,
                                         keep_c, keep_h, lengths, reverse, cell, True, x, w_ih, bias, ln_ih,
                                         [], cache_packed=cache_packed, bf16=bf16)
    if w_hr is None:  # m_t is only needed for dW_hr
        saved = saved._replace(hidden_pre=saved.hidden_pre.new_empty(0))
    outputs = [result.gates, result.cells, result.hiddens, result.h_n, result.c_n,
               *(getattr(saved, name) for name in SAVED_OUTPUTS)]
    inputs = [x_gates, h0, c0, w_hh, w_hr, peephole, ln_hh, ln_c_weight, ln_c_bias, keep_c, keep_h, lengths, x,
              w_ih, bias, ln_ih]
    return _own_contiguous(outputs, inputs)


@fused_direction.register_fake
def _(x_gates, h0, c0, w_hh, w_hr, peephole, ln_hh, ln_c_weight, ln_c_bias, keep_c, keep_h, lengths, reverse,
      cell, x, w_ih, bias, ln_ih, cache_packed, bf16):
    steps, rows = (x if x_gates is None else x_gates).shape[:2]
    hidden, out = c0.shape[-1], h0.shape[-1]
    layer_norm, input_here = ln_hh is not None, x_gates is None
    new = lambda *shape: h0.new_empty(shape)  # noqa: E731  (each empty one its own, like the real outputs)
    return [new(steps, rows, 4 * hidden), new(steps, rows, hidden), new(steps, rows, out), new(rows, out),
            new(rows, hidden), new(steps, rows, hidden) if w_hr is not None else new(0),
            *((new(steps, rows, 4 * hidden), new(steps, rows), new(steps, rows, hidden), new(steps, rows))
              if layer_norm else [new(0) for _ in range(4)]),
            new(steps, rows, hidden) if keep_c is not None else new(0),
            *((new(steps, rows, 4 * hidden), new(steps * rows)) if layer_norm and input_here else (new(0), new(0)))]


# The gradients the backward op returns, in the forward op's argument order (empty for none).
GRADIENTS = ("x_gates", "h0", "c0", "w_hh", "w_hr", "peephole", "ln_hh", "ln_c_weight", "ln_c_bias", "x", "w_ih",
             "bias", "ln_ih")


@torch.library.custom_op("lstmlab::fused_direction_backward", mutates_args=())
def fused_direction_backward(saved: list[Tensor], d_gates: Tensor | None, d_cells: Tensor | None,
                             d_hiddens: Tensor | None, dh_n: Tensor | None, dc_n: Tensor | None,
                             flags: list[int], has_bias: bool) -> list[Tensor]:
    """One layer-direction's backward: saved in _Saved's order, the outputs' gradients
    (None where there is none; d_gates (T, B, 4H)), DirectionFlags' fields as ints.
    Returns the gradients named in GRADIENTS, empty where there is none."""
    direction = flags_from_ints(flags)
    d_parts = (None,) * 4 if d_gates is None else tuple(d_gates.chunk(4, dim=-1))
    grads = direction_backward(direction, _Saved(*saved), d_parts, d_cells, d_hiddens, dh_n, dc_n)
    empty = saved[0].new_empty(0)
    if not (has_bias and direction.needs_bias):
        grads = (*grads[:11], None, grads[12])
    return _own_contiguous([empty if g is None else g for g in grads], [*saved, d_gates, d_cells, d_hiddens, dh_n,
                                                                         dc_n])


@fused_direction_backward.register_fake
def _(saved, d_gates, d_cells, d_hiddens, dh_n, dc_n, flags, has_bias):
    s, direction = _Saved(*saved), flags_from_ints(flags)
    like = lambda t: torch.empty_like(t, memory_format=torch.contiguous_format)  # noqa: E731
    empty = lambda: s.w_hh.new_empty(0)  # noqa: E731  (each its own)
    input_here = direction.input_here
    return [empty() if input_here else like(s.gates), like(s.h0), like(s.c0), like(s.w_hh), like(s.w_hr),
            like(s.peephole), like(s.ln_g_hh), like(s.ln_g_c), like(s.ln_b_c),
            like(s.x) if input_here and direction.needs_x else empty(),
            like(s.w_ih) if input_here and direction.needs_w_ih else empty(),
            s.w_hh.new_empty(s.gates.shape[-1]) if input_here and has_bias and direction.needs_bias else empty(),
            like(s.ln_g_ih) if input_here else empty()]


def flags_from_ints(values: list[int]) -> DirectionFlags:
    """DirectionFlags from the backward op's int list: `cell` stays an int, the rest are bools."""
    return DirectionFlags(*(value if name == "cell" else bool(value) for name, value in zip(DirectionFlags._fields, values)))


def _setup_context(ctx, inputs, output):
    (x_gates, h0, c0, w_hh, w_hr, peephole, ln_hh, ln_c_weight, ln_c_bias, keep_c, keep_h, lengths, reverse,
     cell, x, w_ih, bias, ln_ih, _, bf16) = inputs
    gates, cells, hiddens, h_n, c_n, *extra = output
    named = dict(zip(SAVED_OUTPUTS, extra))
    absent = w_hh.new_empty(0)
    present = lambda t: absent if t is None else t  # noqa: E731
    ctx.save_for_backward(
        gates, cells, named["hidden_pre"], hiddens, h0, c0, w_hh, present(w_hr), present(peephole), present(ln_hh),
        present(ln_c_weight), present(ln_c_bias), present(keep_c), present(keep_h), named["r_hat"],
        named["rstd_r"], named["c_hat"], named["rstd_c"], named["cells_fresh"], lengths, present(x), present(w_ih),
        named["u_hat"], named["rstd_u"], present(ln_ih))
    packed_loops = w_hr is None and keep_c is None and keep_h is None
    ctx.flags = DirectionFlags(reverse, cell, w_hr is not None, peephole is not None, ln_hh is not None,
                               keep_c is not None, packed_loops, x_gates is None, bf16_gemms=bf16)
    ctx.has_bias = bias is not None
    ctx.present = [t is not None for t in (x_gates, h0, c0, w_hh, w_hr, peephole, ln_hh, ln_c_weight, ln_c_bias)] + [
        t is not None for t in (x, w_ih, bias, ln_ih)]


def _backward(ctx, output_grads: list[Tensor | None]):
    d_gates, d_cells, d_hiddens, dh_n, dc_n = output_grads[:5]  # the rest have no gradient
    needs = ctx.needs_input_grad
    flags = ctx.flags._replace(needs_x=needs[14], needs_w_ih=needs[15], needs_bias=needs[16])
    grads = fused_direction_backward(list(ctx.saved_tensors), d_gates, d_cells, d_hiddens, dh_n, dc_n, [int(v) for v in flags], ctx.has_bias)
    grads = [g if present else None for g, present in zip(grads, ctx.present)]
    # Forward op arguments: the first nine, then keep_c, keep_h, lengths, reverse, cell,
    # then x, w_ih, bias, ln_ih, then cache_packed and bf16.
    return (*grads[:9], None, None, None, None, None, *grads[9:], None, None)


torch.library.register_autograd("lstmlab::fused_direction", _backward, setup_context=_setup_context)


def run(x_gates, h0, c0, w_hh, w_hr, peephole, ln_hh, ln_c_weight, ln_c_bias, keep_c, keep_h, lengths, reverse,
        cell, x, w_ih, bias, ln_ih, differentiable: bool):
    """FusedDirection.apply's results through the custom op: i, f, g, o, cells, hiddens, h_n, c_n."""
    gates, cells, hiddens, h_n, c_n, *_ = fused_direction(
        x_gates, h0, c0, w_hh, w_hr, peephole, ln_hh, ln_c_weight, ln_c_bias, keep_c, keep_h, lengths, reverse,
        cell, x, w_ih, bias, ln_ih, not differentiable and not torch.jit.is_tracing(),  # a traced graph serves both
        bf16_autocast(x if x_gates is None else x_gates))  # asked while the graph is captured, under its autocast
    return (*gates.chunk(4, dim=-1), cells, hiddens, h_n, c_n)
