"""The recurrent stack every model here builds on: `lstmlab.LSTM`, or torch's GRU / tanh RNN.

`recurrent_stack(cell, input_size, hidden_size, ...)` returns an ``nn.Module`` with the
``torch.nn.LSTM`` calling convention (``output, state = module(x, state)``); the LSTM
options (``peephole``, ``layer_norm``, ``coupled``, ...) go to `lstmlab.LSTM` and are
refused, naming them, for the baselines that have no such part.
"""

from __future__ import annotations

from typing import Any

from torch import nn

import lstmlab

CELLS = ("lstm", "gru", "rnn")
LSTM_OPTIONS_OFF = {"peephole": False, "layer_norm": False, "coupled": False, "forget_bias": 0.0,
                    "zoneout": 0.0, "weight_drop": 0.0}  # each option's value when it is not used


def recurrent_stack(cell: str, input_size: int, hidden_size: int, num_layers: int = 1, *,
                    bidirectional: bool = False, dropout: float = 0.0, batch_first: bool = False,
                    engine: str = "auto", proj_size: int = 0, **lstm_options: Any) -> nn.Module:
    """An `lstmlab.LSTM` (cell "lstm", with `lstm_options` and `proj_size`: LSTMP), or
    `torch.nn.GRU` / `torch.nn.RNN`."""
    unknown = sorted(set(lstm_options) - set(LSTM_OPTIONS_OFF))
    if unknown:
        raise ValueError(f"unknown LSTM option(s) {unknown}; expected some of {sorted(LSTM_OPTIONS_OFF)}")
    dropout = dropout if num_layers > 1 else 0.0  # between layers only: a single layer has none
    if cell == "lstm":
        return lstmlab.LSTM(input_size, hidden_size, num_layers, bidirectional=bidirectional, dropout=dropout,
                            batch_first=batch_first, engine=engine, proj_size=proj_size, **lstm_options)
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
    used = [name for name, value in lstm_options.items() if value != LSTM_OPTIONS_OFF[name]]
    used += ["proj_size"] if proj_size else []
    if used:
        raise ValueError(f"cell={cell!r} supports none of the LSTM options {used}; use cell='lstm' or turn them off")
    module = nn.GRU if cell == "gru" else nn.RNN
    return module(input_size, hidden_size, num_layers, bidirectional=bidirectional, dropout=dropout,
                  batch_first=batch_first)


def parse_variants(text: str) -> dict[str, bool]:
    """"peephole,layer_norm" -> {"peephole": True, "layer_norm": True}: the boolean LSTM
    variants named in a config string ("" = the plain cell)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    boolean = [name for name, off in LSTM_OPTIONS_OFF.items() if off is False]
    unknown = [name for name in names if name not in boolean]
    if unknown:
        raise ValueError(f"unknown LSTM variant(s) {unknown} in {text!r}; expected a comma-separated "
                         f"list of: {', '.join(boolean)}")
    return {name: True for name in names}
