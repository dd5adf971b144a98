"""The long-lag recipe's three contenders — LSTM, GRU, tanh RNN — and their parameter counts.

Each model is one recurrent layer followed by a linear read-out at every step:
inputs (T, B, I) → recurrent states (T, B, H) → outputs (T, B, O). The LSTM is
`lstmlab.LSTM` (variants selectable); the GRU and the RNN are torch's own. Hidden sizes
of the GRU and RNN are chosen so that their parameter counts (read-out included) come
as close as possible to the LSTM's (`matched_hidden_size`; the recipe's `contenders`
builds the three configs for a task).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from lstmlab.models import count_parameters  # noqa: F401  (part of this module's API)

MODEL_KINDS = ("lstm", "gru", "rnn")
GATE_BLOCKS = {"lstm": 4, "gru": 3, "rnn": 1}  # weight blocks per layer (i,f,g,o / r,z,n / h)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model (stored in checkpoints as a plain dict)."""

    kind: str  # "lstm", "gru" or "rnn"
    input_size: int  # I: features per input step
    hidden_size: int  # H: recurrent units
    output_size: int  # O: read-out units per step
    lstm_options: dict = field(default_factory=dict)  # keyword options of lstmlab.LSTM (variants)
    chrono_init: int | None = None  # T_max of chrono initialisation (LSTM forget / GRU update gate); None: torch's init
    input_to_output: bool = False  # a linear input → output shortcut beside the recurrent path (the 1997 nets had one)

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"model kind must be one of {MODEL_KINDS}, got {self.kind!r}")
        if self.lstm_options and self.kind != "lstm":
            raise ValueError(f"lstm_options apply to the lstm only, got them for {self.kind!r}")


def make_lstm(input_size: int, hidden_size: int, options: dict) -> nn.Module:
    """`lstmlab.LSTM` with the given variant options (engine "auto": native when plain)."""
    from lstmlab import LSTM

    return LSTM(input_size, hidden_size, **options)


class LongLagModel(nn.Module):
    """One recurrent layer + per-step linear read-out: (T, B, I) → (T, B, O)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        if config.kind == "lstm":
            options = dict(config.lstm_options)
            if config.chrono_init is not None:
                options.setdefault("chrono_init", config.chrono_init)
            self.recurrent = make_lstm(config.input_size, config.hidden_size, options)
        elif config.kind == "gru":
            self.recurrent = nn.GRU(config.input_size, config.hidden_size)
            if config.chrono_init is not None:
                chrono_init_gru(self.recurrent, config.chrono_init)
        else:
            self.recurrent = nn.RNN(config.input_size, config.hidden_size, nonlinearity="tanh")
        self.readout = nn.Linear(config.hidden_size, config.output_size)
        # the shortcut lets per-step outputs that need only the current input skip the memory
        self.shortcut = nn.Linear(config.input_size, config.output_size, bias=False) if config.input_to_output else None

    @property
    def lstm(self) -> nn.Module:
        """The `lstmlab.LSTM` inside (for inspection); only for kind "lstm"."""
        if self.config.kind != "lstm":
            raise AttributeError(f"this model is a {self.config.kind}, it has no lstm")
        return self.recurrent

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        states, _ = self.recurrent(inputs)  # (T, B, H)
        outputs = self.readout(states)  # (T, B, O)
        return outputs if self.shortcut is None else outputs + self.shortcut(inputs)


def chrono_init_gru(gru: nn.GRU, horizon: int) -> None:
    """Chrono initialisation of a GRU's update gate (Tallec & Ollivier, 2018).

    torch's GRU keeps the old state with weight z: h' = (1 − z) n + z h, biases laid out
    (r | z | n). Setting b_z = log U[1, horizon − 1] (and the hidden-side b_z = 0) makes
    the initial memory time scales spread up to `horizon` steps — the same help chrono
    initialisation gives the LSTM's forget gate, so the comparison stays fair.
    """
    hidden = gru.hidden_size
    with torch.no_grad():
        gru.bias_ih_l0[hidden : 2 * hidden].uniform_(1.0, max(horizon - 1.0, 1.0 + 1e-3)).log_()
        gru.bias_hh_l0[hidden : 2 * hidden].zero_()


def formula_parameters(kind: str, input_size: int, hidden_size: int, output_size: int,
                       input_to_output: bool = False) -> int:
    """Parameters of torch's one-layer RNN/GRU/LSTM (two bias vectors), read-out and shortcut."""
    blocks = GATE_BLOCKS[kind]
    recurrent = blocks * hidden_size * (input_size + hidden_size + 2)
    shortcut = input_size * output_size if input_to_output else 0
    return recurrent + hidden_size * output_size + output_size + shortcut


def matched_hidden_size(kind: str, input_size: int, output_size: int, target: int,
                        input_to_output: bool = False) -> int:
    """The hidden size whose parameter count (read-out included) is closest to `target`."""
    best, best_gap, hidden = 1, None, 1
    while True:
        count = formula_parameters(kind, input_size, hidden, output_size, input_to_output)
        gap = abs(count - target)
        if best_gap is None or gap < best_gap:
            best, best_gap = hidden, gap
        if count > target:
            return best
        hidden += 1
