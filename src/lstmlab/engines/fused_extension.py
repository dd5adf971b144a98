"""The fused engine's C++ extension: its build and loading, what it can run, the structures
its calls take and return, and the memory it keeps (buffer pool, packed weights).

The extension is compiled at first use with torch.utils.cpp_extension (g++ and ninja)
for the CPU's vector unit (AVX-512, AVX2 or generic, read from torch at run time) and
cached under ``$LSTMLAB_CACHE`` (default ``~/.cache/lstmlab``), in a folder named after a
hash of every source and header in csrc/ and of the compiler flags: an edited header
builds anew.
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor
from torch.utils.weak import WeakIdKeyDictionary

from ..cell import CellSpec

SOURCE = Path(__file__).with_name("csrc") / "fused_lstm.cpp"  # includes the other csrc/ files
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

SUPPORTED_DTYPES = (torch.float32, torch.float64)


class ForwardInputs(NamedTuple):
    """The C++ forward's arguments (csrc/fused_arguments.h, same fields in the same order;
    csrc/fused_lstm.cpp's fused_forward says what each does). T steps, B rows, I inputs,
    H units, P = proj or H; absent tensors are empty ones."""

    input_gates: Tensor  # (T, B, 4H), or empty: the loop computes x W_ih^T itself
    x: Tensor  # (T, B, I) when the loop computes the input share, else empty
    w_ih: Tensor  # (4H, I) likewise
    bias: Tensor  # (4H,) b_ih + b_hh where the loop adds it, else empty
    ln_g_ih: Tensor  # (4H,) layer norm's input gain (input_gates then holds u_hat)
    h0: Tensor  # (B, P)
    c0: Tensor  # (B, H)
    w_hh: Tensor  # (4H, P)
    w_hr: Tensor  # (P, H) projection
    peephole: Tensor  # (3H,)
    ln_g_hh: Tensor  # (4H,)
    ln_g_c: Tensor  # (H,)
    ln_b_c: Tensor  # (H,)
    keep_c: Tensor  # (T, B, H) zoneout's keep weights
    keep_h: Tensor  # (T, B, P)
    lengths: Tensor  # (B,) int64
    reverse: bool
    cell: int  # the cell's variant bits (`cell_bits`)
    keep_trace: bool  # False: no trace, no backward (gates and cells may hold one step)
    out: list[Tensor]  # [] or [gates, cells, hiddens] to write into
    packed_weights: list[Tensor]  # [] or [W_hh, W_ih] as `packed_forward_weight` packed them


class ForwardOutputs(NamedTuple):
    """The C++ forward's results; None where the call makes none (layer norm's for the
    other cells, cells_fresh without zoneout on c)."""

    gates: Tensor  # (T, B, 4H) i | f | g | o
    cells: Tensor  # (T, B, H)
    hidden_pre: Tensor  # (T, B, H) m = o * tanh(c), before projection and zoneout
    hiddens: Tensor  # (T, B, P)
    h_n: Tensor  # (B, P)
    c_n: Tensor  # (B, H)
    r_hat: Tensor | None  # (T, B, 4H) LN(W_hh h_{t-1}) before its gain
    rstd_r: Tensor | None  # (T, B)
    c_hat: Tensor | None  # (T, B, H) LN(c) before its gain
    rstd_c: Tensor | None  # (T, B)
    cells_fresh: Tensor | None  # (T, B, H) the cells before zoneout


class BackwardInputs(NamedTuple):
    """The C++ backward's arguments (csrc/fused_arguments.h); absent tensors are empty."""

    d_hiddens: Tensor  # (T, B, P)
    d_gates_trace: list[Tensor]  # i, f, g, o: each (T, B, H) or empty
    d_cells_trace: Tensor  # (T, B, H) or empty
    dh_n: Tensor  # (B, P)
    dc_n: Tensor  # (B, H)
    gates: Tensor  # the forward's
    cells: Tensor
    c_prev: Tensor  # (T, B, H) c_{t-1} per step, for the per-step loops only
    c0: Tensor
    w_hh: Tensor
    w_hr: Tensor
    peephole: Tensor
    ln_g_hh: Tensor
    ln_g_c: Tensor
    ln_b_c: Tensor
    r_hat: Tensor
    rstd_r: Tensor
    c_hat: Tensor
    rstd_c: Tensor
    keep_c: Tensor
    keep_h: Tensor
    cells_fresh: Tensor
    lengths: Tensor
    reverse: bool
    cell: int


class BackwardOutputs(NamedTuple):
    """The C++ backward's results (d_rec and d_cell_ln None without layer norm)."""

    dz: Tensor  # (T, B, 4H) dL/dz, the gradient of the input share
    dh0: Tensor  # (B, P)
    dc0: Tensor  # (B, H)
    dh_total: Tensor  # (T, B, P) dL/dh_t with the recurrent part (for dW_hr)
    d_rec: Tensor | None  # (T, B, 4H) dL/d(W_hh h_{t-1})
    d_cell_ln: Tensor | None  # (T, B, H) dL/d(LN(c) g_c + b_c)


STRUCTS = (ForwardInputs, ForwardOutputs, BackwardInputs, BackwardOutputs)

_extension = None
_build_error: str | None = None


@torch.compiler.assume_constant_result  # torch.compile runs it (and a first build) as plain Python
def build_error() -> str | None:
    """Why the extension cannot be used (None when it loads). Builds it on first call."""
    load_extension()
    return _build_error


def capability() -> str:
    """The vector unit the extension is compiled for: "AVX512", "AVX2" or "DEFAULT"."""
    return torch.backends.cpu.get_cpu_capability()


def _build_name(capability_name: str) -> str:
    """lstmlab_fused_<unit>_<hash of csrc/'s files and the flags>: edited sources build anew."""
    sources = sorted(SOURCE.parent.glob("*.[ch]*"))  # the .cpp and every header it includes
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources) + repr(COMPILE_FLAGS).encode()).hexdigest()
    return f"lstmlab_fused_{capability_name.lower()}_{digest[:10]}"


def _check_structs(extension) -> None:
    """The NamedTuples above must list the C++ structs' fields in their order."""
    for struct in STRUCTS:
        expected = tuple(extension.field_names(struct.__name__))
        if struct._fields != expected:
            raise RuntimeError(f"{struct.__name__}: Python fields {struct._fields} differ from C++ {expected}")


def load_extension():
    """The compiled extension, or None (the reason in `build_error`, warned once)."""
    global _extension, _build_error
    if _extension is not None or _build_error is not None:
        return _extension
    pool_limit = buffer_pool_limit()  # a bad LSTMLAB_BUFFER_POOL_MB is an error of its own, not a build failure
    unit = capability()
    name = _build_name(unit)
    build_dir = Path(os.environ.get("LSTMLAB_CACHE", Path.home() / ".cache" / "lstmlab")) / "extensions" / name
    try:
        from torch.utils.cpp_extension import load

        build_dir.mkdir(parents=True, exist_ok=True)
        if not any(build_dir.glob("*.so")):
            print(f"lstmlab: building the fused CPU engine for {unit} (once per machine, ~1 min)...",
                  file=sys.stderr, flush=True)
        extension = load(name=name, sources=[str(SOURCE)], build_directory=str(build_dir),
                         extra_cflags=COMPILE_FLAGS + ARCH_FLAGS.get(unit, []), verbose=False)
        _check_structs(extension)
        extension.set_buffer_pool_limit(pool_limit)
        _extension = extension
    except Exception as error:  # compiler missing, ninja missing, build failure: say so once
        _build_error = (f"the fused CPU engine could not be built ({type(error).__name__}: "
                        f"{str(error).strip().splitlines()[-1][:300] if str(error).strip() else ''}); "
                        "lstmlab runs the other engines instead. Fix: install g++ and ninja "
                        "(`pip install ninja`), then restart Python")
        warnings.warn(_build_error, RuntimeWarning, stacklevel=3)
    return _extension


# The cell's variant bits, as csrc/fused_math.h reads them (kCoupled, kNoInputGate, ...).
COUPLED = 1
REMOVED_PART_BITS = {"input_gate": 2, "forget_gate": 4, "output_gate": 8, "input_activation": 16,
                     "output_activation": 32}


def cell_bits(spec: CellSpec) -> int:
    """The C++ loops' cell flags: coupled, and Greff's removed parts (one change at a time)."""
    return (COUPLED if spec.coupled else 0) | sum(REMOVED_PART_BITS[part] for part in spec.removed_parts)


def unsupported_reason(spec: CellSpec, need_trace: bool, like: Tensor | None = None) -> str | None:
    """Why the fused engine cannot run the request (None when it can). like: a tensor of the
    call (its device and dtype matter: the loop is CPU code for float32 and float64)."""
    del need_trace  # every cell of the trace is what the loop keeps anyway
    if spec.full_gate_recurrence:
        return ("the fused engine has no full gate recurrence (FGR: nine extra H x H matrices per step, "
                "on the reference engine)")
    removed = spec.removed_parts
    if removed and spec.layer_norm:
        return (f"the fused engine has no layer-norm cell without {'/'.join(removed)} (its layer-norm loops know "
                "the plain and coupled cells only)")
    if len(removed) + spec.coupled > 1:
        changes = [*(["coupled"] if spec.coupled else []), *(f"no_{part}" for part in removed)]
        return (f"the fused engine runs one change to the cell at a time (Greff et al.'s variants), "
                f"not {'+'.join(changes)}")
    if like is not None and like.device.type != "cpu":
        return f"the fused engine runs on CPU tensors, these are on {like.device.type}"
    if like is not None and like.dtype not in SUPPORTED_DTYPES:
        return f"the fused engine computes in float32 or float64, not {like.dtype}"
    return build_error()


def or_empty(tensor: Tensor | None, empty: Tensor) -> Tensor:
    """tensor, contiguous, or `empty` (a 0-element tensor of the call's dtype) for None."""
    return empty if tensor is None else tensor.contiguous()


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
    does not fault their pages in again (which costs as much as a call's arithmetic at
    some shapes). The pool holds at most ``$LSTMLAB_BUFFER_POOL_MB`` MiB (default 1024)
    and never memory still in use. The packed copies of weights kept for calls without
    autograd (`packed_forward_weight`) go too.
    """
    _packed_forward_weights.clear()  # their memory goes back to the pool, freed just below
    extension = load_extension()
    return 0 if extension is None else extension.release_buffers()


def buffer_pool_bytes() -> int:
    """Bytes the fused engine's buffer pool holds now (freed buffers kept for reuse)."""
    extension = load_extension()
    return 0 if extension is None else extension.buffer_pool_bytes()


# Packed copies of weights for the forward loops' tiles, per weight tensor (see
# packed_forward_weight); dropped with the weight, or by release_buffers().
_packed_forward_weights = WeakIdKeyDictionary()


def packed_forward_weight(w: Tensor) -> Tensor:
    """W (4H, K) packed for the forward loops' tiles (csrc/fused_packed.h's pack_forward),
    cached per weight tensor and packed again when w changed: in place (its version
    counter moved: optimiser steps, load_state_dict, in-place ops under no_grad) or given
    other memory. Packing is a pass over W per call, which at T = 1 costs more than the
    loop itself. The cache holds a packed copy (W's size) per weight for as long as the
    weight lives.
    """
    stamp = (w._version, w.data_ptr(), w.dtype, tuple(w.shape))
    cached = _packed_forward_weights.get(w)
    if cached is None or cached[0] != stamp:
        cached = (stamp, load_extension().pack_forward_weight(w, w.shape[0] // 4))
        _packed_forward_weights[w] = cached
    return cached[1]
