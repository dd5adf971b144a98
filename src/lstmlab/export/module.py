"""The ExportSpec of one `lstmlab.LSTM`: inputs x, h_0, c_0 (and lengths), outputs y, h_n, c_n (and the trace).

Graph inputs and outputs (T = "time", B = "batch", both dynamic; D, L, H, P as in `lstmlab.LSTM`):

    x    (T, B, I), or (B, T, I) for a batch_first module
    h_0  (D*L, B, P)      c_0 (D*L, B, H)
    lengths (B,) int64    only with lengths=True: row b is x[:lengths[b]] (packed semantics)
    ->  y (T, B, D*P) (batch_first: (B, T, D*P)), h_n (D*L, B, P), c_n (D*L, B, H)
        trace=True: trace_l{k}_{i,f,g,o,c,h} (T, B, D, H) per layer k ((B, T, D, H) batch_first;
        h has P features), as `lstmlab.Trace` fields

An `lstmlab.LSTMCell` is one step (`cell_spec`): x (B, I), h_0, c_0 (B, H) -> h_1, c_1
(B, H), and with trace=True trace_{i,f,g,o} (B, H), as its `LayerTrace`.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstmlab.cell import TRACE_FIELDS
from lstmlab.export.graph import FLOAT, INT64, Graph
from lstmlab.export.lstm import check_exportable, emit_cell_step, emit_lstm, uses_native_op
from lstmlab.export.spec import ExportSpec, describe


@contextmanager
def evaluation(module: torch.nn.Module):
    """`module` in eval mode without autograd for the block, its mode restored after."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(was_training)


def valid_mask(graph: Graph, lengths: str, like_time: str) -> str:
    """(T, B, 1) float mask from lengths (B,) int64 and a (T, B, ...) value giving T."""
    steps = graph.op("Gather", [graph.op("Shape", [like_time]), graph.ints(0, "zero")], "steps")
    time = graph.op("Range", [graph.ints(0, "zero"), steps, graph.ints(1, "one")], "time")  # (T,)
    valid = graph.op("Less", [graph.unsqueeze(time, [1]), graph.unsqueeze(lengths, [0])], "valid")  # (T, B)
    return graph.unsqueeze(graph.op("Cast", [valid], to=FLOAT), [2])


FORMS = {"auto": None, "lstm_op": True, "scan": False}  # form -> emit_lstm's `native`


def lstm_spec(module, *, trace: bool = False, lengths: bool = False, length: int = 8, form: str = "auto",
              name: str = "lstm") -> ExportSpec:
    """The ExportSpec of `module` (see the module docstring for the graph's interface).

    form: "auto" (the native LSTM op where it is exact, else Scan), "lstm_op" (ValueError
    where the op cannot express the module) or "scan"."""
    check_exportable(module)
    if form not in FORMS:
        raise ValueError(f"form: expected one of {sorted(FORMS)}, got {form!r}")
    D, L, H = 2 if module.bidirectional else 1, module.num_layers, module.hidden_size
    P, I, first = module.proj_size or H, module.input_size, module.batch_first
    graph = Graph("lstmlab_lstm")
    x_shape = ["batch", "time", I] if first else ["time", "batch", I]
    x = graph.input("x", FLOAT, x_shape)
    h0 = graph.input("h_0", FLOAT, [D * L, "batch", P])
    c0 = graph.input("c_0", FLOAT, [D * L, "batch", H])
    time_major = graph.op("Transpose", [x], "x_tbi", perm=[1, 0, 2]) if first else x
    valid = None
    if lengths:
        valid = valid_mask(graph, graph.input("lengths", INT64, ["batch"]), time_major)
    values = emit_lstm(graph, module, time_major, h0, c0, valid=valid, trace=trace, native=FORMS[form])
    y = graph.op("Transpose", [values.y], perm=[1, 0, 2]) if first else values.y
    outputs = [("y", y, x_shape[:2] + [D * P], "outputs"), ("h_n", values.h_n, [D * L, "batch", P], "states"),
               ("c_n", values.c_n, [D * L, "batch", H], "states")]
    for k, fields in enumerate(values.trace):
        for field in TRACE_FIELDS:
            value = graph.op("Transpose", [fields[field]], perm=[1, 0, 2, 3]) if first else fields[field]
            outputs.append((f"trace_l{k}_{field}", value, x_shape[:2] + [D, P if field == "h" else H], "trace"))
    for output_name, value, shape, _ in outputs:
        graph.output(output_name, value, FLOAT, shape)
    inputs = [{"name": "x", "dtype": "float32", "shape": x_shape},
              {"name": "h_0", "dtype": "float32", "shape": [D * L, "batch", P]},
              {"name": "c_0", "dtype": "float32", "shape": [D * L, "batch", H]}]
    if lengths:
        inputs.append({"name": "lengths", "dtype": "int64", "shape": ["batch"]})
    options = {"input_size": I, "hidden_size": H, "num_layers": L, "bidirectional": module.bidirectional,
               "proj_size": module.proj_size, "batch_first": first, "bias": module.bias,
               "variants": module.spec.variant_names(), "zoneout": [module.spec.zoneout_c, module.spec.zoneout_h],
               "trace": trace, "lengths": lengths, "recurrence": "LSTM op" if uses_native_op(module, trace, lengths)
               and form != "scan" else "Scan", "form": form}
    metadata = describe("lstm", inputs, [{"name": n, "dtype": "float32", "shape": s, "group": g}
                                         for n, _, s, g in outputs], length, module=options)
    model = graph.model(metadata, doc=f"lstmlab.LSTM({module.extra_repr()}), evaluation form")

    def sample(batch: int, steps: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        shape = (batch, steps, I) if first else (steps, batch, I)
        feeds = {"x": rng.standard_normal(shape, dtype=np.float32),
                 "h_0": rng.standard_normal((D * L, batch, P), dtype=np.float32) * 0.5,
                 "c_0": rng.standard_normal((D * L, batch, H), dtype=np.float32) * 0.5}
        if lengths:
            feeds["lengths"] = rng.integers(1, steps + 1, size=batch).astype(np.int64)
            feeds["lengths"][0] = steps  # one full row: the padded output keeps length T
        return feeds

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x_t = torch.from_numpy(feeds["x"])
        hx = (torch.from_numpy(feeds["h_0"]), torch.from_numpy(feeds["c_0"]))
        steps = x_t.shape[1 if first else 0]
        inputs_ = x_t
        if lengths:
            inputs_ = pack_padded_sequence(x_t, torch.from_numpy(feeds["lengths"]), batch_first=first,
                                           enforce_sorted=False)
        with evaluation(module):
            result = module(inputs_, hx, trace=trace)
        y_out, (h_n, c_n) = result[0], result[1]
        if lengths:
            y_out, _ = pad_packed_sequence(y_out, batch_first=first, total_length=steps)
        expected = {"y": y_out, "h_n": h_n, "c_n": c_n}
        if trace:
            for k, layer in enumerate(result[2]):
                expected.update({f"trace_l{k}_{field}": layer[field] for field in TRACE_FIELDS})
        return {key: value.numpy() for key, value in expected.items()}

    return ExportSpec(name, model, sample, reference)


def cell_spec(cell, *, trace: bool = False, name: str = "lstm_cell") -> ExportSpec:
    """The ExportSpec of an `lstmlab.LSTMCell` (one step; see the module docstring)."""
    check_exportable(cell)
    H, I = cell.hidden_size, cell.input_size
    graph = Graph("lstmlab_lstm_cell")
    x = graph.input("x", FLOAT, ["batch", I])
    h0 = graph.input("h_0", FLOAT, ["batch", H])
    c0 = graph.input("c_0", FLOAT, ["batch", H])
    values = emit_cell_step(graph, cell, x, h0, c0)
    outputs = [("h_1", "h", "states"), ("c_1", "c", "states")]
    outputs += [(f"trace_{field}", field, "trace") for field in ("i", "f", "g", "o")] if trace else []
    for output_name, field, _ in outputs:
        graph.output(output_name, values[field], FLOAT, ["batch", H])
    inputs = [{"name": n, "dtype": "float32", "shape": ["batch", I if n == "x" else H]} for n in ("x", "h_0", "c_0")]
    options = {"input_size": I, "hidden_size": H, "bias": cell.bias, "variants": cell.spec.variant_names(),
               "zoneout": [cell.spec.zoneout_c, cell.spec.zoneout_h], "trace": trace}
    metadata = describe("lstm_cell", inputs, [{"name": n, "dtype": "float32", "shape": ["batch", H], "group": g}
                                              for n, _, g in outputs], 8, one_step=True,
                        carry={"h_1": "h_0", "c_1": "c_0"}, step_inputs=["x"], module=options)
    model = graph.model(metadata, doc=f"lstmlab.LSTMCell({cell.extra_repr()}), evaluation form")

    def sample(batch: int, steps: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"x": rng.standard_normal((batch, I), dtype=np.float32),
                "h_0": rng.standard_normal((batch, H), dtype=np.float32) * 0.5,
                "c_0": rng.standard_normal((batch, H), dtype=np.float32) * 0.5}

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        hx = (torch.from_numpy(feeds["h_0"]), torch.from_numpy(feeds["c_0"]))
        with evaluation(cell):
            (h1, c1), layer = cell(torch.from_numpy(feeds["x"]), hx, trace=True)
        expected = {"h_1": h1, "c_1": c1, **{f"trace_{f}": layer[f] for f in ("i", "f", "g", "o")}}
        return {key: value.numpy() for key, value in expected.items()}

    return ExportSpec(name, model, sample, reference)
