"""`lstmlab.LSTM` as ONNX ops: the native `LSTM` op where it can express the cell, else a `Scan`.

`emit_lstm` writes the layers of a module into a `Graph` (time-major values):

    x (T, B, I), h_0 (D*L, B, P), c_0 (D*L, B, H)
        -> y (T, B, D*P), h_n (D*L, B, P), c_n (D*L, B, H)[, trace per layer (T, B, D, ·)]

Native `LSTM` op (plain, peephole, coupled; no trace, no lengths), one node per layer:
ONNX stacks the gates (i, o, f, c) where lstmlab (and torch) stack (i, f, g, o), so the
weight and bias rows are reordered by `ONNX_GATE_ORDER`; its peephole input is
(p_i, p_o, p_f) where lstmlab's is (p_i, p_f, p_o); ``B`` is (b_ih | b_hh), both in ONNX's
order; ``input_forget=1`` couples the gates as lstmlab's f = 1 - i (ONNX Runtime's LSTM
kernel computes f = 1 - i from the same i and ignores the f rows).

`Scan` (everything else: layer norm, proj_size, zoneout, Greff's removed gates and
activations, the trace, sequence lengths):
the input's share of the gates (with its layer norm) is one MatMul over all steps, then
one Scan per layer and direction runs `cell.lstm_step` written in standard ops; the
reverse direction is a Scan with ``scan_input_directions=[1]``. With lengths (packed
semantics), a (T, B, 1) validity mask holds each row's state still on its padded steps
and zeroes its outputs there, exactly as `engines.reference.run_direction`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lstmlab.cell import LN_EPS
from lstmlab.export.graph import BOOL, FLOAT, Graph, to_numpy
from lstmlab.parameters import layer_weights

ONNX_GATE_ORDER = (0, 3, 1, 2)  # ONNX's (i, o, f, c) as indices into lstmlab's (i, f, g, o)
ONNX_PEEPHOLE_ORDER = (0, 2, 1)  # ONNX's (p_i, p_o, p_f) as indices into lstmlab's (p_i, p_f, p_o)


def to_onnx_gate_order(rows: np.ndarray, hidden_size: int) -> np.ndarray:
    """Stacked gate rows (4H, ...) in lstmlab's (i, f, g, o) -> ONNX's (i, o, f, c)."""
    blocks = [rows[k * hidden_size:(k + 1) * hidden_size] for k in range(4)]
    return np.concatenate([blocks[k] for k in ONNX_GATE_ORDER], axis=0)


def to_onnx_peephole_order(peephole: np.ndarray, hidden_size: int) -> np.ndarray:
    """(p_i | p_f | p_o) (3H,) -> ONNX's (p_i | p_o | p_f)."""
    blocks = [peephole[k * hidden_size:(k + 1) * hidden_size] for k in range(3)]
    return np.concatenate([blocks[k] for k in ONNX_PEEPHOLE_ORDER])


def check_exportable(module) -> None:
    """ValueError naming what cannot be exported; the rest is exported in its evaluation form
    (dropout between layers and weight drop are training-only, zoneout uses its expectation)."""
    import lstmlab

    if not isinstance(module, (lstmlab.LSTM, lstmlab.LSTMCell)):
        raise ValueError(f"expected an lstmlab.LSTM or LSTMCell, got {type(module).__name__} (lstmlab.export "
                         "writes lstmlab's modules and the recipes' models that hold them)")
    weight = next(module.parameters())
    if weight.dtype != torch.float32:
        raise ValueError(f"dtype: expected float32 weights (the exported graph is float32), got "
                         f"{weight.dtype}; export module.float()")
    check_known_options(module.spec)
    if module.input_size == 0:
        raise ValueError("input_size=0: an LSTM without inputs has no ONNX form (MatMul needs a feature axis)")


# The CellSpec fields this exporter writes, with the value that leaves the cell unchanged. The
# Greff parts (a removed gate or activation) are read with getattr, default kept.
GREFF_PARTS = ("input_gate", "forget_gate", "output_gate", "input_activation", "output_activation")
KNOWN_OPTIONS = {"peephole", "layer_norm", "coupled", "zoneout_c", "zoneout_h", "weight_drop", *GREFF_PARTS}


def removed_parts(spec) -> list[str]:
    """The Greff variant parts that are off (no_input_gate, ...), as `CellSpec` names them."""
    return [part for part in GREFF_PARTS if not getattr(spec, part, True)]


def check_known_options(spec) -> None:
    """ValueError for a cell option this exporter does not write (it would be silently dropped)."""
    import dataclasses

    for field in dataclasses.fields(spec):
        if field.name not in KNOWN_OPTIONS and getattr(spec, field.name) != field.default:
            raise ValueError(f"{field.name}={getattr(spec, field.name)!r}: lstmlab.export does not write this "
                             "cell option yet, so the exported graph would compute a different cell")


def uses_native_op(module, trace: bool, lengths: bool) -> bool:
    """True when the native ONNX LSTM op computes this module exactly (see the module docstring)."""
    spec = module.spec
    return not (trace or lengths or module.proj_size or spec.layer_norm or spec.zoneout_c or spec.zoneout_h
                or removed_parts(spec))


@dataclass
class LSTMValues:
    """Names of an emitted LSTM's results in the graph."""

    y: str  # (T, B, D*P)
    h_n: str  # (D*L, B, P)
    c_n: str  # (D*L, B, H)
    trace: list[dict[str, str]]  # per layer: field -> (T, B, D, ·); empty without the trace


def emit_lstm(graph: Graph, module, x: str, h0: str, c0: str, *, valid: str | None = None,
              trace: bool = False, native: bool | None = None) -> LSTMValues:
    """Write `module`'s layers on time-major x; `valid` is a (T, B, 1) float mask (1 = a real
    step) for padded batches. native=None picks the native op where it is exact."""
    check_exportable(module)
    if native is None:
        native = uses_native_op(module, trace, valid is not None)
    elif native and not uses_native_op(module, trace, valid is not None):
        spec = module.spec
        reasons = [name for name, used in (("layer_norm", spec.layer_norm), ("proj_size", module.proj_size),
                                           ("zoneout", spec.zoneout_c or spec.zoneout_h), ("trace", trace),
                                           ("lengths", valid is not None)) if used]
        reasons += [f"{part}=False" for part in removed_parts(spec)]
        raise ValueError(f"the native ONNX LSTM op cannot express {', '.join(reasons)} (it has no such input "
                         "or output); export with form='scan' or 'auto'")
    directions = 2 if module.bidirectional else 1
    layer_input, h_last, c_last, traces = x, [], [], []
    for layer in range(module.num_layers):
        rows = list(range(layer * directions, (layer + 1) * directions))
        if native:
            layer_input, h_n, c_n = _native_layer(graph, module, layer, layer_input, h0, c0, rows)
            h_last.append(h_n)
            c_last.append(c_n)
            continue
        outputs, fields = [], []
        for direction, row in enumerate(rows):
            weights = layer_weights(module, module._suffixes[row])
            h_init = graph.op("Gather", [h0, graph.ints(row, "row")], "h_init", axis=0)  # (B, P)
            c_init = graph.op("Gather", [c0, graph.ints(row, "row")], "c_init", axis=0)  # (B, H)
            y, h_n, c_n, field = _scan_direction(graph, module, weights, layer_input, h_init, c_init, valid,
                                                 reverse=direction == 1, trace=trace)
            outputs.append(y)
            h_last.append(graph.unsqueeze(h_n, [0]))
            c_last.append(graph.unsqueeze(c_n, [0]))
            fields.append(field)
        layer_input = graph.concat(outputs, axis=-1)  # (T, B, D*P)
        if trace:
            traces.append({name: graph.concat([graph.unsqueeze(f[name], [2]) for f in fields], axis=2)
                           for name in fields[0]})
    return LSTMValues(layer_input, graph.concat(h_last, 0), graph.concat(c_last, 0), traces)


def _native_layer(graph: Graph, module, layer: int, x: str, h0: str, c0: str, rows: list[int]):
    """One layer (both directions) as the ONNX LSTM op: (T, B, I) -> (T, B, D*H), (D, B, H) x 2."""
    H, spec = module.hidden_size, module.spec
    W, R, B, P = [], [], [], []
    for row in rows:
        weights = layer_weights(module, module._suffixes[row])
        W.append(to_onnx_gate_order(to_numpy(weights.w_ih), H))
        R.append(to_onnx_gate_order(to_numpy(weights.w_hh), H))
        zeros = np.zeros(4 * H, np.float32)
        b_ih = zeros if weights.b_ih is None else to_onnx_gate_order(to_numpy(weights.b_ih), H)
        b_hh = zeros if weights.b_hh is None else to_onnx_gate_order(to_numpy(weights.b_hh), H)
        B.append(np.concatenate([b_ih, b_hh]))
        if spec.peephole:
            P.append(to_onnx_peephole_order(to_numpy(weights.peephole), H))
    start, end = graph.ints([rows[0]], "start"), graph.ints([rows[-1] + 1], "end")
    h_init = graph.op("Slice", [h0, start, end, graph.ints([0], "axis")], "h_init")  # (D, B, H)
    c_init = graph.op("Slice", [c0, start, end, graph.ints([0], "axis")], "c_init")
    inputs = [x, graph.const(np.stack(W), "W"), graph.const(np.stack(R), "R"), graph.const(np.stack(B), "B"),
              "", h_init, c_init]
    if spec.peephole:
        inputs.append(graph.const(np.stack(P), "P"))
    attributes = {"hidden_size": H, "direction": "bidirectional" if len(rows) == 2 else "forward"}
    if spec.coupled:
        attributes["input_forget"] = 1
    y, h_n, c_n = graph.op("LSTM", inputs, "lstm", outputs=3, **attributes)  # Y (T, D, B, H)
    y = graph.op("Transpose", [y], perm=[0, 2, 1, 3])  # (T, B, D, H)
    y = graph.op("Reshape", [y, graph.ints([0, 0, -1], "shape")])  # (T, B, D*H)
    return y, h_n, c_n


def _normalize_gates(graph: Graph, z: str, gain: np.ndarray, coupled: bool, bias: np.ndarray | None,
                     H: int) -> str:
    """`cell.normalize_gates` in ops. Coupled: the f slice is left out of the moments; its
    value is never read (f = 1 - i), so it passes through un-normalised."""
    if not coupled:
        return graph.layer_norm(z, gain, bias, LN_EPS)
    z_i, z_f, z_g, z_o = graph.split(z, [H] * 4)
    used = graph.op("Concat", [z_i, z_g, z_o], axis=-1)
    pick = np.concatenate([np.arange(0, H), np.arange(2 * H, 4 * H)])
    zeros = np.zeros(3 * H, np.float32)
    normed = graph.layer_norm(used, gain[pick], zeros if bias is None else bias[pick], LN_EPS)
    n_i, n_g, n_o = graph.split(normed, [H] * 3)
    return graph.op("Concat", [n_i, z_f, n_g, n_o], axis=-1)


def _scan_direction(graph: Graph, module, weights, x: str, h_init: str, c_init: str, valid: str | None,
                    reverse: bool, trace: bool):
    """One layer-direction as a Scan over time: returns y (T, B, P), h_n (B, P), c_n (B, H)
    and the trace fields {i, f, g, o, c, h: (T, B, ·)} (empty without the trace)."""
    x_gates = input_gates(graph, module, weights, x)  # (T, B, 4H): one MatMul for all steps
    body = graph.child("lstm_step")
    h_prev = body.input(body.unique("h_prev"), FLOAT, None)
    c_prev = body.input(body.unique("c_prev"), FLOAT, None)
    gates_t = body.input(body.unique("x_gates_t"), FLOAT, None)
    valid_t = body.input(body.unique("valid_t"), FLOAT, None) if valid is not None else None
    values = _step(body, module, weights, gates_t, h_prev, c_prev)  # field -> (B, ·), before masking
    h_new, c_new = values["h"], values["c"]
    if valid_t is not None:  # padded steps: the state stands still, the outputs are zero
        keep = body.op("Cast", [valid_t], "valid", to=BOOL)
        h_new = body.op("Where", [keep, h_new, h_prev], "h_new")
        c_new = body.op("Where", [keep, c_new, c_prev], "c_new")
        values = {name: body.op("Mul", [value, valid_t], name) for name, value in values.items()}
    fields = ["h"] + (["i", "f", "g", "o", "c"] if trace else [])
    body.output(body.unique("h_out"), h_new, FLOAT, None)
    body.output(body.unique("c_out"), c_new, FLOAT, None)
    for name in fields:
        body.output(body.unique(f"{name}_t"), values[name], FLOAT, None)
    scanned = [x_gates] + ([valid] if valid is not None else [])
    results = graph.op("Scan", [h_init, c_init, *scanned], "scan", outputs=2 + len(fields), body=body.graph(),
                       num_scan_inputs=len(scanned), scan_input_directions=[int(reverse)] * len(scanned),
                       scan_output_directions=[int(reverse)] * len(fields))
    h_n, c_n, *sequences = results
    by_name = dict(zip(fields, sequences))
    return by_name["h"], h_n, c_n, (by_name if trace else {})


def input_gates(graph: Graph, module, weights, x: str) -> str:
    """`cell.input_gates` in ops: x (..., I) -> (..., 4H), biases (and the input's layer norm) included."""
    H, spec = module.hidden_size, module.spec
    bias = None if weights.b_ih is None else to_numpy(weights.b_ih) + to_numpy(weights.b_hh)
    x_gates = graph.op("MatMul", [x, graph.const(to_numpy(weights.w_ih).T, "w_ih")], "x_gates")
    if spec.layer_norm:
        return _normalize_gates(graph, x_gates, to_numpy(weights.ln_ih), spec.coupled, bias, H)
    if bias is not None:
        x_gates = graph.op("Add", [x_gates, graph.const(bias, "bias")], "x_gates")
    return x_gates


def emit_cell_step(graph: Graph, cell, x: str, h: str, c: str) -> dict[str, str]:
    """An `lstmlab.LSTMCell` call in ops: x (B, I), h, c (B, H) -> {i, f, g, o, c, h: (B, H)}."""
    weights = layer_weights(cell, "")
    return _step(graph, cell, weights, input_gates(graph, cell, weights, x), h, c)


def _step(body: Graph, module, weights, gates_t: str, h_prev: str, c_prev: str) -> dict[str, str]:
    """`cell.lstm_step` then zoneout's expectation, in ops: field -> (B, ·)."""
    H, spec = module.hidden_size, module.spec
    recurrent = body.op("MatMul", [h_prev, body.const(to_numpy(weights.w_hh).T, "w_hh")], "recurrent")
    if spec.layer_norm:
        recurrent = _normalize_gates(body, recurrent, to_numpy(weights.ln_hh), spec.coupled, None, H)
    z = body.op("Add", [gates_t, recurrent], "z")
    z_i, z_f, z_g, z_o = body.split(z, [H] * 4, hint="z")
    if spec.peephole:
        p_i, p_f, p_o = np.split(to_numpy(weights.peephole), 3)
        z_i = body.op("Add", [z_i, body.op("Mul", [c_prev, body.const(p_i, "p_i")])], "z_i")
        z_f = body.op("Add", [z_f, body.op("Mul", [c_prev, body.const(p_f, "p_f")])], "z_f")
    removed = removed_parts(spec)  # Greff's variants: a removed gate is 1, a removed activation the identity

    def gate(z: str, part: str, name: str) -> str:
        if part in removed:
            return body.op("Expand", [body.const(1.0, "one"), body.op("Shape", [z])], name)  # ones_like(z)
        return body.op("Sigmoid", [z], name)

    i = gate(z_i, "input_gate", "i")
    f = body.op("Sub", [body.const(1.0, "one"), i], "f") if spec.coupled else gate(z_f, "forget_gate", "f")
    g = z_g if "input_activation" in removed else body.op("Tanh", [z_g], "g")
    c = body.op("Add", [body.op("Mul", [f, c_prev]), body.op("Mul", [i, g])], "c")
    if spec.peephole:
        z_o = body.op("Add", [z_o, body.op("Mul", [c, body.const(p_o, "p_o")])], "z_o")
    o = gate(z_o, "output_gate", "o")
    c_out = c
    if spec.layer_norm:
        c_out = body.layer_norm(c, to_numpy(weights.ln_c_weight), to_numpy(weights.ln_c_bias), LN_EPS)
    squashed = c_out if "output_activation" in removed else body.op("Tanh", [c_out])
    h = body.op("Mul", [o, squashed], "h")
    if weights.w_hr is not None:
        h = body.op("MatMul", [h, body.const(to_numpy(weights.w_hr).T, "w_hr")], "h")
    c = _zoneout(body, c, c_prev, spec.zoneout_c)
    h = _zoneout(body, h, h_prev, spec.zoneout_h)
    return {"i": i, "f": f, "g": g, "o": o, "c": c, "h": h}


def _zoneout(body: Graph, new: str, prev: str, rate: float) -> str:
    """Evaluation-form zoneout: rate * prev + (1 - rate) * new (as `cell.zoneout` with keep = rate)."""
    if rate == 0.0:
        return new
    kept = body.op("Mul", [body.const(rate, "zoneout"), prev])
    return body.op("Add", [kept, body.op("Mul", [body.const(1.0 - rate, "zoneout_new"), new])], "zoned")
