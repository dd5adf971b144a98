"""The recipes' inference graphs as ExportSpecs: what sits around the LSTM, written in ONNX ops.

A recipe's ``onnx_graphs(run)`` hook returns ``{name: ExportSpec}`` built here (a new
recipe writes its own builder on `Graph` and `emit_lstm`, with a sampler and a PyTorch
reference, and returns them from its hook). Batch, time and source axes are dynamic.

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
from onnx import helper

from lstmlab.export.graph import BOOL, FLOAT, INT64, Graph, to_numpy
from lstmlab.export.lstm import emit_lstm
from lstmlab.export.module import evaluation, valid_mask
from lstmlab.export.spec import ExportSpec, describe


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


def _require_lstm(module, what: str):
    import lstmlab

    if not isinstance(module, lstmlab.LSTM):
        raise ValueError(f"{what}: ONNX export covers models on lstmlab.LSTM; this one runs "
                         f"{type(module).__name__} (cell='gru'/'rnn' baselines have no lstmlab export)")
    return module


def _dim(graph: Graph, value: str, axis: int) -> str:
    """value.shape[axis] as an int64 (1,) tensor."""
    return graph.op("Gather", [graph.op("Shape", [value]), graph.ints([axis], "axis")], "dim")


def _zero_state(graph: Graph, batch: str, rows: int, width: int) -> str:
    """zeros (rows, B, width); batch is an int64 (1,) value."""
    shape = graph.op("Concat", [graph.ints([rows], "rows"), batch, graph.ints([width], "width")], axis=0)
    return graph.op("ConstantOfShape", [shape], "zeros", value=helper.make_tensor("zero", FLOAT, [1], [0.0]))


def _state_io(lstm) -> tuple[list, list]:
    """(inputs, outputs) descriptions of an LSTM state (h, c) -> (h_n, c_n)."""
    rows = lstm.num_layers * (2 if lstm.bidirectional else 1)
    P, H = lstm.proj_size or lstm.hidden_size, lstm.hidden_size
    inputs = [{"name": "h", "dtype": "float32", "shape": [rows, "batch", P]},
              {"name": "c", "dtype": "float32", "shape": [rows, "batch", H]}]
    outputs = [{"name": "h_n", "dtype": "float32", "shape": [rows, "batch", P], "group": "states"},
               {"name": "c_n", "dtype": "float32", "shape": [rows, "batch", H], "group": "states"}]
    return inputs, outputs


def _declare(graph: Graph, entries: list[dict]) -> None:
    types = {"float32": FLOAT, "int64": INT64, "bool": BOOL}
    for entry in entries:
        graph.input(entry["name"], types[entry["dtype"]], entry["shape"])


def _state_sample(lstm, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    rows = lstm.num_layers * (2 if lstm.bidirectional else 1)
    P, H = lstm.proj_size or lstm.hidden_size, lstm.hidden_size
    return {"h": rng.standard_normal((rows, batch, P), dtype=np.float32) * 0.5,
            "c": rng.standard_normal((rows, batch, H), dtype=np.float32) * 0.5}


def _tokenizer_files(tokenizer) -> dict[str, str | bytes]:
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
    lstm = _require_lstm(model.recurrent, "lm")
    graph = Graph("lstmlab_lm_step")
    state_in, state_out = _state_io(lstm)
    inputs = [{"name": "token", "dtype": "int64", "shape": ["batch"]}, *state_in]
    _declare(graph, inputs)
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
        return {"token": rng.integers(0, V, size=batch).astype(np.int64), **_state_sample(lstm, batch, rng)}

    def reference(feeds):
        with evaluation(model):
            logits, (h, c) = model.step(torch.from_numpy(feeds["token"]),
                                        (torch.from_numpy(feeds["h"]), torch.from_numpy(feeds["c"])))
        return {"logits": logits.numpy(), "h_n": h.numpy(), "c_n": c.numpy()}

    return ExportSpec("lm_step", onnx_model, sample, reference, _tokenizer_files(tokenizer))


# ------------------------------------------------------------------------- translation
def _token_sample(rng, batch: int, length: int, vocab: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Random tokens (B, S) other than pad, padded with pad beyond random lengths (row 0 full)."""
    tokens = rng.integers(0, vocab, size=(batch, length)).astype(np.int64)
    tokens[tokens == pad] = (pad + 1) % vocab
    lengths = rng.integers(1, length + 1, size=batch).astype(np.int64)
    lengths[0] = length
    tokens[np.arange(length)[None, :] >= lengths[:, None]] = pad
    return tokens, lengths


def encoder_spec(model) -> ExportSpec:
    """The translation encoder over a whole (padded) source batch (see the module docstring)."""
    lstm = _require_lstm(model.encoder, "translation encoder")
    _require_lstm(model.decoder, "translation decoder")
    config, graph = model.config, Graph("lstmlab_translation_encoder")
    D, L_dec, H_dec = 2 if config.bidirectional else 1, config.decoder_layers, model.decoder_hidden
    inputs = [{"name": "source", "dtype": "int64", "shape": ["batch", "source"]},
              {"name": "lengths", "dtype": "int64", "shape": ["batch"]}]
    _declare(graph, inputs)
    source = "source"
    steps = _dim(graph, source, 1)
    positions = graph.unsqueeze(graph.op("Range", [graph.ints(0, "zero"), graph.squeeze(steps, [0]),
                                                   graph.ints(1, "one")]), [0])  # (1, S)
    lengths_column = graph.unsqueeze("lengths", [1])  # (B, 1)
    valid_bs = graph.op("Less", [positions, lengths_column], "mask")  # (B, S)
    if config.reverse_source:  # each row's first lengths[b] tokens reversed (`reverse_padded`)
        reversed_index = graph.op("Sub", [graph.op("Sub", [lengths_column, graph.ints(1, "one")]), positions])
        index = graph.op("Where", [valid_bs, reversed_index, graph.op("Expand", [positions, graph.op("Shape", [source])])])
        source = graph.op("GatherElements", [source, index], "source", axis=1)
    embedded = graph.op("Gather", [graph.const(to_numpy(model.source_embedding.weight), "embedding"), source], axis=0)
    time_major = graph.op("Transpose", [embedded], perm=[1, 0, 2])  # (S, B, E)
    rows, H_enc = D * lstm.num_layers, lstm.hidden_size
    zeros = _zero_state(graph, _dim(graph, source, 0), rows, H_enc)
    values = emit_lstm(graph, lstm, time_major, zeros, zeros, valid=valid_mask(graph, "lengths", time_major))
    outputs = graph.op("Transpose", [values.y], perm=[1, 0, 2])  # (B, S, D*H_enc)
    memory = outputs if isinstance(model.memory, torch.nn.Identity) else \
        graph.linear(outputs, to_numpy(model.memory.weight), None, "memory")
    keys = memory if model.score_keys is None else graph.linear(memory, to_numpy(model.score_keys.weight), None, "keys")
    states = []
    for index, (final, linear) in enumerate(zip((values.h_n, values.c_n), model.bridge)):
        top = graph.op("Slice", [final, graph.ints([rows - D], "start"), graph.ints([rows], "end"),
                                 graph.ints([0], "axis")])  # (D, B, H_enc): the top layer's directions
        top = graph.op("Reshape", [graph.op("Transpose", [top], perm=[1, 0, 2]), graph.ints([0, -1], "shape")])
        mapped = graph.linear(top, to_numpy(linear.weight), to_numpy(linear.bias), "bridge")  # (B, L*H_dec)
        mapped = graph.op("Reshape", [mapped, graph.ints([0, L_dec, H_dec], "shape")])
        mapped = graph.op("Transpose", [mapped], perm=[1, 0, 2])  # (L_dec, B, H_dec)
        states.append(graph.op("Tanh", [mapped]) if index == 0 else mapped)
    width = memory_width(model)
    out = [("memory_values", memory, FLOAT, ["batch", "source", width]),
           ("memory_keys", keys, FLOAT, ["batch", "source", width]),
           ("memory_mask", valid_bs, BOOL, ["batch", "source"]),
           ("h_0", states[0], FLOAT, [L_dec, "batch", H_dec]), ("c_0", states[1], FLOAT, [L_dec, "batch", H_dec])]
    for name, value, kind, shape in out:
        graph.output(name, value, kind, shape)
    groups = {"memory_values": "outputs", "memory_keys": "outputs", "memory_mask": "outputs"}
    described = [{"name": n, "dtype": {FLOAT: "float32", BOOL: "bool"}[k], "shape": s, "group": groups.get(n, "states")}
                 for n, _, k, s in out]
    metadata = describe("translation_encoder", inputs, described, 8, pad_id=model.pad_id)
    onnx_model = graph.model(metadata, doc="lstmlab translation recipe: the encoder over a padded source batch")

    def sample(batch: int, length: int, rng: np.random.Generator):
        tokens, lengths = _token_sample(rng, batch, length, model.vocab_size, model.pad_id)
        return {"source": tokens, "lengths": lengths}

    def reference(feeds):
        with evaluation(model):
            memory_ = model.encode(torch.from_numpy(feeds["source"]), torch.from_numpy(feeds["lengths"]))
        return {"memory_values": memory_.values.numpy(), "memory_keys": memory_.keys.numpy(),
                "memory_mask": memory_.mask.numpy(), "h_0": memory_.state[0].numpy(), "c_0": memory_.state[1].numpy()}

    return ExportSpec("encoder", onnx_model, sample, reference)


def memory_width(model) -> int:
    """The width of the encoder's memory values and keys: H_dec, or D*H_enc without attention."""
    if isinstance(model.memory, torch.nn.Identity):
        return (2 if model.config.bidirectional else 1) * model.encoder_hidden
    return model.decoder_hidden


def _attend(graph: Graph, model, hidden: str) -> tuple[str, str | None]:
    """`Seq2Seq.attend` for one step: hidden (B, H) -> (h̃ (B, E), weights (B, S) or None)."""
    config = model.config
    W_c = to_numpy(model.combine.weight)
    if config.attention == "none":
        return graph.op("Tanh", [graph.linear(hidden, W_c, None, "combine")]), None
    if config.attention == "concat":
        query = graph.linear(hidden, to_numpy(model.score_query.weight), to_numpy(model.score_query.bias), "query")
        joint = graph.op("Tanh", [graph.op("Add", [graph.unsqueeze(query, [1]), "memory_keys"])])  # (B, S, H)
        scores = graph.squeeze(graph.linear(joint, to_numpy(model.score_vector.weight), None, "score"), [2])
    else:  # dot / general: h_t . k_s
        scores = graph.squeeze(graph.op("MatMul", ["memory_keys", graph.unsqueeze(hidden, [2])]), [2])  # (B, S)
    scores = graph.op("Where", ["memory_mask", scores, graph.const(-np.inf, "minus_inf")], "scores")
    weights = graph.op("Softmax", [scores], "attention", axis=-1)
    context = graph.squeeze(graph.op("MatMul", [graph.unsqueeze(weights, [1]), "memory_values"]), [1])  # (B, H)
    joined = graph.op("Concat", [context, hidden], axis=-1)
    return graph.op("Tanh", [graph.linear(joined, W_c, None, "combine")]), weights


def decoder_step_spec(model) -> ExportSpec:
    """One decoder step with attention over the encoder's memory (see the module docstring)."""
    lstm = _require_lstm(model.decoder, "translation decoder")
    config, graph = model.config, Graph("lstmlab_translation_decoder_step")
    E, V, K = config.embedding_size, model.vocab_size, memory_width(model)
    attending = config.attention != "none"  # without attention the step reads no memory
    state_in, state_out = _state_io(lstm)
    feeding = config.input_feeding
    inputs = [{"name": "token", "dtype": "int64", "shape": ["batch"]}, *state_in]
    if feeding:
        inputs.append({"name": "feed", "dtype": "float32", "shape": ["batch", E]})
    if attending:
        inputs += [{"name": "memory_values", "dtype": "float32", "shape": ["batch", "source", K]},
                   {"name": "memory_keys", "dtype": "float32", "shape": ["batch", "source", K]},
                   {"name": "memory_mask", "dtype": "bool", "shape": ["batch", "source"]}]
    _declare(graph, inputs)
    x = graph.op("Gather", [graph.const(to_numpy(model.target_embedding.weight), "embedding"), "token"], axis=0)
    if feeding:
        x = graph.op("Concat", [x, "feed"], axis=-1)
    values = emit_lstm(graph, lstm, graph.unsqueeze(x, [0]), "h", "c")
    attentional, weights = _attend(graph, model, graph.squeeze(values.y, [0]))
    out_weight = model.target_embedding.weight if model.output_weight is None else model.output_weight
    logits = graph.linear(attentional, to_numpy(out_weight), to_numpy(model.output_bias), "logits")
    pad_mask = np.zeros(V, np.float32)
    pad_mask[model.pad_id] = -np.inf  # the padding token is never predicted
    logits = graph.op("Add", [logits, graph.const(pad_mask, "pad_mask")])
    log_probs = graph.op("LogSoftmax", [logits], "log_probs", axis=-1)
    outputs = [{"name": "log_probs", "dtype": "float32", "shape": ["batch", V], "group": "outputs"}]
    graph.output("log_probs", log_probs, FLOAT, ["batch", V])
    if weights is not None:
        graph.output("attention", weights, FLOAT, ["batch", "source"])
        outputs.append({"name": "attention", "dtype": "float32", "shape": ["batch", "source"], "group": "outputs"})
    graph.output("h_n", values.h_n, FLOAT, state_out[0]["shape"])
    graph.output("c_n", values.c_n, FLOAT, state_out[1]["shape"])
    outputs += state_out
    if feeding:
        graph.output("feed_out", attentional, FLOAT, ["batch", E])
        outputs.append({"name": "feed_out", "dtype": "float32", "shape": ["batch", E], "group": "states"})
    carry = {"h_n": "h", "c_n": "c", **({"feed_out": "feed"} if feeding else {})}
    metadata = describe("translation_decoder_step", inputs, outputs, 8, one_step=not attending, chain_steps=3,
                        carry=carry, step_inputs=["token"], pad_id=model.pad_id, vocab_size=V)
    onnx_model = graph.model(metadata, doc="lstmlab translation recipe: one decoder step with attention")

    def sample(batch: int, length: int, rng: np.random.Generator):
        feeds = {"token": rng.integers(0, V, size=batch).astype(np.int64), **_state_sample(lstm, batch, rng)}
        if feeding:
            feeds["feed"] = np.tanh(rng.standard_normal((batch, E), dtype=np.float32))
        if attending:
            _, lengths = _token_sample(rng, batch, length, V, model.pad_id)
            feeds["memory_values"] = rng.standard_normal((batch, length, K), dtype=np.float32)
            feeds["memory_keys"] = rng.standard_normal((batch, length, K), dtype=np.float32)
            feeds["memory_mask"] = np.arange(length)[None, :] < lengths[:, None]
        return feeds

    def reference(feeds):
        from lstmlab.models.seq2seq import DecoderState, Memory

        t = {name: torch.from_numpy(value) for name, value in feeds.items()}
        memory = Memory(t["memory_values"], t["memory_keys"], t["memory_mask"], None) if attending else None
        state = DecoderState((t["h"], t["c"]), t.get("feed"))
        with evaluation(model):
            log_probs_, weights_, state = model.step(memory, t["token"], state)
        expected = {"log_probs": log_probs_.numpy(), "h_n": state.recurrent[0].numpy(),
                    "c_n": state.recurrent[1].numpy()}
        if weights_ is not None:
            expected["attention"] = weights_.numpy()
        if feeding:
            expected["feed_out"] = state.feed.numpy()
        return expected

    return ExportSpec("decoder_step", onnx_model, sample, reference)


# ------------------------------------------------------------------------- speech
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
    lstm = _require_lstm(model.recurrent, "speech")
    graph, k, F = Graph("lstmlab_speech_acoustic"), model.config.stack, model.n_features
    V = model.n_labels
    inputs = [{"name": "features", "dtype": "float32", "shape": ["batch", "time", F]},
              {"name": "lengths", "dtype": "int64", "shape": ["batch"]}]
    _declare(graph, inputs)
    frames = _dim(graph, "features", 1)  # (1,)
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
    batch = _dim(graph, "features", 0)
    h0 = _zero_state(graph, batch, rows, lstm.proj_size or lstm.hidden_size)
    c0 = _zero_state(graph, batch, rows, lstm.hidden_size)
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
    lstm = _require_lstm(model.recurrent, "speech")
    if lstm.bidirectional or model.config.normalization != "global":
        raise ValueError("acoustic_step: the streaming step needs a unidirectional model with global "
                         f"normalisation, this one has bidirectional={lstm.bidirectional}, "
                         f"normalization={model.config.normalization!r}")
    graph, k, F, V = Graph("lstmlab_speech_step"), model.config.stack, model.n_features, model.n_labels
    state_in, state_out = _state_io(lstm)
    inputs = [{"name": "frames", "dtype": "float32", "shape": ["batch", k, F]}, *state_in]
    _declare(graph, inputs)
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
        return {"frames": frames, **_state_sample(lstm, batch, rng)}

    def reference(feeds):
        with evaluation(model):
            frames = torch.from_numpy(feeds["frames"])
            row = ((frames - model.feature_mean) / model.feature_std).reshape(frames.shape[0], k * F)
            top, (h, c) = model.lstm.step(row, (torch.from_numpy(feeds["h"]), torch.from_numpy(feeds["c"])))
            log_probs = model.step_logits(top)
        return {"log_probs": log_probs.numpy(), "h_n": h.numpy(), "c_n": c.numpy()}

    return ExportSpec("acoustic_step", onnx_model, sample, reference)
