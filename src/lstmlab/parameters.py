"""Parameters of one LSTM layer-direction: names, shapes, checks and initialisation.

Shared by `lstmlab.LSTM` (names suffixed ``_l{k}`` / ``_l{k}_reverse``, as in
torch.nn.LSTM) and `lstmlab.LSTMCell` (no suffix, as in torch.nn.LSTMCell).

Plain parameters keep torch's names and shapes; variants add their own keys:

    weight_peephole (3H,)    (p_i | p_f | p_o)              peephole=True
    ln_ih_weight    (4H,)    gain on LN(W_ih x)             layer_norm=True
    ln_hh_weight    (4H,)    gain on LN(W_hh h)
    ln_c_weight     (H,)     gain on LN(c)
    ln_c_bias       (H,)     bias on LN(c)
    weight_gg       (3H, 3H) gate-to-gate recurrence,        full_gate_recurrence=True
                             rows (i|f|o) receive, columns (i|f|o) send
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from .cell import GATES, PEEPHOLE_GATES, CellSpec, LayerWeights

VARIANT_SHAPES = {  # name -> (multiple of H, the spec flag that adds it)
    "weight_peephole": (3, "peephole"),
    "ln_ih_weight": (4, "layer_norm"),
    "ln_hh_weight": (4, "layer_norm"),
    "ln_c_weight": (1, "layer_norm"),
    "ln_c_bias": (1, "layer_norm"),
}


def check_probability(name: str, value, upper_inclusive: bool = False) -> float:
    ok = isinstance(value, numbers.Number) and not isinstance(value, bool)
    ok = ok and 0 <= value and (value <= 1 if upper_inclusive else value < 1)
    if not ok:
        bound = "[0, 1]" if upper_inclusive else "[0, 1)"
        raise ValueError(f"{name}: expected a probability in {bound}, got {value!r}")
    return float(value)


def check_positive_int(name: str, value, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return value


def make_spec(peephole, layer_norm, coupled, zoneout, weight_drop, full_gate_recurrence=False, **parts) -> CellSpec:
    """Check the variant options and return their spec. parts: the Greff flags
    (input_gate, forget_gate, output_gate, input_activation, output_activation)."""
    if isinstance(zoneout, (tuple, list)):
        if len(zoneout) != 2:
            raise ValueError(f"zoneout: expected a float or a pair (zoneout_c, zoneout_h), got {zoneout!r}")
        zoneout_c, zoneout_h = zoneout
    else:
        zoneout_c = zoneout_h = zoneout
    for name, flag in (("peephole", peephole), ("layer_norm", layer_norm), ("coupled", coupled),
                       ("full_gate_recurrence", full_gate_recurrence), *parts.items()):
        if not isinstance(flag, bool):
            raise TypeError(f"{name}: expected True or False, got {flag!r}")
    check_greff_parts(parts, coupled, layer_norm)
    if full_gate_recurrence:
        check_full_gate_recurrence(parts, layer_norm)
    return CellSpec(
        peephole=peephole, layer_norm=layer_norm, coupled=coupled, **parts,
        full_gate_recurrence=full_gate_recurrence,
        zoneout_c=check_probability("zoneout", zoneout_c), zoneout_h=check_probability("zoneout", zoneout_h),
        weight_drop=check_probability("weight_drop", weight_drop),
    )


def check_greff_parts(parts: dict[str, bool], coupled: bool, layer_norm: bool) -> None:
    """Refuse the combinations of removed parts (Greff's variants) that make no sense."""
    removed = [name for name, kept in parts.items() if not kept]
    if coupled and not parts.get("input_gate", True):
        raise ValueError("coupled=True with input_gate=False: the coupled cell derives f = 1 - i, which would be 0 "
                         "at every step without an input gate (the cell would forget everything)")
    if coupled and not parts.get("forget_gate", True):
        raise ValueError("coupled=True with forget_gate=False: both replace the forget gate (f = 1 - i, or f = 1); "
                         "choose one")
    removed_gates = [name for name in removed if name.endswith("_gate")]
    if layer_norm and removed_gates:
        raise ValueError(f"layer_norm=True with {removed_gates[0]}=False: layer norm takes its moments over the "
                         "whole gate vector, and the removed gate's unused rows would enter them")


def check_full_gate_recurrence(parts: dict[str, bool], layer_norm: bool) -> None:
    """Refuse what FGR does not combine with (Greff et al. add it to the vanilla cell only)."""
    removed_gates = [name for name, kept in parts.items() if not kept and name.endswith("_gate")]
    if removed_gates:
        raise ValueError(f"full_gate_recurrence=True with {removed_gates[0]}=False: the gate-to-gate matrices would "
                         "read the removed gate as the constant 1, a second bias; keep the gate or drop FGR")
    if layer_norm:
        raise ValueError("full_gate_recurrence=True with layer_norm=True: layer norm normalises W_ih x and W_hh h "
                         "separately, and neither paper says where the gate-to-gate term would enter; choose one")


def check_bias_options(bias: bool, forget_bias, chrono_init, spec: CellSpec | None = None) -> None:
    if not isinstance(forget_bias, numbers.Real) or isinstance(forget_bias, bool):
        raise TypeError(f"forget_bias: expected a number, got {forget_bias!r}")
    if chrono_init is not None and (not isinstance(chrono_init, numbers.Real) or chrono_init < 2):
        raise ValueError(f"chrono_init: expected the longest expected dependency T_max >= 2 (steps), got {chrono_init!r}")
    if (forget_bias or chrono_init is not None) and not bias:
        raise ValueError("forget_bias/chrono_init: expected bias=True (they initialise the gate biases), got bias=False")
    gates_set = {"forget_bias": ("forget_gate",) if forget_bias else (),
                 "chrono_init": ("forget_gate", "input_gate") if chrono_init is not None else ()}
    for option, gates in gates_set.items():
        for gate in gates:
            if spec is not None and not getattr(spec, gate):
                raise ValueError(f"{option}: it initialises the {gate.replace('_', ' ')}'s bias, but {gate}=False "
                                 "removes that gate")
    if forget_bias and chrono_init is not None:
        raise ValueError(
            f"forget_bias={forget_bias!r} and chrono_init={chrono_init!r}: expected at most one of them "
            "(both set the forget-gate bias)"
        )


def add_variant_parameters(module: nn.Module, suffix: str, hidden_size: int, spec: CellSpec, factory) -> None:
    for name, (multiple, flag) in VARIANT_SHAPES.items():
        if getattr(spec, flag):
            module.register_parameter(name + suffix, nn.Parameter(torch.empty(multiple * hidden_size, **factory)))
    if spec.full_gate_recurrence:
        shape = (3 * hidden_size, 3 * hidden_size)
        module.register_parameter("weight_gg" + suffix, nn.Parameter(torch.empty(shape, **factory)))


def gate_slice(name: str, hidden_size: int) -> slice:
    index = GATES.index(name)
    return slice(index * hidden_size, (index + 1) * hidden_size)


@torch.no_grad()
def init_variant_parameters(module: nn.Module, suffix: str, hidden_size: int, spec: CellSpec,
                            forget_bias: float, chrono_init: float | None) -> None:
    """Variant-specific initialisation, applied after torch's uniform(-1/√H, 1/√H) init.

    - peephole weights keep the uniform init; LN gains start at 1, the LN(c) bias at 0;
    - coupled: the unused f rows are zeroed, so nothing unused looks meaningful; likewise
      the rows (and peephole) of a gate removed by input_gate/forget_gate/output_gate=False;
    - FGR's W_gg keeps the uniform init; with coupled, its f rows (never read) are zeroed;
    - forget_bias b: added to the f slice of bias_ih (Gers et al. 2000);
    - chrono_init T_max: b_f = log(U(1, T_max - 1)), b_i = -b_f (Tallec & Ollivier 2018),
      in bias_ih, with the f and i slices of bias_hh zeroed.
    """
    get = lambda name: getattr(module, name + suffix, None)  # noqa: E731
    if spec.layer_norm:
        for name in ("ln_ih_weight", "ln_hh_weight", "ln_c_weight"):
            get(name).fill_(1.0)
        get("ln_c_bias").zero_()
    f_rows, i_rows = gate_slice("f", hidden_size), gate_slice("i", hidden_size)
    unused = {"f": spec.coupled or not spec.forget_gate, "i": not spec.input_gate, "o": not spec.output_gate}
    for gate in (gate for gate, off in unused.items() if off):  # rows the cell never reads
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            if get(name) is not None:
                get(name)[gate_slice(gate, hidden_size)].zero_()
        if spec.peephole and gate in PEEPHOLE_GATES:
            index = PEEPHOLE_GATES.index(gate)
            get("weight_peephole")[index * hidden_size:(index + 1) * hidden_size].zero_()
        if spec.full_gate_recurrence and gate in PEEPHOLE_GATES:
            index = PEEPHOLE_GATES.index(gate)
            get("weight_gg")[index * hidden_size:(index + 1) * hidden_size].zero_()
    if forget_bias:
        get("bias_ih")[f_rows] += forget_bias
    if chrono_init is not None:
        b_f = torch.log(torch.empty(hidden_size).uniform_(1.0, float(chrono_init) - 1.0)).to(get("bias_ih"))
        get("bias_ih")[f_rows] = b_f
        get("bias_ih")[i_rows] = -b_f
        get("bias_hh")[f_rows] = 0.0
        get("bias_hh")[i_rows] = 0.0


def layer_weights(module: nn.Module, suffix: str) -> LayerWeights:
    """Collect one layer-direction's tensors (missing ones are None).

    Read from the module's own dicts: parameters, buffers, then plain attributes (a tensor
    set in place of a parameter, as weight-drop wrappers do). getattr would go through
    nn.Module.__getattr__ and, for the absent ones, an AttributeError: ~1 us each, ten per
    layer-direction per call.
    """
    params, buffers, attributes = module._parameters, module._buffers, module.__dict__

    def get(name: str):
        key = name + suffix
        if key in params:
            return params[key]
        return buffers[key] if key in buffers else attributes.get(key)
    return LayerWeights(
        w_ih=get("weight_ih"), w_hh=get("weight_hh"), b_ih=get("bias_ih"), b_hh=get("bias_hh"),
        w_hr=get("weight_hr"), peephole=get("weight_peephole"), ln_ih=get("ln_ih_weight"),
        ln_hh=get("ln_hh_weight"), ln_c_weight=get("ln_c_weight"), ln_c_bias=get("ln_c_bias"),
        w_gg=get("weight_gg"),
    )


def uniform_bound(hidden_size: int) -> float:
    return 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
