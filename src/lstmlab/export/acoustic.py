"""The acoustic model's graphs (`acoustic`, `acoustic_step`; see `lstmlab.export.recipes`)."""

from __future__ import annotations

import numpy as np
import torch

from lstmlab.export.graph import FLOAT, INT64, Graph, to_numpy
from lstmlab.export.lstm import emit_lstm
from lstmlab.export.module import evaluation, valid_mask
from lstmlab.export.parts import declare, dim, require_lstm, state_io, state_sample, zero_state
from lstmlab.export.spec import ExportSpec, describe


def _normalize(graph: Graph, model, features: str, valid: str) -> str:
    """`AcousticModel.normalize`: (B, T, F) -> normalised (B, T, F), padding frames 0; valid (B, T, 1)."""
    if model.config.normalization == "global":
        mean, std = to_numpy(model.feature_mean), to_numpy(model.feature_std)
        normalised = graph.op("Div", [graph.op("Sub", [features, graph.const(mean, "mean")]), graph.const(std, "std")])
    else:
        count = graph.op("Max", [graph.op("ReduceSum", [valid, graph.ints([1], "axes")], keepdims=1),
                                 graph.const(1.0, "one")])  # (B, 1, 1): lengths.clamp_min(1)
        total = graph.op("ReduceSum", [graph.op("Mul", [features, valid]), graph.ints([1], "axes")], keepdims=1)
        mean = graph.op("Div", [total, count], "mean")
        centred = graph.op("Sub", [features, mean])
        masked = graph.op("Mul", [centred, valid])
        var = graph.op("Div", [graph.op("ReduceSum", [graph.op("Mul", [masked, masked]), graph.ints([1], "axes")],
                                        keepdims=1), count], "var")
        normalised = graph.op("Div", [centred, graph.op("Max", [graph.op("Sqrt", [var]), graph.const(1e-5, "eps")])])
    return graph.op("Mul", [normalised, valid], "normalised")


def acoustic_spec(model) -> ExportSpec:
    """The acoustic model on whole utterances: log-mel (B, T, F), lengths -> CTC log-probs."""
    lstm = require_lstm(model.recurrent, "speech")
    graph, k, F = Graph("lstmlab_speech_acoustic"), model.config.stack, model.n_features
    V = model.n_labels
    inputs = [{"name": "features", "dtype": "float32", "shape": ["batch", "time", F]},
              {"name": "lengths", "dtype": "int64", "shape": ["batch"]}]
    declare(graph, inputs)
    frames = dim(graph, "features", 1)  # (1,)
    positions = graph.op("Range", [graph.ints(0, "zero"), graph.squeeze(frames, [0]), graph.ints(1, "one")])
    valid = graph.op("Less", [graph.unsqueeze(positions, [0]), graph.unsqueeze("lengths", [1])])  # (B, T)
    valid = graph.unsqueeze(graph.op("Cast", [valid], to=FLOAT), [2])  # (B, T, 1)
    normalised = _normalize(graph, model, "features", valid)
    pad = graph.op("Mod", [graph.op("Sub", [graph.ints([k], "k"), graph.op("Mod", [frames, graph.ints([k], "k")])]),
                           graph.ints([k], "k")])  # (k - T % k) % k frames of zeros at the end
    pads = graph.op("Concat", [graph.ints([0, 0, 0, 0], "pads"), pad, graph.ints([0], "pads")], axis=0)
    stacked = graph.op("Reshape", [graph.op("Pad", [normalised, pads]), graph.ints([0, -1, k * F], "shape")])
    out_lengths = graph.op("Div", [graph.op("Add", ["lengths", graph.ints(k - 1, "k1")]), graph.ints(k, "k")])
    time_major = graph.op("Transpose", [stacked], perm=[1, 0, 2])  # (T', B, kF)
    rows = lstm.num_layers * (2 if lstm.bidirectional else 1)
    batch = dim(graph, "features", 0)
    h0 = zero_state(graph, batch, rows, lstm.proj_size or lstm.hidden_size)
    c0 = zero_state(graph, batch, rows, lstm.hidden_size)
    values = emit_lstm(graph, lstm, time_major, h0, c0, valid=valid_mask(graph, out_lengths, time_major))
    top = graph.op("Transpose", [values.y], perm=[1, 0, 2])  # (B, T', D*P)
    logits = graph.linear(top, to_numpy(model.output.weight), to_numpy(model.output.bias), "output")
    graph.output("log_probs", graph.op("LogSoftmax", [logits], axis=-1), FLOAT, ["batch", "steps", V])
    graph.output("out_lengths", out_lengths, INT64, ["batch"])
    outputs = [{"name": "log_probs", "dtype": "float32", "shape": ["batch", "steps", V], "group": "outputs"},
               {"name": "out_lengths", "dtype": "int64", "shape": ["batch"], "group": "outputs"}]
    metadata = describe("speech_acoustic", inputs, outputs, 4 * k, stack=k, blank=0)
    onnx_model = graph.model(metadata, doc="lstmlab speech recipe: the acoustic model on whole utterances")

    def sample(batch: int, length: int, rng: np.random.Generator):
        lengths = rng.integers(1, length + 1, size=batch).astype(np.int64)
        lengths[0] = length
        features = rng.standard_normal((batch, length, F), dtype=np.float32) * 2.0 - 4.0
        return {"features": features, "lengths": lengths}

    def reference(feeds):
        with evaluation(model):
            log_probs, out = model(torch.from_numpy(feeds["features"]), torch.from_numpy(feeds["lengths"]))
        return {"log_probs": log_probs.numpy(), "out_lengths": out.numpy()}

    return ExportSpec("acoustic", onnx_model, sample, reference)


def acoustic_step_spec(model) -> ExportSpec:
    """The streaming step: one stack of k raw frames (B, k, F) and the state -> log-probs (B, V)."""
    lstm = require_lstm(model.recurrent, "speech")
    if lstm.bidirectional or model.config.normalization != "global":
        raise ValueError("acoustic_step: the streaming step needs a unidirectional model with global "
                         f"normalisation, this one has bidirectional={lstm.bidirectional}, "
                         f"normalization={model.config.normalization!r}")
    graph, k, F, V = Graph("lstmlab_speech_step"), model.config.stack, model.n_features, model.n_labels
    state_in, state_out = state_io(lstm)
    inputs = [{"name": "frames", "dtype": "float32", "shape": ["batch", k, F]}, *state_in]
    declare(graph, inputs)
    mean, std = to_numpy(model.feature_mean), to_numpy(model.feature_std)
    normalised = graph.op("Div", [graph.op("Sub", ["frames", graph.const(mean, "mean")]), graph.const(std, "std")])
    row = graph.op("Reshape", [normalised, graph.ints([0, k * F], "shape")])  # (B, kF)
    values = emit_lstm(graph, lstm, graph.unsqueeze(row, [0]), "h", "c")
    logits = graph.linear(graph.squeeze(values.y, [0]), to_numpy(model.output.weight), to_numpy(model.output.bias),
                          "output")
    graph.output("log_probs", graph.op("LogSoftmax", [logits], axis=-1), FLOAT, ["batch", V])
    graph.output("h_n", values.h_n, FLOAT, state_out[0]["shape"])
    graph.output("c_n", values.c_n, FLOAT, state_out[1]["shape"])
    outputs = [{"name": "log_probs", "dtype": "float32", "shape": ["batch", V], "group": "outputs"}, *state_out]
    metadata = describe("speech_acoustic_step", inputs, outputs, 8, one_step=True, carry={"h_n": "h", "c_n": "c"},
                        step_inputs=["frames"], stack=k, blank=0,
                        pad_frame=[float(v) for v in mean])
    onnx_model = graph.model(metadata, doc="lstmlab speech recipe: one streaming step (k frames)")

    def sample(batch: int, length: int, rng: np.random.Generator):
        frames = rng.standard_normal((batch, k, F), dtype=np.float32) * 2.0 - 4.0
        return {"frames": frames, **state_sample(lstm, batch, rng)}

    def reference(feeds):
        with evaluation(model):
            frames = torch.from_numpy(feeds["frames"])
            row = ((frames - model.feature_mean) / model.feature_std).reshape(frames.shape[0], k * F)
            top, (h, c) = model.lstm.step(row, (torch.from_numpy(feeds["h"]), torch.from_numpy(feeds["c"])))
            log_probs = model.step_logits(top)
        return {"log_probs": log_probs.numpy(), "h_n": h.numpy(), "c_n": c.numpy()}

    return ExportSpec("acoustic_step", onnx_model, sample, reference)
