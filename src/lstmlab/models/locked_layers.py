"""Locked dropout *between* recurrent layers, without splitting the stack into modules.

The model keeps one multi-layer recurrent module (one `lstmlab.LSTM`, so inspection gets
one `lstmlab.Trace` of every layer, and checkpoints have torch's parameter names). When
training with locked dropout between layers, `LayerByLayer` runs that module's layers
one at a time: a single-layer twin of the module is called with layer k's parameters
(`torch.func.functional_call`, so gradients reach the stack's own parameters), and a
`LockedDropout` mask, fixed over time, thins the output before the next layer.
In eval mode dropout is the identity, and the stack's ordinary call gives the same numbers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from lstmlab.models.locked_dropout import LockedDropout


class LayerByLayer:
    """Runs `stack` (an lstmlab.LSTM, nn.GRU or nn.RNN with L layers) with locked dropout p
    between layers. Not an nn.Module on purpose: it owns no parameters of its own."""

    def __init__(self, stack: nn.Module, single_layers: list[nn.Module], p: float):
        self.stack = stack
        self.single_layers = single_layers  # layer k's twin: same options, input size, one layer
        self.dropout = LockedDropout(p)

    def layer_parameters(self, k: int) -> dict[str, torch.Tensor]:
        """Layer k's parameters of the stack, named as the single-layer twin names them."""
        named = {}
        for name, _ in self.single_layers[k].named_parameters():
            if not name.endswith("_l0"):
                raise ValueError(f"unexpected parameter {name!r}: layer parameters must end in '_l0'")
            named[name] = getattr(self.stack, name[: -len("_l0")] + f"_l{k}")
        return named

    def __call__(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """x (T, B, I) -> (output (T, B, H), state) exactly as the stack returns them."""
        self.dropout.train(self.stack.training)
        new_states = []
        for k, layer in enumerate(self.single_layers):
            layer.train(self.stack.training)
            layer_state = _select_layer(state, k)
            x, layer_state = functional_call(layer, self.layer_parameters(k), (x, layer_state))
            new_states.append(layer_state)
            if k < len(self.single_layers) - 1:
                x = self.dropout(x)  # (T, B, H): one mask for every time step
        if isinstance(new_states[0], tuple):
            return x, tuple(torch.cat(parts) for parts in zip(*new_states))
        return x, torch.cat(new_states)


def _select_layer(state: Any, k: int) -> Any:
    """Layer k's rows of a stacked state: h (L, B, H) or (h, c)."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(part[k : k + 1] for part in state)
    return state[k : k + 1]
