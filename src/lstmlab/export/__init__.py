"""ONNX export of `lstmlab.LSTM` and of the recipes' inference graphs, checked in ONNX Runtime.

    import lstmlab.export
    lstmlab.export.to_onnx(lstm, "lstm.onnx")                  # x, h_0, c_0 -> y, h_n, c_n
    lstmlab.export.to_onnx(lstm, "traced.onnx", trace=True)    # + every gate and state
    lstmlab.export.to_onnx(cell, "cell.onnx")                  # an LSTMCell: x, h_0, c_0 -> h_1, c_1
    report = lstmlab.export.check_onnx("lstm.onnx", lstm)      # ONNX Runtime vs PyTorch
    print(report)                                              # max abs error per size and group

    lstmlab export RUN --format onnx [--out DIR] [--no-check]  # a trained run's graphs

Graphs are written op by op from the weights with `onnx.helper` (opset 17, no tracing):
deterministic, with dynamic batch and time axes, correct at any length. What maps to what:

    plain, peephole, coupled (no trace)      native ONNX ``LSTM`` op, one node per layer
                                             (gates reordered to ONNX's i, o, f, c; peepholes
                                             to p_i, p_o, p_f; coupled as input_forget=1)
    layer_norm, proj_size, zoneout, trace,   a ``Scan`` per layer and direction whose body is
    sequence lengths, Greff's removed        one `lstmlab.cell.lstm_step` in standard ops
    parts (input_gate=False, ...)            (LayerNormalization, MatMul, Sigmoid, Tanh, ...;
                                             a removed gate is ones, a removed activation identity)
    bidirectional                            LSTM op direction="bidirectional" / a reverse Scan
    multi-layer, batch_first                 layers chained; transposes at the graph's ends
    zoneout                                  its evaluation form c = z c_prev + (1 - z) c
    dropout, weight_drop                     training-only: the evaluation form has neither
    LSTMCell                                 one step in plain ops (no Scan)

``form="scan"`` forces the Scan form where the LSTM op would serve (``form="lstm_op"``
refuses, naming the option, what the op cannot express). A cell option this exporter does
not know is refused by name rather than dropped from the graph.

Recipe graphs (`Recipe.onnx_graphs(run)`, one `ExportSpec` each): lm ``lm_step``
(token, h, c) -> (logits, h, c); translation ``encoder`` (source, lengths) -> memory and the
decoder's initial state, ``decoder_step`` (token, state, memory) -> (log-probs, attention,
state); speech ``acoustic`` (features, lengths) -> CTC log-probs and ``acoustic_step`` (one
stack of frames, state) -> (log-probs, state) for a unidirectional model. `lstmlab.deploy`
runs an exported LM with numpy and onnxruntime only.

Every export is marked (producer "lstmlab", metadata ``lstmlab.export``: a JSON
description of inputs, outputs and options; `spec`); `check_onnx` refuses other files.
"""

from __future__ import annotations

from pathlib import Path

from lstmlab.export.check import TOLERANCE, CheckReport, check_onnx, max_abs_error
from lstmlab.export.lstm import ONNX_GATE_ORDER, ONNX_PEEPHOLE_ORDER, to_onnx_gate_order, to_onnx_peephole_order
from lstmlab.export.spec import ExportSpec, NotAnExport, load_export, read_description


def to_onnx(module, path: str | Path, *, trace: bool = False, lengths: bool = False, length: int = 8,
            form: str = "auto"):
    """Export `module` to ONNX; returns the path written (a dict name -> path for a model
    with several graphs, written into the folder `path`).

    module: an `lstmlab.LSTM` (inputs x, h_0, c_0 [, lengths]; outputs y, h_n, c_n [, trace_l{k}_{field}]:
    see `lstmlab.export.module`), an `lstmlab.LSTMCell` (one step: x, h_0, c_0 -> h_1, c_1), or a recipe model holding lstmlab.LSTMs (`LanguageModel`,
    `Seq2Seq`, `AcousticModel`: their graphs, see `lstmlab.export.recipes`).
    trace: add every gate and state as outputs; lengths: add a ``lengths`` (B,) input with
    packed-sequence semantics; length: the nominal length recorded for `check_onnx` (the graph
    itself runs at any length); form: "auto" (the native LSTM op where it is exact), "lstm_op"
    or "scan" (to force one form).
    ValueError, naming the option, for what cannot be exported.
    """
    import lstmlab
    from lstmlab.export.module import cell_spec, lstm_spec

    if isinstance(module, lstmlab.LSTM):
        return lstm_spec(module, trace=trace, lengths=lengths, length=length, form=form).save(path)
    if isinstance(module, lstmlab.LSTMCell):
        return cell_spec(module, trace=trace).save(path)
    from lstmlab.export import recipes  # imported on use: it imports the recipes' models

    specs = recipes.model_graphs(module)
    folder = Path(path)
    return {name: spec.save(folder / f"{name}.onnx") for name, spec in specs.items()}


__all__ = ["to_onnx", "check_onnx", "CheckReport", "ExportSpec", "NotAnExport", "TOLERANCE", "load_export",
           "read_description", "max_abs_error", "ONNX_GATE_ORDER", "ONNX_PEEPHOLE_ORDER", "to_onnx_gate_order",
           "to_onnx_peephole_order"]
