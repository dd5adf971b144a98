"""Graph pieces that the recipes' export builders share: LSTM state inputs and outputs,
zero states, shapes, and the random samples the export check feeds."""

from __future__ import annotations

import numpy as np
from onnx import helper

from lstmlab.export.graph import BOOL, FLOAT, INT64, Graph


def require_lstm(module, what: str):
    import lstmlab

    if not isinstance(module, lstmlab.LSTM):
        raise ValueError(f"{what}: ONNX export covers models on lstmlab.LSTM; this one runs "
                         f"{type(module).__name__} (cell='gru'/'rnn' baselines have no lstmlab export)")
    return module


def dim(graph: Graph, value: str, axis: int) -> str:
    """value.shape[axis] as an int64 (1,) tensor."""
    return graph.op("Gather", [graph.op("Shape", [value]), graph.ints([axis], "axis")], "dim")


def zero_state(graph: Graph, batch: str, rows: int, width: int) -> str:
    """zeros (rows, B, width); batch is an int64 (1,) value."""
    shape = graph.op("Concat", [graph.ints([rows], "rows"), batch, graph.ints([width], "width")], axis=0)
    return graph.op("ConstantOfShape", [shape], "zeros", value=helper.make_tensor("zero", FLOAT, [1], [0.0]))


def state_io(lstm) -> tuple[list, list]:
    """(inputs, outputs) descriptions of an LSTM state (h, c) -> (h_n, c_n)."""
    rows = lstm.num_layers * (2 if lstm.bidirectional else 1)
    P, H = lstm.proj_size or lstm.hidden_size, lstm.hidden_size
    inputs = [{"name": "h", "dtype": "float32", "shape": [rows, "batch", P]},
              {"name": "c", "dtype": "float32", "shape": [rows, "batch", H]}]
    outputs = [{"name": "h_n", "dtype": "float32", "shape": [rows, "batch", P], "group": "states"},
               {"name": "c_n", "dtype": "float32", "shape": [rows, "batch", H], "group": "states"}]
    return inputs, outputs


def declare(graph: Graph, entries: list[dict]) -> None:
    types = {"float32": FLOAT, "int64": INT64, "bool": BOOL}
    for entry in entries:
        graph.input(entry["name"], types[entry["dtype"]], entry["shape"])


def state_sample(lstm, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    rows = lstm.num_layers * (2 if lstm.bidirectional else 1)
    P, H = lstm.proj_size or lstm.hidden_size, lstm.hidden_size
    return {"h": rng.standard_normal((rows, batch, P), dtype=np.float32) * 0.5,
            "c": rng.standard_normal((rows, batch, H), dtype=np.float32) * 0.5}


def token_sample(rng, batch: int, length: int, vocab: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Random tokens (B, S) other than pad, padded with pad beyond random lengths (row 0 full)."""
    tokens = rng.integers(0, vocab, size=(batch, length)).astype(np.int64)
    tokens[tokens == pad] = (pad + 1) % vocab
    lengths = rng.integers(1, length + 1, size=batch).astype(np.int64)
    lengths[0] = length
    tokens[np.arange(length)[None, :] >= lengths[:, None]] = pad
    return tokens, lengths
