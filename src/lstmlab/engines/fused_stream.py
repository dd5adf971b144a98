"""The fused engine's streaming step: one step of a unidirectional `lstmlab.LSTM` without
autograd, all layers in one C++ call (csrc/fused_step.h), on weights packed once per
module for one-row products (csrc/fused_gemv.h). `LSTM.step` and `lstmlab.Stream` use it.
"""

from __future__ import annotations

import functools
import weakref

import torch
from torch import Tensor

from ..cell import CellSpec, LayerWeights
from ..parameters import layer_weights
from .fused_extension import load_extension, or_empty, unsupported_reason


def step_cell_reason(spec: CellSpec) -> str | None:
    """Why the C++ step cannot run this cell although the sequence loops can (None: it can)."""
    if spec.removed_parts:
        return (f"its C++ step has no cell without {'/'.join(spec.removed_parts)} (Greff et al.'s "
                "variants stream through lstm.step(x_t, state))")
    return None


def step_supported(spec: CellSpec, training: bool, dropout: float, like: Tensor) -> bool:
    """Whether the C++ step computes what the module's step would: no randomness, no
    zoneout, and a call this engine can run (CPU, float32/float64; `like` is the input)."""
    random_in_training = training and (dropout > 0 or spec.weight_drop > 0)
    if spec.zoneout_c or spec.zoneout_h or random_in_training or step_cell_reason(spec):
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
                 *(or_empty(t, empty) for t in (weights.w_hr, weights.peephole, weights.ln_ih, weights.ln_hh,
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
