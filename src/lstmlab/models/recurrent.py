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
GREFF_OPTIONS_OFF = {"input_gate": True, "forget_gate": True, "output_gate": True, "input_activation": True,
                     "output_activation": True, "full_gate_recurrence": False}

# Greff et al. (2017)'s eight variants and their vanilla cell (V, which has peepholes), as
# lstmlab.LSTM options: each changes one part of V.
GREFF_VARIANTS: dict[str, dict[str, bool]] = {
    "V": {"peephole": True},
    "NIG": {"peephole": True, "input_gate": False},
    "NFG": {"peephole": True, "forget_gate": False},
    "NOG": {"peephole": True, "output_gate": False},
    "NIAF": {"peephole": True, "input_activation": False},
    "NOAF": {"peephole": True, "output_activation": False},
    "NP": {},
    "CIFG": {"peephole": True, "coupled": True},
    "FGR": {"peephole": True, "full_gate_recurrence": True},
}
VARIANT_CHOICES = ("", *GREFF_VARIANTS)  # a model config's `variant` field ("" = its own options)


def with_variant(options: dict[str, Any], variant: str) -> dict[str, Any]:
    """`options` (LSTM options with their off values where unused) with Greff's `variant`
    applied; an option the variant sets and `options` sets otherwise is refused."""
    if not variant:
        return dict(options)
    if variant not in GREFF_VARIANTS:
        raise ValueError(f"variant: expected one of {', '.join(GREFF_VARIANTS)} (Greff et al. 2017), got {variant!r}")
    merged = dict(options)
    for name, value in {"peephole": False, **GREFF_VARIANTS[variant]}.items():
        off = {**LSTM_OPTIONS_OFF, **GREFF_OPTIONS_OFF}[name]
        if merged.get(name, off) not in (off, value):
            raise ValueError(f"variant={variant!r} sets {name}={value}, but {name}={merged[name]!r} was also given; "
                             "drop one of them")
        merged[name] = value
    return merged


def recurrent_stack(cell: str, input_size: int, hidden_size: int, num_layers: int = 1, *,
                    bidirectional: bool = False, dropout: float = 0.0, batch_first: bool = False,
                    engine: str = "auto", proj_size: int = 0, variant: str = "", **lstm_options: Any) -> nn.Module:
    """An `lstmlab.LSTM` (cell "lstm", with `lstm_options`, Greff's `variant` applied to
    them (`with_variant`) and `proj_size`: LSTMP), or `torch.nn.GRU` / `torch.nn.RNN`."""
    if variant and cell != "lstm":
        raise ValueError(f"variant={variant!r} is an LSTM variant; cell={cell!r} has none")
    lstm_options = with_variant(lstm_options, variant)
    known = {**LSTM_OPTIONS_OFF, **GREFF_OPTIONS_OFF}
    unknown = sorted(set(lstm_options) - set(known))
    if unknown:
        raise ValueError(f"unknown LSTM option(s) {unknown}; expected some of {sorted(known)}")
    dropout = dropout if num_layers > 1 else 0.0  # between layers only: a single layer has none
    if cell == "lstm":
        return lstmlab.LSTM(input_size, hidden_size, num_layers, bidirectional=bidirectional, dropout=dropout,
                            batch_first=batch_first, engine=engine, proj_size=proj_size, **lstm_options)
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
    used = [name for name, value in lstm_options.items() if value != known[name]]
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
