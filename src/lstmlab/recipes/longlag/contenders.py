"""The contenders for one task: an LSTM and a GRU and tanh RNN of matched size, and the
``--lstm-options`` switches that choose the LSTM's variant."""

from __future__ import annotations

from lstmlab.models.longlag import MODEL_KINDS, LongLagModel, ModelConfig, count_parameters, matched_hidden_size

from .task_base import LongLagTask

__all__ = ["MODEL_KINDS", "model_configs", "parse_lstm_options"]

LSTM_BOOLEAN_OPTIONS = ("peephole", "layer_norm", "coupled")  # the switches of --lstm-options


def model_configs(task: LongLagTask, kinds: list[str], lstm_hidden: int, lstm_options: dict,
                  chrono_init: int | None = None, input_to_output: bool = False) -> list[ModelConfig]:
    """One config per kind; the LSTM has `lstm_hidden` units, the others match its size.

    `chrono_init` (a horizon in steps) goes to the LSTM and the GRU; the tanh RNN has no gate.
    """
    lstm_config = ModelConfig("lstm", task.input_size, lstm_hidden, task.output_size, dict(lstm_options),
                              chrono_init, input_to_output)
    target = count_parameters(LongLagModel(lstm_config))
    configs = []
    for kind in kinds:
        if kind == "lstm":
            configs.append(lstm_config)
        else:
            hidden = matched_hidden_size(kind, task.input_size, task.output_size, target, input_to_output)
            horizon = chrono_init if kind == "gru" else None
            configs.append(ModelConfig(kind, task.input_size, hidden, task.output_size, {}, horizon, input_to_output))
    return configs


def parse_lstm_options(text: str) -> dict:
    """"layer_norm,peephole,forget_bias=1" → {"layer_norm": True, "peephole": True, "forget_bias": 1.0}."""
    options: dict = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, value = item.partition("=")
        if key in LSTM_BOOLEAN_OPTIONS and not value:
            options[key] = True
        elif key in ("forget_bias", "zoneout", "weight_drop") and value:
            options[key] = float(value)
        elif key == "chrono_init" and value:
            options[key] = int(value)
        else:
            raise ValueError(
                f"unknown or malformed lstm option {item!r}; expected switches "
                f"{', '.join(LSTM_BOOLEAN_OPTIONS)} or forget_bias=X, zoneout=X, weight_drop=X, chrono_init=T"
            )
    return options


