"""A recurrent language model: embedding -> `lstmlab.LSTM` -> projection -> softmax.

The AWD-LSTM regularisers (Merity et al. 2017) are options, each in its own module:
embedding dropout (`embedding_dropout`), locked dropout on inputs and outputs
(`locked_dropout`), weight drop (DropConnect on W_hh, built into `lstmlab.LSTM`), and
AR / TAR (`activation_regularization`, applied in the loss of the `lm` recipe).

Locked dropout *between* layers runs the stack layer by layer (`locked_layers`) while
training; the stack stays one multi-layer `lstmlab.LSTM`, so inspection gets one
`lstmlab.Trace` of every layer and the plain configuration runs on the native engine.

``cell="gru"|"rnn"`` swaps the LSTM for torch's GRU / tanh RNN, with the hidden size
chosen so the whole model has (nearly) the LSTM model's parameter count.

All tensors are time-major: tokens (T, B), logits (T, B, V).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

import lstmlab
from lstmlab.config import choice
from lstmlab.models.embedding_dropout import embedding_dropout
from lstmlab.models.locked_dropout import LockedDropout
from lstmlab.models.locked_layers import LayerByLayer
from lstmlab.models.recurrent import LSTM_OPTIONS_OFF, VARIANT_CHOICES, recurrent_stack

_GATES_PER_CELL = {"lstm": 4, "gru": 3, "rnn": 1}


@dataclass
class LMModelConfig:
    """Embedding -> recurrent layers -> optional projection -> softmax, with AWD regularisers."""

    cell: str = choice("lstm", ("lstm", "gru", "rnn"))  # gru/rnn: baselines of matched size
    embedding_size: int = 128  # token embedding width E
    hidden_size: int = 256  # LSTM hidden width H (gru/rnn: chosen to match parameters if match_parameters)
    num_layers: int = 2  # stacked recurrent layers
    projection_size: int = 0  # linear layer H -> P before the softmax; 0 = none
    tie_weights: bool = False  # share the embedding and softmax weights (needs P or H == E)
    match_parameters: bool = True  # gru/rnn: pick hidden_size so the model has the LSTM's parameter count
    dropout_embedding: float = 0.0  # drop whole tokens from the embedding (AWD "dropoute")
    dropout_input: float = 0.0  # locked dropout on the embeddings
    dropout_between_layers: float = 0.0  # locked dropout between recurrent layers
    dropout_output: float = 0.0  # locked dropout on the top layer's output
    weight_drop: float = 0.0  # DropConnect on the recurrent weights W_hh (LSTM only)
    ar_alpha: float = 0.0  # activation regularisation weight
    tar_beta: float = 0.0  # temporal activation regularisation weight
    peephole: bool = False  # LSTM variant: peephole connections
    layer_norm: bool = False  # LSTM variant: layer normalisation
    coupled: bool = False  # LSTM variant: coupled input-forget gate
    forget_bias: float = 0.0  # LSTM: added to the forget-gate bias at initialisation
    zoneout: float = 0.0  # LSTM variant: zoneout probability
    variant: str = choice("", VARIANT_CHOICES)  # Greff et al.'s variant (V, NIG, NFG, NOG, NIAF, NOAF, NP, CIFG, FGR); "" = the options above
    engine: str = choice("auto", ("auto", "reference", "native", "fused"))  # lstmlab.LSTM engine (see lstmlab.engines)


def _recurrent_layer(config: LMModelConfig, hidden_size: int, input_size: int | None = None,
                     num_layers: int | None = None) -> nn.Module:
    """The recurrent stack for `config.cell` with `hidden_size` units per layer (between-layer
    dropout is locked dropout, applied by `LayerByLayer`, so the stack itself has none)."""
    input_size = config.embedding_size if input_size is None else input_size
    num_layers = config.num_layers if num_layers is None else num_layers
    return recurrent_stack(config.cell, input_size, hidden_size, num_layers, engine=config.engine,
                           variant=config.variant, **{name: getattr(config, name) for name in LSTM_OPTIONS_OFF})


def count_parameters(config: LMModelConfig, vocab_size: int, hidden_size: int, cell: str) -> int:
    """Parameters of the plain model (no LSTM variants) with `cell` and `hidden_size`."""
    gates = _GATES_PER_CELL[cell]
    total = vocab_size * config.embedding_size
    for layer in range(config.num_layers):
        inputs = config.embedding_size if layer == 0 else hidden_size
        total += gates * hidden_size * (inputs + hidden_size + 2)
    top = hidden_size
    if config.projection_size:
        total += hidden_size * config.projection_size + config.projection_size
        top = config.projection_size
    return total + vocab_size + (0 if config.tie_weights else top * vocab_size)


def matched_hidden_size(config: LMModelConfig, vocab_size: int) -> int:
    """Hidden size for config.cell giving the parameter count of the LSTM with config.hidden_size."""
    if config.cell == "lstm" or not config.match_parameters:
        return config.hidden_size
    target = count_parameters(config, vocab_size, config.hidden_size, "lstm")
    sizes = range(1, 8 * config.hidden_size + 1)
    return min(sizes, key=lambda h: abs(count_parameters(config, vocab_size, h, config.cell) - target))


class LanguageModel(nn.Module):
    """Embedding -> recurrent stack -> (projection) -> logits over the vocabulary.

    ``model(tokens, state=None, *, trace=False)``: tokens (T, B) int64 ->
    ``(logits (T, B, V), state)``; with trace=True (LSTM only) also the `lstmlab.Trace`.
    ``state`` is the recurrent state (``(h, c)`` for the LSTM, ``h`` otherwise).
    """

    def __init__(self, config: LMModelConfig, vocab_size: int):
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        self.hidden_size = matched_hidden_size(config, vocab_size)
        self.embedding = nn.Embedding(vocab_size, config.embedding_size)
        self.recurrent = _recurrent_layer(config, self.hidden_size)
        self.layer_by_layer = None  # locked dropout between layers (training only)
        if config.dropout_between_layers > 0 and config.num_layers > 1:
            twins = [_recurrent_layer(config, self.hidden_size, config.embedding_size if k == 0 else self.hidden_size, 1)
                     for k in range(config.num_layers)]
            self.layer_by_layer = LayerByLayer(self.recurrent, twins, config.dropout_between_layers)
        self.dropout_input = LockedDropout(config.dropout_input)
        self.dropout_output = LockedDropout(config.dropout_output)
        top = self.hidden_size
        self.projection = None
        if config.projection_size:
            self.projection = nn.Linear(self.hidden_size, config.projection_size)
            top = config.projection_size
        self.decoder = nn.Linear(top, vocab_size)
        if config.tie_weights:
            if top != config.embedding_size:
                raise ValueError(f"tie_weights needs the softmax input size ({top}: projection_size or "
                                 f"hidden_size) to equal embedding_size ({config.embedding_size})")
            self.decoder.weight = self.embedding.weight

    @property
    def lstm(self) -> lstmlab.LSTM | None:
        """The `lstmlab.LSTM` (None for the gru/rnn baselines)."""
        return self.recurrent if isinstance(self.recurrent, lstmlab.LSTM) else None

    def forward(self, tokens: torch.Tensor, state: Any = None, *, trace: bool = False,
                return_hidden: bool = False):
        """tokens (T, B) -> (logits (T, B, V), state[, trace]); with return_hidden (for AR/TAR)
        -> (logits, state, raw top output (T, B, H), dropped-out top output (T, B, H))."""
        if tokens.dim() != 2 or tokens.dtype != torch.long:
            raise ValueError(f"expected tokens of shape (T, B) and dtype int64, got "
                             f"{tuple(tokens.shape)} {tokens.dtype}")
        embedded = embedding_dropout(self.embedding, tokens, self.config.dropout_embedding, self.training)
        embedded = self.dropout_input(embedded)  # (T, B, E)
        if trace:
            if self.lstm is None:
                raise ValueError(f"trace=True needs cell='lstm', this model has cell={self.config.cell!r}")
            raw_output, state, lstm_trace = self.lstm(embedded, state, trace=True)
        elif self.training and self.layer_by_layer is not None:
            raw_output, state = self.layer_by_layer(embedded, state)  # (T, B, H)
        else:
            raw_output, state = self.recurrent(embedded, state)  # (T, B, H)
        dropped_output = self.dropout_output(raw_output)
        features = self.projection(dropped_output) if self.projection is not None else dropped_output
        logits = self.decoder(features)  # (T, B, V)
        if return_hidden:
            return logits, state, raw_output, dropped_output
        return (logits, state, lstm_trace) if trace else (logits, state)

    def step(self, token: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """One token per stream, for generation: token (B,) -> (logits (B, V), state).
        Uses the LSTM's stateful `step` (the same numbers as the sequence call)."""
        embedded = self.embedding(token)  # (B, E)
        if self.lstm is not None:
            output, state = self.lstm.step(embedded, state)  # (B, H)
        else:
            output, state = self.recurrent(embedded.unsqueeze(0), state)
            output = output[0]
        features = self.projection(output) if self.projection is not None else output
        return self.decoder(features), state
