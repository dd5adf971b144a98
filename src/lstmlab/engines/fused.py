"""The fused CPU engine: each layer-direction's time loop in C++ (csrc/fused_lstm.cpp;
the packed-weight loops and their thread team in csrc/fused_recurrent.h,
fused_recurrent_ln.h, fused_packed.h and fused_team.h; row kernels in fused_kernels.h
and fused_layer_norm.h; the streaming step in csrc/fused_step.h).

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

Runs every cell of `lstmlab.LSTM`: plain, peephole, coupled, layer norm and zoneout (in
any combination), projection, bidirectional, multi-layer, packed (valid lengths), weight
drop and dropout between layers. Zoneout's keep weights are drawn in Python exactly as
the reference draws them, so with the same seed both engines give the same numbers.

The extension is compiled at first use with torch.utils.cpp_extension (g++ and ninja)
for the CPU's vector unit (AVX-512, AVX2 or generic, read from torch at run time) and
cached under ``$LSTMLAB_CACHE`` (default ``~/.cache/lstmlab``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import warnings
import weakref
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.weak import WeakIdKeyDictionary

from ..cell import CellSpec, LayerWeights, input_gates, recurrent_weight, zoneout_keep
from ..inputs import valid_mask
from ..parameters import layer_weights
from .base import EngineResult, SequenceBatch
from .reference import forward_layers
from .native import previous_states

SOURCE = Path(__file__).with_name("csrc") / "fused_lstm.cpp"
ARCH_FLAGS = {
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx2", "-mfma"],
    "AVX2": ["-mavx2", "-mfma"],
}
# -ffast-math at compile time only (vectorised exp/tanh); never at link time, where gcc
# would add crtfastmath and switch the whole process to flush-to-zero.
COMPILE_FLAGS = ["-O3", "-ffast-math", "-fopenmp-simd"]
# The loops' thread team is at::parallel_for, which is inline OpenMP code in torch's
# headers: without _OPENMP it runs serially. So with torch's OpenMP backend, -fopenmp at
# compile time only: the GOMP symbols then bind to the libgomp torch has loaded (one
# thread pool), and no second OpenMP runtime is linked in.
if "ATen parallel backend: OpenMP" in torch.__config__.parallel_info():
    COMPILE_FLAGS.append("-fopenmp")

# The packed loops compute the input share x W_ih^T per step inside the tile (no (T, B, 4H)
# buffer) when W_ih is at most this large (it is re-read every step; ~half of a core's L2
# here) and the batch has at least FUSED_INPUT_MIN_BATCH rows; otherwise one GEMM before
# the loop. With fewer rows each W_ih load serves too few of them: two full row blocks
# (one per thread) are needed to beat the GEMM. Inference with the trace, 2 threads,
# (T, B, I, H), in-tile against GEMM-first (x nn.LSTM, interleaved medians):
# (200, 1, 64, 64) 0.69 vs 0.52; (50, 8, 128, 256) 1.02 vs 0.96; (500, 16, 32, 64) 0.67 vs
# 0.70; (100, 32, 64, 128) 0.89 vs 0.94.
FUSED_INPUT_MAX_BYTES = 1 << 20
FUSED_INPUT_MIN_BATCH = 12

_extension = None
_build_error: str | None = None


def build_error() -> str | None:
    """Why the extension cannot be used (None when it loads). Builds it on first call."""
    load_extension()
    return _build_error


def capability() -> str:
    """The vector unit the extension is compiled for: "AVX512", "AVX2" or "DEFAULT"."""
    return torch.backends.cpu.get_cpu_capability()


def load_extension():
    """The compiled extension, or None (the reason in `build_error`, warned once)."""
    global _extension, _build_error
    if _extension is not None or _build_error is not None:
        return _extension
    pool_limit = buffer_pool_limit()  # a bad LSTMLAB_BUFFER_POOL_MB is an error of its own, not a build failure
    capability = globals()["capability"]()
    sources = sorted(SOURCE.parent.glob("*.[ch]*"))  # the .cpp and the headers it includes
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources) + repr(COMPILE_FLAGS).encode()).hexdigest()[:10]
    name = f"lstmlab_fused_{capability.lower()}_{digest}"
    build_dir = Path(os.environ.get("LSTMLAB_CACHE", Path.home() / ".cache" / "lstmlab")) / "extensions" / name
    try:
        from torch.utils.cpp_extension import load

        build_dir.mkdir(parents=True, exist_ok=True)
        if not any(build_dir.glob("*.so")):
            print(f"lstmlab: building the fused CPU engine for {capability} (once per machine, ~1 min)...",
                  file=sys.stderr, flush=True)
        _extension = load(name=name, sources=[str(SOURCE)], build_directory=str(build_dir),
                          extra_cflags=COMPILE_FLAGS + ARCH_FLAGS.get(capability, []), verbose=False)
        _extension.set_buffer_pool_limit(pool_limit)
    except Exception as error:  # compiler missing, ninja missing, build failure: say so once
        _build_error = (f"the fused CPU engine could not be built ({type(error).__name__}: "
                        f"{str(error).strip().splitlines()[-1][:300] if str(error).strip() else ''}); "
                        "lstmlab runs the other engines instead. Fix: install g++ and ninja "
                        "(`pip install ninja`), then restart Python")
        warnings.warn(_build_error, RuntimeWarning, stacklevel=3)
    return _extension


def buffer_pool_limit() -> int:
    """Bytes the buffer pool may hold: ``$LSTMLAB_BUFFER_POOL_MB`` MiB (default 1024; 0 turns it off)."""
    value = os.environ.get("LSTMLAB_BUFFER_POOL_MB", "1024")
    try:
        megabytes = float(value)
    except ValueError:
        megabytes = -1.0
    if megabytes < 0:
        raise ValueError(f"LSTMLAB_BUFFER_POOL_MB: expected a number of MiB >= 0, got {value!r}")
    return int(megabytes * 2 ** 20)


def release_buffers() -> int:
    """Frees the memory the fused engine keeps for reuse (csrc/fused_buffers.h); returns the bytes freed.

    The engine's big buffers (gates, cells, gradients: (T, B, 4H) and alike) go back to a
    pool when the last tensor using them dies, so that the next call of the same shape
    does not fault their pages in again (~10 ms per 50 MB here). The pool holds at most
    ``$LSTMLAB_BUFFER_POOL_MB`` MiB (default 1024) and never memory still in use. The packed
    copies of weights kept for calls without autograd (`packed_forward_weight`) go too.
    """
    _packed_forward_weights.clear()  # their memory goes back to the pool, freed just below
    extension = load_extension()
    return 0 if extension is None else extension.release_buffers()


def buffer_pool_bytes() -> int:
    """Bytes the fused engine's buffer pool holds now (freed buffers kept for reuse)."""
    extension = load_extension()
    return 0 if extension is None else extension.buffer_pool_bytes()


SUPPORTED_DTYPES = (torch.float32, torch.float64)


def unsupported_reason(spec: CellSpec, need_trace: bool, like: Tensor | None = None) -> str | None:
    """Why this engine cannot run the request (None when it can). like: a tensor of the call
    (its device and dtype matter: the loop is CPU code for float32 and float64)."""
    del need_trace, spec  # every cell; the trace is what the loop keeps anyway
    if like is not None and like.device.type != "cpu":
        return f"the fused engine runs on CPU tensors, these are on {like.device.type}"
    if like is not None and like.dtype not in SUPPORTED_DTYPES:
        return f"the fused engine computes in float32 or float64, not {like.dtype}"
    return build_error()


def _or_empty(tensor: Tensor | None, empty: Tensor) -> Tensor:
    """tensor, contiguous, or `empty` (a 0-element tensor of the call's dtype) for None."""
    return empty if tensor is None else tensor.contiguous()


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
    to write into (see `run_direction`), each empty where a new buffer should be made.
    """

    @staticmethod
    def forward(ctx, x_gates, h0, c0, w_hh, w_hr, peephole, ln_hh, ln_c_weight, ln_c_bias, keep_c, keep_h, lengths,
                reverse, coupled, keep_trace, x, w_ih, bias, ln_ih, out):
        ctx.set_materialize_grads(False)  # outputs without a gradient arrive as None
        empty = w_hh.new_empty(0)  # stands in for every absent tensor
        w_hh = w_hh.contiguous()
        optional = [_or_empty(t, empty) for t in (w_hr, peephole, ln_hh, ln_c_weight, ln_c_bias, keep_c, keep_h)]
        ctx.input_here = x_gates is None  # x, W_ih given: their gradients are this function's
        norm_input = ln_ih is not None  # layer norm: u_hat = LN(x W_ih^T) made here, g_ih and bias added in the loop
        u_hat = rstd_u = None
        input_gemm = (norm_input or x.shape[1] < FUSED_INPUT_MIN_BATCH
                      or w_ih.numel() * w_ih.element_size() > FUSED_INPUT_MAX_BYTES) if ctx.input_here else False
        if input_gemm:
            # (T, B, 4H); without layer norm the loop writes the gates over it (see fused_forward)
            u = load_extension().pooled_empty([*x.shape[:2], w_ih.shape[0]], x)
            torch.mm(x.flatten(0, 1), w_ih.T, out=u.view(-1, w_ih.shape[0]))
            x_gates = u
            if norm_input:  # u becomes u_hat in place (kept for the backward)
                rstd_u = load_extension().input_layer_norm(u.view(-1, u.shape[-1]), coupled)
                u_hat = u
        in_loop = ctx.input_here and x_gates is None
        input_share = [_or_empty(t, empty) for t in (x_gates, x if in_loop else None, w_ih if in_loop else None, bias)]
        packed_loops = w_hr is None and keep_c is None and keep_h is None  # see fused_lstm.cpp
        # Without autograd the weights rarely change between calls: their packed copies are
        # cached (packed_forward_weight); with autograd each call packs its own.
        packed = ([packed_forward_weight(w_hh), packed_forward_weight(w_ih) if in_loop else empty]
                  if packed_loops and isinstance(ctx, _NoGradContext) else [])
        (gates, cells, hidden_pre, hiddens, h_n, c_n, r_hat, rstd_r, c_hat, rstd_c, cells_fresh) = \
            load_extension().forward(input_share[0], h0.contiguous(), c0.contiguous(), w_hh, *optional, lengths,
                                     reverse, coupled, keep_trace, *input_share[1:], _or_empty(ln_ih, empty), out,
                                     packed)
        ctx.save_for_backward(gates, cells, hidden_pre, hiddens, h0, c0, w_hh, *optional, r_hat, rstd_r, c_hat,
                              rstd_c, cells_fresh, lengths,
                              *(_or_empty(t, empty) for t in (x, w_ih, u_hat, rstd_u, ln_ih)))
        ctx.reverse, ctx.coupled = reverse, coupled
        ctx.has = [t is not None for t in (w_hr, peephole, ln_hh, keep_c)]
        ctx.packed_loops = packed_loops  # the C++ side ran them (no projection, no zoneout)
        return (*gates.chunk(4, dim=-1), cells, hiddens, h_n, c_n)

    @staticmethod
    def backward(ctx, d_i, d_f, d_g, d_o, d_cells, d_hiddens, dh_n, dc_n):
        (gates, cells, hidden_pre, hiddens, h0, c0, w_hh, w_hr, peephole, ln_hh, ln_c_weight, ln_c_bias,
         keep_c, keep_h, r_hat, rstd_r, c_hat, rstd_c, cells_fresh, lengths, x, w_ih, u_hat, rstd_u,
         ln_ih) = ctx.saved_tensors
        has_projection, has_peephole, has_layer_norm, has_cell_zoneout = ctx.has
        empty = w_hh.new_empty(0)
        # Absent trace gradients go to C++ as empty tensors (zeros there); the packed loops
        # find c_{t-1} in cells and c0, the per-step loops get it materialised.
        d_gates_in = [empty if g is None else _dense(g, g) for g in (d_i, d_f, d_g, d_o)]
        d_cells_in = empty if d_cells is None else _dense(d_cells, d_cells)
        packed_loops = ctx.packed_loops
        if packed_loops:
            c_prev = None
        else:
            valid = valid_mask(lengths, gates.shape[0]).unsqueeze(-1) if lengths.numel() else None
            c_prev = previous_states(cells, c0, ctx.reverse, valid).contiguous()  # (T, B, H)
            h_prev = previous_states(hiddens, h0, ctx.reverse, valid)  # (T, B, P)
        saved_ln = [t if has_layer_norm else empty for t in (r_hat, rstd_r, c_hat, rstd_c)]
        dz, dh0, dc0, dh_total, d_rec, d_cell_ln = load_extension().backward(
            _dense(d_hiddens, hiddens), d_gates_in, d_cells_in, _dense(dh_n, h0), _dense(dc_n, c0), gates,
            cells, empty if c_prev is None else c_prev, c0, w_hh, w_hr, peephole, ln_hh, ln_c_weight, ln_c_bias,
            *saved_ln, keep_c, keep_h, cells_fresh if has_cell_zoneout else empty, lengths, ctx.reverse, ctx.coupled)
        d_recurrent = d_rec if has_layer_norm else dz  # gradient of W_hh h_{t-1}
        if packed_loops:  # sum_t d_t^T h_{t-1} without a shifted copy of the hidden states
            d_w_hh = sum_with_previous(d_recurrent, hiddens, h0, ctx.reverse, lengths)  # (4H, P)
        else:
            d_w_hh = _weight_gradient(d_recurrent, h_prev)  # (4H, P)
        d_w_hr = _weight_gradient(dh_total, hidden_pre) if has_projection else None  # (P, H)
        d_peephole = None
        if has_peephole:
            dz_i, dz_f, _, dz_o = dz.chunk(4, dim=-1)
            seen_by_o = cells_fresh if has_cell_zoneout else cells  # o's peephole sees c before zoneout
            if packed_loops:
                d_i, d_f = (weighted_previous(d, cells, c0, ctx.reverse, lengths) for d in (dz_i, dz_f))
            else:
                d_i, d_f = (dz_i * c_prev).sum((0, 1)), (dz_f * c_prev).sum((0, 1))
            d_peephole = torch.cat((d_i, d_f, (dz_o * seen_by_o).sum((0, 1))))
        d_ln, d_ln_ih = (None, None, None), None
        needs_x, needs_w_ih, needs_bias = ctx.needs_input_grad[-5:-2]  # then ln_ih, out
        flat = dz.flatten(0, 1)  # (T*B, 4H): the gradient of the input share's GEMM x W_ih^T
        if has_layer_norm:  # one pass: dL/du, and the gains' and biases' sums over rows
            du, d_ln_ih, d_bias, *d_ln = load_extension().layer_norm_gradients(
                dz, u_hat, rstd_u, ln_ih, r_hat, d_cell_ln, c_hat, ctx.coupled)
            flat = du
        else:
            d_bias = flat.sum(0) if needs_bias else None
        # What autograd would do for the input share's GEMM (x, W_ih).
        d_x = d_w_ih = None
        if ctx.input_here and needs_x:
            d_x = load_extension().pooled_empty(list(x.shape), x)
            torch.mm(flat, w_ih, out=d_x.view(-1, x.shape[-1]))
        if ctx.input_here and needs_w_ih:
            d_w_ih = _weight_gradient(flat, x)
        return (None if ctx.input_here else dz, dh0, dc0, d_w_hh, d_w_hr, d_peephole, *d_ln,
                None, None, None, None, None, None, d_x, d_w_ih, d_bias, d_ln_ih, None)


# Packed copies of weights for the forward loops' tiles, per weight tensor (see
# packed_forward_weight); dropped with the weight, or by release_buffers().
_packed_forward_weights = WeakIdKeyDictionary()


def packed_forward_weight(w: Tensor) -> Tensor:
    """W (4H, K) packed for the forward loops' tiles (csrc/fused_packed.h's pack_forward),
    cached per weight tensor and packed again when w changed: in place (its version
    counter moved: optimiser steps, load_state_dict, in-place ops under no_grad) or given
    other memory. Packing is a pass over W per call: at (1, 8, 128, 256), T = 1, more of the
    C++ call's time than the loop (perf: 11% of samples against 8%). The cache holds a
    packed copy (W's size) per weight for as long as the weight lives.
    """
    stamp = (w._version, w.data_ptr(), w.dtype, tuple(w.shape))
    cached = _packed_forward_weights.get(w)
    if cached is None or cached[0] != stamp:
        cached = (stamp, load_extension().pack_forward_weight(w, w.shape[0] // 4))
        _packed_forward_weights[w] = cached
    return cached[1]


class _NoGradContext:
    """Stands in for autograd's ctx when nothing needs a gradient: `run_direction` then
    calls FusedDirection.forward directly, saving autograd.Function.apply's own cost
    (~10-15 us per call, a tenth of a batch-1 call's Python time)."""

    def set_materialize_grads(self, value: bool) -> None:
        pass

    def save_for_backward(self, *tensors: Tensor) -> None:
        pass


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


def _weight_gradient(d: Tensor, inputs: Tensor, first: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """sum over rows of d^T inputs, plus a^T b for first = (a, b): (N, W) from d (..., N),
    inputs (..., W) and a (M, N), b (M, W).

    Small ones as (inputs^T d)^T, a transposed view: MKL runs that orientation up to 30%
    faster here (0.75 against 1.06 ms for (3200, 512)^T (3200, 64)), and making the
    parameter's .grad contiguous costs little. For large ones that costs more than it
    saves (adding a transposed (2600, 650) into .grad: 0.95 against 0.26 ms).
    The result lies in a pooled buffer (csrc/fused_buffers.h): a new (4H, H) tensor per
    call faulted its pages in every time (~180 page faults per (50, 8, 128, 256) training
    call), and `first` is added in place, with no tensor of its own.
    """
    d, inputs = d.flatten(0, -2), inputs.flatten(0, -2)
    pooled = load_extension().pooled_empty
    if d.shape[1] * inputs.shape[1] <= TRANSPOSED_GRADIENT_MAX_NUMEL:
        out = torch.mm(inputs.T, d, out=pooled([inputs.shape[1], d.shape[1]], d))
        if first is not None:
            out.addmm_(first[1].T, first[0])
        return out.T
    out = torch.mm(d.T, inputs, out=pooled([d.shape[1], inputs.shape[1]], d))
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


def sum_with_previous(d: Tensor, states: Tensor, initial: Tensor, reverse: bool, lengths: Tensor) -> Tensor:
    """sum over t of d_t^T s_{t-1}, with s_{t-1} = `initial` at each row's first step: (N, W).

    d: (T, B, N); states: (T, B, W) (0 at padded steps); initial: (B, W).
    """
    later, before = _shifted(d, states, reverse)
    first = _first_steps(d, reverse, lengths)  # (B, N)
    return _weight_gradient(later, before, first=(first, initial))


def weighted_previous(d: Tensor, states: Tensor, initial: Tensor, reverse: bool, lengths: Tensor) -> Tensor:
    """sum over t and b of d_t * s_{t-1} (elementwise), s_{t-1} as in `sum_with_previous`: (W,)."""
    later, before = _shifted(d, states, reverse)
    return (later * before).sum((0, 1)) + (_first_steps(d, reverse, lengths) * initial).sum(0)


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
    # with one GEMM first (see FUSED_INPUT_MIN_BATCH). Layer norm: FusedDirection makes the
    # input share itself (one GEMM, then LN row by row in C++). The other cells get
    # input_gates, bias included.
    if packed_without_layer_norm(spec, weights) or spec.layer_norm:
        bias = w_hh.new_zeros(w_hh.shape[0]) if weights.b_ih is None else weights.b_ih + weights.b_hh  # (4H,)
        x_gates, input_share = None, (x, weights.w_ih, bias, weights.ln_ih if spec.layer_norm else None)
    else:
        x_gates, input_share = input_gates(x, weights, spec), (None, None, None, None)  # (T, B, 4H)
    inputs = (x_gates, h0, c0, w_hh, weights.w_hr, weights.peephole, weights.ln_hh, weights.ln_c_weight,
              weights.ln_c_bias)
    differentiable = _needs_grad(inputs + input_share)
    out_list = [] if out is None else [out.get(n, x.new_empty(0)) for n in ("gates", "c", "h")]
    arguments = (*inputs, keep_c, keep_h, lengths, reverse, spec.coupled, need_trace or differentiable,
                 *input_share, out_list)
    if differentiable:
        i, f, g, o, cells, hiddens, h_n, c_n = FusedDirection.apply(*arguments)
    else:  # the same computation without autograd.Function's per-call cost
        i, f, g, o, cells, hiddens, h_n, c_n = FusedDirection.forward(_NoGradContext(), *arguments)
    fields = dict(i=i, f=f, g=g, o=o, c=cells, h=hiddens)
    if not differentiable and i._base is not None:  # the (T, B, 4H) buffer of i, f, g, o (see stack_trace)
        fields["gates"] = i._base
    return hiddens, h_n, c_n, fields


def stacked_outputs(batch: SequenceBatch, need_trace: bool, x: Tensor,
                    directions: list[LayerWeights]) -> dict[str, Tensor] | None:
    """Pooled (T, B, D, ·) buffers that a bidirectional layer's directions write into
    (`reference.forward_layers`): "h", and with the trace "gates" and "c". None where
    the directions make their own: one direction (nothing to stack), autograd (each
    direction's outputs are its own autograd outputs), or a cell outside the packed loops
    without layer norm (projection, zoneout, layer norm).

    At 2 layers x 2 directions, (100, 32, 64, 128) inference with the trace, the copies
    that stacked the directions took ~5 of ~22 ms.
    """
    weights = directions[0]
    if len(directions) == 1 or not packed_without_layer_norm(batch.spec, weights):
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


def step_supported(spec: CellSpec, training: bool, dropout: float, like: Tensor) -> bool:
    """Whether the C++ step computes what the module's step would: no randomness, no
    zoneout, and a call this engine can run (CPU, float32/float64; `like` is the input)."""
    random_in_training = training and (dropout > 0 or spec.weight_drop > 0)
    if spec.zoneout_c or spec.zoneout_h or random_in_training:
        return False
    return unsupported_reason(spec, False, like) is None


def step_weights(layers: list[LayerWeights], like: Tensor) -> list[Tensor]:
    """The C++ step's flat weight list: per layer w_ih, w_hh, b_ih + b_hh, w_hr, peephole,
    ln_ih, ln_hh, ln_c_weight, ln_c_bias (empty tensors where the cell has none)."""
    empty = like.new_empty(0)
    flat = []
    for weights in layers:
        bias = empty if weights.b_ih is None else weights.b_ih + weights.b_hh
        flat += [weights.w_ih.contiguous(), weights.w_hh.contiguous(), bias,
                 *(_or_empty(t, empty) for t in (weights.w_hr, weights.peephole, weights.ln_ih, weights.ln_hh,
                                                weights.ln_c_weight, weights.ln_c_bias))]
    return flat


def _module_step_weights(module_ref) -> list[Tensor]:
    """`step_weights` of the module behind a weak reference (what `StepWeights` re-packs from)."""
    module = module_ref()
    if module is None:
        raise RuntimeError("the LSTM of this step was garbage-collected")
    with torch.no_grad():
        layers = [layer_weights(module, suffix) for suffix in module._suffixes]
        return step_weights(layers, module.weight_ih_l0)


_packed_weights: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def packed_step_weights(module):
    """The C++ `StepWeights` of a unidirectional `lstmlab.LSTM`: its weights packed once for
    one-step products (csrc/fused_gemv.h), re-packed by the step itself when a parameter
    changed (replaced, changed in place or given other storage). One per module, shared
    by `LSTM.step` and every `lstmlab.Stream` of that module; it holds a packed copy of
    the weights (their size again) for as long as the module lives."""
    packed = _packed_weights.get(module)
    if packed is None:  # the pack callable holds the module weakly: the cache entry dies with it
        pack = functools.partial(_module_step_weights, weakref.ref(module))
        packed = load_extension().StepWeights(module._parameters, pack, module.spec.coupled)
        _packed_weights[module] = packed
    return packed


def stream_step(module, x: Tensor, h: Tensor, c: Tensor) -> Tensor:
    """One step of a unidirectional `lstmlab.LSTM` without autograd, in C++; updates h, c in place.

    x: (B, I); h: (L, B, P); c: (L, B, H), both contiguous and owned by the caller.
    Returns the top layer's new h (B, P), a new tensor.
    """
    return packed_step_weights(module).step(x.contiguous(), h, c)
