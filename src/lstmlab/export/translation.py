"""The translation model's graphs (`encoder`, `decoder_step`; see `lstmlab.export.recipes`)."""

from __future__ import annotations

import numpy as np
import torch

from lstmlab.export.graph import BOOL, FLOAT, Graph, to_numpy
from lstmlab.export.lstm import emit_lstm
from lstmlab.export.module import evaluation, valid_mask
from lstmlab.export.parts import declare, dim, require_lstm, state_io, state_sample, token_sample, zero_state
from lstmlab.export.spec import ExportSpec, describe


def encoder_spec(model) -> ExportSpec:
    """The translation encoder over a whole (padded) source batch (see the module docstring)."""
    lstm = require_lstm(model.encoder, "translation encoder")
    require_lstm(model.decoder, "translation decoder")
    config, graph = model.config, Graph("lstmlab_translation_encoder")
    D, L_dec, H_dec = 2 if config.bidirectional else 1, config.decoder_layers, model.decoder_hidden
    inputs = [{"name": "source", "dtype": "int64", "shape": ["batch", "source"]},
              {"name": "lengths", "dtype": "int64", "shape": ["batch"]}]
    declare(graph, inputs)
    source = "source"
    steps = dim(graph, source, 1)
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
    zeros = zero_state(graph, dim(graph, source, 0), rows, H_enc)
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
        tokens, lengths = token_sample(rng, batch, length, model.vocab_size, model.pad_id)
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
    lstm = require_lstm(model.decoder, "translation decoder")
    config, graph = model.config, Graph("lstmlab_translation_decoder_step")
    E, V, K = config.embedding_size, model.vocab_size, memory_width(model)
    attending = config.attention != "none"  # without attention the step reads no memory
    state_in, state_out = state_io(lstm)
    feeding = config.input_feeding
    inputs = [{"name": "token", "dtype": "int64", "shape": ["batch"]}, *state_in]
    if feeding:
        inputs.append({"name": "feed", "dtype": "float32", "shape": ["batch", E]})
    if attending:
        inputs += [{"name": "memory_values", "dtype": "float32", "shape": ["batch", "source", K]},
                   {"name": "memory_keys", "dtype": "float32", "shape": ["batch", "source", K]},
                   {"name": "memory_mask", "dtype": "bool", "shape": ["batch", "source"]}]
    declare(graph, inputs)
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
        feeds = {"token": rng.integers(0, V, size=batch).astype(np.int64), **state_sample(lstm, batch, rng)}
        if feeding:
            feeds["feed"] = np.tanh(rng.standard_normal((batch, E), dtype=np.float32))
        if attending:
            _, lengths = token_sample(rng, batch, length, V, model.pad_id)
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
