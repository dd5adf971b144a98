"""The recipes' inference graphs as ExportSpecs: what sits around the LSTM, written in ONNX ops.

A recipe's ``onnx_graphs(run)`` hook returns ``{name: ExportSpec}`` from `model_graphs`:
the LM step is built here, translation's graphs in `export.translation`, speech's in
`export.acoustic`, on the shared pieces of `export.parts` (a new recipe writes its own
builder on `Graph` and `emit_lstm`, with a sampler and a PyTorch reference, and returns
them from its hook). Batch, time and source axes are dynamic.

    lm_step        token (B,) int64, h (L, B, P), c (L, B, H) -> logits (B, V), h_n, c_n
    encoder        source (B, S) int64, lengths (B,) int64 -> memory_values (B, S, K),
                   memory_keys (B, S, K), memory_mask (B, S) bool, h_0, c_0 (L_dec, B, H_dec);
                   K = H_dec, or the encoder width D*H_enc for attention "none"
    decoder_step   token (B,), h, c (L_dec, B, H_dec)[, feed (B, E)], memory_values, memory_keys,
                   memory_mask -> log_probs (B, V), [attention (B, S)], h_n, c_n[, feed_out (B, E)]
    acoustic       features (B, T, F) log-mel, lengths (B,) -> log_probs (B, ceil(T/k), V), out_lengths (B,)
    acoustic_step  frames (B, k, F) (one stack, raw log-mel), h, c -> log_probs (B, V), h_n, c_n
                   (unidirectional models with global normalisation; pad the last stack with
                   the description's ``pad_frame``, the training mean, which normalises to 0)

Drivers: the LM step is fed one token per stream (`lstmlab.deploy`); translation runs the
encoder once and the decoder step per target token (greedy: argmax, feed the token back,
with input feeding pass feed_out as the next feed); streaming speech runs the step per
stack of k frames. The padding token's log-probability is -inf, as in `Seq2Seq.step`.
"""

from __future__ import annotations

import json

import numpy as np
import torch

from lstmlab.export.acoustic import acoustic_spec, acoustic_step_spec
from lstmlab.export.graph import FLOAT, Graph, to_numpy
from lstmlab.export.lstm import emit_lstm
from lstmlab.export.module import evaluation
from lstmlab.export.parts import declare, require_lstm, state_io, state_sample
from lstmlab.export.spec import ExportSpec, describe
from lstmlab.export.translation import decoder_step_spec, encoder_spec


def model_graphs(model, **components) -> dict[str, ExportSpec]:
    """The graphs of a recipe model (LanguageModel, Seq2Seq, AcousticModel)."""
    from lstmlab.models.acoustic import AcousticModel
    from lstmlab.models.lm import LanguageModel
    from lstmlab.models.seq2seq import Seq2Seq

    if isinstance(model, LanguageModel):
        return {"lm_step": lm_step_spec(model, components.get("tokenizer"))}
    if isinstance(model, Seq2Seq):
        return {"encoder": encoder_spec(model), "decoder_step": decoder_step_spec(model)}
    if isinstance(model, AcousticModel):
        specs = {"acoustic": acoustic_spec(model)}
        if not model.config.bidirectional and model.config.normalization == "global":
            specs["acoustic_step"] = acoustic_step_spec(model)
        return specs
    raise ValueError(f"expected an lstmlab.LSTM, LSTMCell or a recipe model (LanguageModel, Seq2Seq, AcousticModel), "
                     f"got {type(model).__name__}")


def tokenizer_files(tokenizer) -> dict[str, str | bytes]:
    """tokenizer.json (and tokenizer.model for BPE) for `lstmlab.deploy`, without torch."""
    if tokenizer is None:
        return {}
    state = tokenizer.to_dict()
    if state["kind"] == "char":
        return {"tokenizer.json": json.dumps({"kind": "char", "symbols": state["symbols"]}) + "\n"}
    return {"tokenizer.json": json.dumps({"kind": "bpe", "model": "tokenizer.model"}) + "\n",
            "tokenizer.model": bytes(tokenizer.model_bytes)}


# ------------------------------------------------------------------------- lm

def lm_step_spec(model, tokenizer=None) -> ExportSpec:
    """The LM step: (token, h, c) -> (logits, h_n, c_n) (see the module docstring)."""
    lstm = require_lstm(model.recurrent, "lm")
    graph = Graph("lstmlab_lm_step")
    state_in, state_out = state_io(lstm)
    inputs = [{"name": "token", "dtype": "int64", "shape": ["batch"]}, *state_in]
    declare(graph, inputs)
    embedded = graph.op("Gather", [graph.const(to_numpy(model.embedding.weight), "embedding"), "token"], axis=0)
    values = emit_lstm(graph, lstm, graph.unsqueeze(embedded, [0]), "h", "c")  # (1, B, E) -> (1, B, H)
    features = graph.squeeze(values.y, [0])
    if model.projection is not None:
        features = graph.linear(features, to_numpy(model.projection.weight), to_numpy(model.projection.bias), "proj")
    logits = graph.linear(features, to_numpy(model.decoder.weight), to_numpy(model.decoder.bias), "decoder")
    V = model.vocab_size
    graph.output("logits", logits, FLOAT, ["batch", V])
    graph.output("h_n", values.h_n, FLOAT, state_out[0]["shape"])
    graph.output("c_n", values.c_n, FLOAT, state_out[1]["shape"])
    outputs = [{"name": "logits", "dtype": "float32", "shape": ["batch", V], "group": "outputs"}, *state_out]
    metadata = describe("lm_step", inputs, outputs, 8, one_step=True, carry={"h_n": "h", "c_n": "c"},
                        step_inputs=["token"], vocab_size=V)
    onnx_model = graph.model(metadata, doc="lstmlab lm recipe: one step of the language model")

    def sample(batch: int, length: int, rng: np.random.Generator):
        return {"token": rng.integers(0, V, size=batch).astype(np.int64), **state_sample(lstm, batch, rng)}

    def reference(feeds):
        with evaluation(model):
            logits, (h, c) = model.step(torch.from_numpy(feeds["token"]),
                                        (torch.from_numpy(feeds["h"]), torch.from_numpy(feeds["c"])))
        return {"logits": logits.numpy(), "h_n": h.numpy(), "c_n": c.numpy()}

    return ExportSpec("lm_step", onnx_model, sample, reference, tokenizer_files(tokenizer))


# ------------------------------------------------------------------------- translation
