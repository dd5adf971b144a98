"""The LSTM cell, exactly: the variant spec and the reference step.

This module is the specification of the math. Every engine must reproduce it.

Gate order is PyTorch's, defined once here: ``GATES = ("i", "f", "g", "o")``, so the
stacked weights are laid out ``(W_ii|W_if|W_ig|W_io)``. With ``z = W_ih x_t + b_ih +
W_hh h_{t-1} + b_hh`` split into ``z_i, z_f, z_g, z_o`` (each ``H`` wide):

    i_t = σ(z_i + p_i ⊙ c_{t-1})            input gate      (peephole: p_i)
    f_t = σ(z_f + p_f ⊙ c_{t-1})            forget gate     (coupled: f_t = 1 - i_t)
    g_t = tanh(z_g)                          cell candidate
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t          cell state
    o_t = σ(z_o + p_o ⊙ c_t)                output gate     (peephole sees the new c_t)
    h_t = o_t ⊙ tanh(c_t)                    hidden state
    h_t ← W_hr h_t                           projection (proj_size > 0)

Layer norm (Ba, Kiros & Hinton 2016) normalises the input and recurrent
pre-activations separately over the whole gate vector (gains only; the shift is
b_ih + b_hh) and the cell state before the output tanh (gain and bias):

    z   = LN(W_ih x_t) ⊙ γ_ih + LN(W_hh h_{t-1}) ⊙ γ_hh + b_ih + b_hh
    h_t = o_t ⊙ tanh(LN(c_t) ⊙ γ_c + β_c)     (c_t itself is carried un-normalised)

With ``coupled`` the f rows of the weights are unused (zero gradient); layer norm then
normalises over the i, g, o slices only, so the unused rows cannot leak in.

Zoneout (Krueger et al. 2016) keeps each unit's previous state with probability z
during training (``c_t = m ⊙ c_{t-1} + (1 - m) ⊙ c_t``, m ~ Bernoulli(z)) and uses the
expectation in evaluation (``c_t = z c_{t-1} + (1 - z) c_t``); likewise for h.

The one-part-removed variants of Greff et al. (2017, "LSTM: A Search Space Odyssey")
each change one line of the equations above (their vanilla cell is ours with peepholes):

    NIG   input_gate=False         i_t = 1
    NFG   forget_gate=False        f_t = 1          (the cell of Hochreiter & Schmidhuber 1997)
    NOG   output_gate=False        o_t = 1
    NIAF  input_activation=False   g_t = z_g        (no tanh on the cell input)
    NOAF  output_activation=False  h_t = o_t ⊙ c_t  (no tanh on the cell output)

A removed gate's rows of W_ih, W_hh and the biases (and its peephole) are unused: they are
zeroed at initialisation and get zero gradient, as the f rows of the coupled cell do.

FGR, ``full_gate_recurrence=True``, Greff's eighth variant, lets every gate also see all
gates of the previous step, through nine H×H matrices held as one W_gg (3H, 3H) whose
row blocks are the receiving gates (i | f | o) and column blocks the sending ones:

    (z_i | z_f | z_o) += W_gg (i_{t-1} | f_{t-1} | o_{t-1})       (with the peepholes)

The previous gates are not part of the (h, c) state: every call starts from
i_0 = f_0 = o_0 = 0 (a sequence restarts its gate recurrence where its state is passed in).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

GATES = ("i", "f", "g", "o")  # PyTorch's gate order; the only place it is defined
STATES = ("c", "h")
TRACE_FIELDS = GATES + STATES
PEEPHOLE_GATES = ("i", "f", "o")  # layout of the peephole vector (p_i | p_f | p_o)
LN_EPS = 1e-5


@dataclass(frozen=True)
class CellSpec:
    """Which variant of the cell runs. Plain LSTM when everything is off."""

    peephole: bool = False  # diagonal cell-to-gate weights (Gers & Schmidhuber 2000)
    layer_norm: bool = False  # layer-normalised pre-activations and cell (Ba et al. 2016)
    coupled: bool = False  # coupled input-forget gate, f = 1 - i (CIFG)
    zoneout_c: float = 0.0  # zoneout probability for the cell state
    zoneout_h: float = 0.0  # zoneout probability for the hidden state
    weight_drop: float = 0.0  # DropConnect probability on W_hh (training only)
    input_gate: bool = True  # False: i = 1 (Greff's NIG)
    forget_gate: bool = True  # False: f = 1 (NFG)
    output_gate: bool = True  # False: o = 1 (NOG)
    input_activation: bool = True  # False: g = z_g, no tanh (NIAF)
    output_activation: bool = True  # False: h = o ⊙ c, no tanh (NOAF)
    full_gate_recurrence: bool = False  # True: gates see the previous step's gates (FGR)

    @property
    def removed_parts(self) -> tuple[str, ...]:
        """The Greff variant flags that are off, e.g. ("forget_gate",) for NFG."""
        return tuple(name for name in GREFF_PARTS if not getattr(self, name))

    @property
    def changes_cell_math(self) -> bool:
        """True when the step differs from torch.nn.LSTM's (weight drop does not: it
        only changes the weights that enter it)."""
        return bool(
            self.peephole or self.layer_norm or self.coupled or self.zoneout_c or self.zoneout_h
            or self.removed_parts or self.full_gate_recurrence
        )

    def variant_names(self) -> list[str]:
        names = [n for n in ("peephole", "layer_norm", "coupled", "full_gate_recurrence") if getattr(self, n)]
        if self.zoneout_c or self.zoneout_h:
            names.append("zoneout")
        if self.weight_drop:
            names.append("weight_drop")
        return names + [f"no_{name}" for name in self.removed_parts]


GREFF_PARTS = ("input_gate", "forget_gate", "output_gate", "input_activation", "output_activation")


class LayerWeights(NamedTuple):
    """The tensors of one layer and direction. H = hidden_size, P = H_out (proj or H)."""

    w_ih: Tensor  # (4H, I)
    w_hh: Tensor  # (4H, P)
    b_ih: Tensor | None  # (4H,)
    b_hh: Tensor | None  # (4H,)
    w_hr: Tensor | None  # (P, H) projection, or None
    peephole: Tensor | None  # (3H,) laid out (p_i | p_f | p_o)
    ln_ih: Tensor | None  # (4H,) gain on LN(W_ih x)
    ln_hh: Tensor | None  # (4H,) gain on LN(W_hh h)
    ln_c_weight: Tensor | None  # (H,) gain on LN(c)
    ln_c_bias: Tensor | None  # (H,) bias on LN(c)
    w_gg: Tensor | None = None  # (3H, 3H) gate-to-gate recurrence (i|f|o) <- (i|f|o), FGR


class StepResult(NamedTuple):
    """Post-activation gates and new states of one step, each (B, H) (h: (B, P))."""

    i: Tensor
    f: Tensor
    g: Tensor
    o: Tensor
    c: Tensor
    h: Tensor


def normalize_gates(z: Tensor, gain: Tensor, coupled: bool, bias: Tensor | None = None) -> Tensor:
    """LN over the gate vector z (..., 4H), times gain (4H,), plus bias (4H,) if given.

    Coupled: the f slice is excluded from the moments and comes out 0 (+ its bias).
    """
    if not coupled:  # one op: normalise, scale and shift (no extra pass over a big tensor)
        return F.layer_norm(z, z.shape[-1:], gain, bias, LN_EPS)
    z_i, z_f, z_g, z_o = z.chunk(4, dim=-1)
    used = torch.cat((z_i, z_g, z_o), dim=-1)  # (..., 3H)
    n_i, n_g, n_o = F.layer_norm(used, used.shape[-1:], None, None, LN_EPS).chunk(3, dim=-1)
    scaled = torch.cat((n_i, torch.zeros_like(z_f), n_g, n_o), dim=-1) * gain
    return scaled if bias is None else scaled + bias


def input_gates(x: Tensor, weights: LayerWeights, spec: CellSpec) -> Tensor:
    """The input's share of the pre-activations, biases included: (..., I) -> (..., 4H).

    Computed for all time steps at once by the sequence engines (one big GEMM).
    """
    bias = None if weights.b_ih is None else weights.b_ih + weights.b_hh  # (4H,)
    if spec.layer_norm:
        return normalize_gates(x @ weights.w_ih.T, weights.ln_ih, spec.coupled, bias)  # (..., 4H)
    if bias is None:
        return x @ weights.w_ih.T
    flat = torch.addmm(bias, x.reshape(-1, x.shape[-1]), weights.w_ih.T)  # GEMM and bias in one op
    return flat.view(*x.shape[:-1], flat.shape[-1])


def previous_gates(step: StepResult) -> Tensor:
    """(i | f | o) of a step, (B, 3H): what FGR's next step receives through W_gg."""
    return torch.cat((step.i, step.f, step.o), dim=-1)


def lstm_step(
    x_gates: Tensor, h_prev: Tensor, c_prev: Tensor, weights: LayerWeights, spec: CellSpec,
    w_hh: Tensor, gates_prev: Tensor | None = None,
) -> StepResult:
    """One step of the cell (before zoneout), following the equations in the module doc.

    x_gates: (B, 4H) from `input_gates`; h_prev: (B, P); c_prev: (B, H);
    w_hh: (4H, P), the recurrent weight actually used (after weight drop, if any);
    gates_prev: (B, 3H), the previous step's (i | f | o) for FGR (None: zeros).
    """
    recurrent = h_prev @ w_hh.T  # (B, 4H)
    if spec.layer_norm:
        recurrent = normalize_gates(recurrent, weights.ln_hh, spec.coupled)
    z_i, z_f, z_g, z_o = (x_gates + recurrent).chunk(4, dim=-1)  # each (B, H)
    if spec.full_gate_recurrence and gates_prev is not None:
        r_i, r_f, r_o = (gates_prev @ weights.w_gg.T).chunk(3, dim=-1)  # each (B, H)
        z_i, z_f, z_o = z_i + r_i, z_f + r_f, z_o + r_o
    if spec.peephole:
        p_i, p_f, p_o = weights.peephole.chunk(3)
        z_i = z_i + p_i * c_prev
        z_f = z_f + p_f * c_prev
    i = torch.sigmoid(z_i) if spec.input_gate else torch.ones_like(z_i)
    if spec.coupled:
        f = 1.0 - i
    else:
        f = torch.sigmoid(z_f) if spec.forget_gate else torch.ones_like(z_f)
    g = torch.tanh(z_g) if spec.input_activation else z_g
    c = f * c_prev + i * g  # (B, H)
    if spec.peephole:
        z_o = z_o + p_o * c
    o = torch.sigmoid(z_o) if spec.output_gate else torch.ones_like(z_o)
    c_out = c
    if spec.layer_norm:
        c_out = F.layer_norm(c, c.shape[-1:], weights.ln_c_weight, weights.ln_c_bias, LN_EPS)
    h = o * (torch.tanh(c_out) if spec.output_activation else c_out)  # (B, H)
    if weights.w_hr is not None:
        h = h @ weights.w_hr.T  # (B, P)
    return StepResult(i, f, g, o, c, h)


def zoneout_keep(rate: float, training: bool, shape: tuple[int, ...], like: Tensor) -> Tensor | None:
    """Zoneout's keep-the-previous-state weights: Bernoulli(rate) draws in training, the
    constant `rate` (the expectation) in evaluation, None without zoneout.

    Sequence engines draw them for all steps at once, (T, B, ·), before the time loop, so
    that every engine consumes the random stream alike and gives the same numbers.
    """
    if rate == 0.0:
        return None
    keep = torch.full(shape, rate, dtype=like.dtype, device=like.device)
    return torch.bernoulli(keep) if training else keep


def zoneout(new: Tensor, prev: Tensor, keep: Tensor | None) -> Tensor:
    """keep ⊙ prev + (1 - keep) ⊙ new (just `new` without zoneout)."""
    if keep is None:
        return new
    return keep * prev + (1.0 - keep) * new


def recurrent_weight(w_hh: Tensor, spec: CellSpec, training: bool) -> Tensor:
    """W_hh after DropConnect (Merity et al. 2017): one mask per call, scaled by 1/(1-p)."""
    if spec.weight_drop and training:
        return F.dropout(w_hh, spec.weight_drop, training=True)
    return w_hh
