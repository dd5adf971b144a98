"""`lstmlab.LSTM` and `lstmlab.LSTMCell`: drop-ins for torch.nn.LSTM / LSTMCell.

Same constructor arguments, outputs and state_dict as torch's modules, plus the
published variants (keyword-only) and the trace. The math is in `lstmlab.cell`.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from . import engines
from .cell import TRACE_FIELDS, CellSpec, input_gates, lstm_step, recurrent_weight, zoneout, zoneout_keep
from .inputs import (
    ParsedInput, ShapeError, check_features, check_like, from_autocast, initial_state, pack_like, parse_input,
    valid_mask,
)
from .parameters import (
    add_variant_parameters, check_bias_options, check_positive_int, check_probability,
    init_variant_parameters, layer_weights, make_spec, uniform_bound,
)
from .trace import LayerTrace, Trace

_VARIANT_DOC = """
    Variant options (keyword-only; they combine):
        peephole: cell-to-gate diagonal weights; i, f see c_{t-1}, o sees c_t. Default False.
        layer_norm: layer-normalised pre-activations and cell (Ba et al. 2016). Default False.
        coupled: coupled input-forget gate, f_t = 1 - i_t. Default False.
        forget_bias: added to the forget-gate bias at initialisation. Default 0.0.
        chrono_init: chrono initialisation from the longest expected dependency T_max.
        zoneout: zoneout probability on c and h, or a pair (z_c, z_h). Default 0.0.
        weight_drop: DropConnect probability on W_hh (training only). Default 0.0.
        input_gate, forget_gate, output_gate: False removes that gate (it is 1): Greff et
            al.'s NIG, NFG, NOG. Default True.
        input_activation, output_activation: False removes the tanh on the cell input
            (g = z_g, NIAF) or on the cell output (h = o * c, NOAF). Default True.
        full_gate_recurrence: every gate also sees the previous step's i, f, o through
            nine H x H matrices (weight_gg, (3H, 3H)): Greff et al.'s FGR. Each call starts
            from zero previous gates. Reference engine only; not in LSTMCell. Default False.
"""


def reset_parameters(module: nn.Module, suffixes: list[str]) -> None:
    """torch's RNN init: every parameter uniform(-1/√H, 1/√H) in registration order (so a
    plain module draws the same numbers as torch's for the same seed), then the variants'."""
    bound = uniform_bound(module.hidden_size)
    with torch.no_grad():
        for weight in module.parameters():
            weight.uniform_(-bound, bound)
    for suffix in suffixes:
        init_variant_parameters(module, suffix, module.hidden_size, module.spec, module.forget_bias, module.chrono_init)


class LSTM(nn.Module):
    r"""A multi-layer LSTM, a drop-in for :class:`torch.nn.LSTM`, with every gate visible.

    For each element of the input sequence, each layer computes (gate order i, f, g, o):

        i_t = σ(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
        f_t = σ(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
        g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
        o_t = σ(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
        c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
        h_t = o_t ⊙ tanh(c_t)            (then h_t = W_hr h_t when proj_size > 0)

    Args (as torch.nn.LSTM): input_size, hidden_size, num_layers=1, bias=True,
    batch_first=False, dropout=0.0 (between layers, training only), bidirectional=False,
    proj_size=0, device=None, dtype=None.
    """ + _VARIANT_DOC + r"""
        engine: "auto" (default: the fastest engine that can run the call), "reference" (the
            PyTorch time loop, the specification), "native" (torch's fused kernel, plain cells) or
            "fused" (lstmlab's C++ time loop, every variant with its trace, CPU float32/64); see
            `lstmlab.engines.describe`.

    Shapes: T time steps, B batch, I input_size, H hidden_size, P = proj_size or H,
    D = 2 if bidirectional else 1, L = num_layers.

    Inputs: ``input`` (T, B, I), (B, T, I) with batch_first, (T, I) unbatched, or a
    PackedSequence; ``hx = (h_0, c_0)`` of shapes (D*L, B, P) and (D*L, B, H), zeros if
    omitted. Outputs: ``output`` (T, B, D*P) (or packed), ``(h_n, c_n)`` like hx, and with
    ``trace=True`` an `lstmlab.Trace` (every gate and state, (T, B, D, H) per layer).

    Parameters (state_dict) as torch.nn.LSTM: ``weight_ih_l{k}`` (4H, I) laid out
    (W_ii|W_if|W_ig|W_io), ``weight_hh_l{k}`` (4H, P), ``bias_ih_l{k}``, ``bias_hh_l{k}``
    (4H,), ``weight_hr_l{k}`` (P, H); ``_reverse`` suffix for the reverse direction.

    Example::

        >>> lstm = lstmlab.LSTM(10, 20, num_layers=2)
        >>> x = torch.randn(5, 3, 10)
        >>> output, (h_n, c_n), trace = lstm(x, trace=True)
        >>> trace[1].f.shape   # forget gate of the top layer
        torch.Size([5, 3, 1, 20])
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None, *, peephole: bool = False,
                 layer_norm: bool = False, coupled: bool = False, forget_bias: float = 0.0,
                 chrono_init: float | None = None, zoneout: float | tuple[float, float] = 0.0,
                 weight_drop: float = 0.0, input_gate: bool = True, forget_gate: bool = True,
                 output_gate: bool = True, input_activation: bool = True, output_activation: bool = True,
                 full_gate_recurrence: bool = False, engine: str = "auto") -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size, minimum=0)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.proj_size = check_positive_int("proj_size", proj_size, minimum=0)
        if proj_size >= hidden_size:
            raise ValueError(f"proj_size: expected a value smaller than hidden_size={hidden_size}, got {proj_size}")
        self.dropout = check_probability("dropout", dropout, upper_inclusive=True)
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"dropout={dropout} acts between layers, so it has no effect with num_layers=1", stacklevel=2)
        self.bias, self.batch_first, self.bidirectional = bool(bias), bool(batch_first), bool(bidirectional)
        self.spec: CellSpec = make_spec(peephole, layer_norm, coupled, zoneout, weight_drop, full_gate_recurrence,
                                        input_gate=input_gate,
                                        forget_gate=forget_gate, output_gate=output_gate,
                                        input_activation=input_activation, output_activation=output_activation)
        check_bias_options(self.bias, forget_bias, chrono_init, self.spec)
        self.forget_bias, self.chrono_init = float(forget_bias), chrono_init
        self.engine = engines.check_engine_name(engine)
        factory = {"device": device, "dtype": dtype}
        out_size = proj_size or hidden_size
        self._suffixes = [f"_l{layer}{'_reverse' if direction else ''}"
                          for layer in range(num_layers) for direction in range(self.num_directions)]
        for suffix in self._suffixes:  # torch.nn.LSTM's names, shapes and order
            layer = int(suffix[2:].split("_")[0])
            layer_input = input_size if layer == 0 else out_size * self.num_directions
            shapes = {"weight_ih": (4 * hidden_size, layer_input), "weight_hh": (4 * hidden_size, out_size)}
            if bias:
                shapes.update(bias_ih=(4 * hidden_size,), bias_hh=(4 * hidden_size,))
            if proj_size:
                shapes["weight_hr"] = (proj_size, hidden_size)
            for name, shape in shapes.items():
                self.register_parameter(name + suffix, nn.Parameter(torch.empty(shape, **factory)))
        for suffix in self._suffixes:  # variant parameters after all plain ones (same RNG use as torch)
            add_variant_parameters(self, suffix, hidden_size, self.spec, factory)
        engines.select(self.engine, self.spec, need_trace=False, like=self.weight_ih_l0)  # unsupported: fail now
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def reset_parameters(self) -> None:
        """torch.nn.LSTM's init (uniform ±1/√H, same order), then the variants' rules."""
        reset_parameters(self, self._suffixes)

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        """Per layer-direction lists of parameters, as torch.nn.LSTM.all_weights."""
        return [[p for name, p in self.named_parameters() if name.endswith(s)] for s in self._suffixes]

    def flatten_parameters(self) -> None:
        """No-op, for drop-in compatibility with torch.nn.LSTM."""

    def forward(self, input, hx=None, *, trace: bool = False):
        """Run the LSTM; see the class docstring for shapes. Returns like torch.nn.LSTM,
        plus an `lstmlab.Trace` as third element when ``trace=True``."""
        parsed = parse_input(input, self.batch_first, self.input_size)
        return self._run(parsed, hx, trace, self.batch_first)

    def _run(self, parsed: ParsedInput, hx, trace: bool, batch_first: bool):
        parsed = parsed._replace(x=from_autocast(parsed.x, self.weight_ih_l0))
        check_like("input", parsed.x, self.weight_ih_l0)
        rows = self.num_layers * self.num_directions
        shapes = ((rows, self.proj_size or self.hidden_size), (rows, self.hidden_size))
        h0, c0 = initial_state(hx, parsed.x.shape[1], shapes, parsed.unbatched, parsed.x)
        name, _ = engines.select(self.engine, self.spec, need_trace=trace, like=parsed.x)
        per_layer = [self._suffixes[k * self.num_directions:(k + 1) * self.num_directions] for k in range(self.num_layers)]
        layers = [[layer_weights(self, suffix) for suffix in suffixes] for suffixes in per_layer]
        batch = engines.SequenceBatch(parsed.x, h0, c0, layers, self.spec, parsed.lengths, self.dropout, self.training)
        result = engines.run(name, batch, need_trace=trace)
        output, h_n, c_n = result.output, result.h_n, result.c_n
        if parsed.packed is not None:
            output = pack_like(output, parsed.packed)
        elif parsed.unbatched:
            output, h_n, c_n = output.squeeze(1), h_n.squeeze(1), c_n.squeeze(1)
        elif batch_first:
            output = output.transpose(0, 1)
        if not trace:
            return output, (h_n, c_n)
        return output, (h_n, c_n), self._make_trace(result.trace, parsed)

    def _make_trace(self, layer_fields: list[dict[str, Tensor]], parsed) -> Trace:
        """Engine trace (T, B, D, ·) per layer -> the caller's layout."""
        mask = None if parsed.lengths is None else valid_mask(parsed.lengths, parsed.x.shape[0])
        if parsed.unbatched:
            arrange = lambda t: t.squeeze(1)  # noqa: E731  (T, D, ·)
        elif self.batch_first:
            arrange = lambda t: t.transpose(0, 1)  # noqa: E731  (B, T, D, ·)
            mask = None if mask is None else mask.T
        else:
            arrange = lambda t: t  # noqa: E731
        layers = tuple(LayerTrace(**{n: arrange(f[n]) for n in TRACE_FIELDS}) for f in layer_fields)
        return Trace(layers, mask, self.batch_first and not parsed.unbatched)

    def step(self, x_t: Tensor, state: tuple[Tensor, Tensor] | None = None):
        """One time step, for streaming: ``y_t, state = lstm.step(x_t, state)``.

        x_t: (B, I) or (I,); state: (h, c) shaped like hx, (L, B, P) and (L, B, H), zeros
        if None. Returns y_t (B, P) (the top layer's h) and the new state, with the
        sequence call's numbers. Under torch.no_grad() it runs the fused engine's C++ step
        (where it can: see `engines.fused.step_supported`) on weights packed once per module
        and re-packed when a parameter changes (`engines.fused.packed_step_weights`);
        otherwise a one-step sequence through the differentiable engines.
        """
        if self.bidirectional:
            raise ValueError("step: expected a unidirectional LSTM (the reverse direction needs the "
                             "whole sequence), got bidirectional=True")
        if self.spec.full_gate_recurrence:
            raise ValueError("step: full_gate_recurrence=True carries the previous gates, which the (h, c) state "
                             "does not hold; run the whole sequence (or its chunks) through forward instead")
        if not isinstance(x_t, Tensor) or x_t.dim() not in (1, 2):
            got = tuple(x_t.shape) if isinstance(x_t, Tensor) else type(x_t).__name__
            raise ValueError(f"step: expected x_t of shape (B, I) or (I,), got {got}")
        check_features(x_t, self.input_size)
        unbatched = x_t.dim() == 1
        x = x_t.reshape(1, 1, -1) if unbatched else x_t.unsqueeze(0)  # (1, B, I)
        if not torch.is_grad_enabled() and engines.fused.step_supported(self.spec, self.training, self.dropout, x):
            return self._stream_step(x[0], state, unbatched)
        output, state = self._run(ParsedInput(x, None, None, unbatched), state, trace=False, batch_first=False)
        return output[0], state

    def _stream_step(self, x: Tensor, state, unbatched: bool):
        """`step` without autograd: the fused engine's C++ step, no per-step Python per layer."""
        check_like("input", x, self.weight_ih_l0)
        shapes = ((self.num_layers, self.proj_size or self.hidden_size), (self.num_layers, self.hidden_size))
        h0, c0 = initial_state(state, x.shape[0], shapes, unbatched, x)
        h, c = h0.clone(memory_format=torch.contiguous_format), c0.clone(memory_format=torch.contiguous_format)
        y = engines.fused.stream_step(self, x, h, c)  # updates h, c; weights packed once per module
        if unbatched:
            return y[0], (h[:, 0], c[:, 0])
        return y, (h, c)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        for name, default in (("num_layers", 1), ("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False), ("proj_size", 0)):
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)}"
        variants = self.spec.variant_names()
        if variants:
            text += f", variants={'+'.join(variants)}"
        return text + (f", engine={self.engine!r}" if self.engine != "auto" else "")


class LSTMCell(nn.Module):
    r"""One LSTM step, a drop-in for :class:`torch.nn.LSTMCell`, with the variants.

    ``h_1, c_1 = cell(x, (h_0, c_0))`` with x (B, I) or (I,), states (B, H) or (H,)
    (zeros if hx is omitted). Equations: `lstmlab.cell`. Parameters as torch.nn.LSTMCell:
    ``weight_ih`` (4H, I), ``weight_hh`` (4H, H), ``bias_ih``, ``bias_hh`` (4H,); variant
    parameters as `lstmlab.LSTM` without the layer suffix.
    """ + _VARIANT_DOC + r"""
    With ``trace=True`` the call returns ``(h_1, c_1), LayerTrace`` whose fields are this
    step's i, f, g, o, c, h (each (B, H)).

    Weight drop draws a new mask at every call (a sequence module draws one per sequence).

    Example::

        >>> cell = lstmlab.LSTMCell(10, 20, peephole=True)
        >>> h, c = cell(torch.randn(3, 10))
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None, *,
                 peephole: bool = False, layer_norm: bool = False, coupled: bool = False,
                 forget_bias: float = 0.0, chrono_init: float | None = None,
                 zoneout: float | tuple[float, float] = 0.0, weight_drop: float = 0.0, input_gate: bool = True,
                 forget_gate: bool = True, output_gate: bool = True, input_activation: bool = True,
                 output_activation: bool = True, full_gate_recurrence: bool = False) -> None:
        super().__init__()
        if full_gate_recurrence:
            raise ValueError("full_gate_recurrence=True: LSTMCell's state (h, c) has no place for the previous step's "
                             "gates that FGR feeds back; use lstmlab.LSTM(..., full_gate_recurrence=True)")
        self.input_size = check_positive_int("input_size", input_size, minimum=0)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.bias = bool(bias)
        self.spec = make_spec(peephole, layer_norm, coupled, zoneout, weight_drop, input_gate=input_gate,
                              forget_gate=forget_gate, output_gate=output_gate, input_activation=input_activation,
                              output_activation=output_activation)
        check_bias_options(self.bias, forget_bias, chrono_init, self.spec)
        self.forget_bias, self.chrono_init = float(forget_bias), chrono_init
        factory = {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size, **factory))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size, **factory))
            self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        add_variant_parameters(self, "", hidden_size, self.spec, factory)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch.nn.LSTMCell's init (uniform ±1/√H), then the variants' rules."""
        reset_parameters(self, [""])

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None, *, trace: bool = False):
        if not isinstance(input, Tensor) or input.dim() not in (1, 2):
            got = tuple(input.shape) if isinstance(input, Tensor) else type(input).__name__
            raise ValueError(f"input: expected shape (B, {self.input_size}) or ({self.input_size},), got {got}")
        check_features(input, self.input_size)
        check_like("input", input, self.weight_ih)
        unbatched = input.dim() == 1
        x = input.unsqueeze(0) if unbatched else input  # (B, I)
        h0, c0 = self._initial_state(hx, x, unbatched)  # (B, H) each
        weights = layer_weights(self, "")
        w_hh = recurrent_weight(weights.w_hh, self.spec, self.training)
        step = lstm_step(input_gates(x, weights, self.spec), h0, c0, weights, self.spec, w_hh)
        c1 = zoneout(step.c, c0, zoneout_keep(self.spec.zoneout_c, self.training, tuple(c0.shape), c0))
        h1 = zoneout(step.h, h0, zoneout_keep(self.spec.zoneout_h, self.training, tuple(h0.shape), h0))
        step = step._replace(c=c1, h=h1)
        if unbatched:
            step = type(step)(*(t.squeeze(0) for t in step))
        if trace:
            return (step.h, step.c), LayerTrace(**step._asdict())
        return step.h, step.c

    def _initial_state(self, hx, x: Tensor, unbatched: bool) -> tuple[Tensor, Tensor]:
        """(h_0, c_0) as (B, H) each; hx is (B, H) pairs, or (H,) for unbatched input."""
        if hx is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size)
            return zeros, zeros
        shape = (self.hidden_size,) if unbatched else (x.shape[0], self.hidden_size)
        # A cell state is a one-layer LSTM state without the layer dim: reuse its checks.
        widened = hx
        if isinstance(hx, (tuple, list)) and len(hx) == 2 and all(isinstance(t, Tensor) for t in hx):
            for name, tensor in zip(("h_0", "c_0"), hx):
                if tuple(tensor.shape) != shape:
                    raise ShapeError(f"{name}: expected shape {shape}, got {tuple(tensor.shape)}")
            widened = tuple(t.unsqueeze(0) for t in hx)
        h0, c0 = initial_state(widened, x.shape[0], ((1, self.hidden_size),) * 2, unbatched, x)
        return h0[0], c0[0]

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")
        variants = self.spec.variant_names()
        return text + (f", variants={'+'.join(variants)}" if variants else "")
