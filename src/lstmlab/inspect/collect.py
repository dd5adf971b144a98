"""Run a model with tracing on and keep what every gate and state did.

A `lstmlab.Trace` holds, per layer, the post-activation gates `i, f, g, o` and the
states `c, h`, shaped `(T, B, D, H)` (or `(B, T, D, H)` with batch_first, `(T, D, H)` for
unbatched input). The inspection tools want one layout, so `as_recording` normalises every
tensor to `(T, B, D, H)`, detached, float32, on the CPU, and keeps the padding mask.

Shape legend: T time steps, B sequences in the batch, D directions (2 if bidirectional),
H hidden units (`h` has proj_size features when the LSTM projects).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

# The quantities a trace records, in the order the report lists them.
QUANTITIES: tuple[str, ...] = ("c", "h", "i", "f", "o", "g")
GATES: tuple[str, ...] = ("i", "f", "o", "g")


@dataclass
class Recording:
    """Every gate and state of every layer of one run, ready for statistics and plots."""

    layers: list[dict[str, torch.Tensor]]  # per layer: quantity name -> (T, B, D, H) float32
    mask: torch.Tensor | None = None  # (T, B) bool, True at real steps; None: every step real
    pieces: list[str] | None = None  # text of each time step of sequence 0, when the input is text

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def num_steps(self) -> int:
        return self.layers[0]["c"].shape[0]

    @property
    def batch_size(self) -> int:
        return self.layers[0]["c"].shape[1]

    @property
    def num_directions(self) -> int:
        return self.layers[0]["c"].shape[2]

    def hidden_size(self, layer: int = 0) -> int:
        return self.layers[layer]["c"].shape[3]

    def valid(self) -> torch.Tensor:
        """(T, B) bool: True where the step is real input rather than padding."""
        if self.mask is None:
            return torch.ones(self.num_steps, self.batch_size, dtype=torch.bool)
        return self.mask

    def quantity(self, layer: int, name: str) -> torch.Tensor:
        """The (T, B, D, H) tensor of quantity `name` (one of c, h, i, f, o, g) in `layer`."""
        if not 0 <= layer < self.num_layers:
            raise ValueError(f"layer must be in 0..{self.num_layers - 1}, got {layer}")
        if name not in QUANTITIES:
            raise ValueError(f"quantity must be one of {', '.join(QUANTITIES)}; got {name!r}")
        return self.layers[layer][name]


def _normalise(tensor: Any, name: str, layer: int, batch_first: bool) -> torch.Tensor:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"trace layer {layer} field {name!r}: expected a tensor, got {type(tensor).__name__}")
    tensor = tensor.detach().to(device="cpu", dtype=torch.float32)
    if tensor.dim() == 3:  # unbatched (T, D, H)
        return tensor.unsqueeze(1)
    if tensor.dim() == 4:
        return tensor.transpose(0, 1).contiguous() if batch_first else tensor
    raise ValueError(
        f"trace layer {layer} field {name!r}: expected (T, B, D, H) or (T, D, H), got shape {tuple(tensor.shape)}"
    )


def as_recording(trace: Sequence[Any], *, batch_first: bool | None = None, pieces: list[str] | None = None) -> Recording:
    """Normalise a `lstmlab.Trace` (or any sequence of layer objects with `.i .f .g .o .c .h`).

    `batch_first` says whether the tensors (and the mask) are batch-major; None takes it
    from `trace.batch_first` (False when the trace does not say).
    """
    if batch_first is None:
        batch_first = bool(getattr(trace, "batch_first", False))
    if len(trace) == 0:
        raise ValueError("the trace has no layers")
    layers = []
    for index in range(len(trace)):
        layer = trace[index]
        layers.append({name: _normalise(getattr(layer, name), name, index, batch_first) for name in QUANTITIES})
    first = layers[0]["c"]
    for index, layer in enumerate(layers):
        for name, tensor in layer.items():
            if tensor.shape[:3] != first.shape[:3]:
                raise ValueError(
                    f"trace layer {index} field {name!r} has (T, B, D) = {tuple(tensor.shape[:3])}, "
                    f"but layer 0 'c' has {tuple(first.shape[:3])}"
                )
    mask = getattr(trace, "mask", None)
    if mask is not None:
        mask = mask.detach().to("cpu", torch.bool)
        if batch_first and mask.dim() == 2:
            mask = mask.transpose(0, 1)  # (B, T) -> (T, B)
        if mask.shape != first.shape[:2]:
            raise ValueError(f"trace.mask must be (T, B) = {tuple(first.shape[:2])}, got {tuple(mask.shape)}")
    if pieces is not None and len(pieces) != first.shape[0]:
        raise ValueError(f"got {len(pieces)} text pieces for a trace of {first.shape[0]} time steps")
    return Recording(layers=layers, mask=mask, pieces=pieces)


def find_lstm(module: Any) -> Any:
    """The lstmlab.LSTM inside `module`: the module itself, or its `.lstm` attribute."""
    lstm = getattr(module, "lstm", module)
    if not hasattr(lstm, "batch_first"):
        raise TypeError(
            f"expected an lstmlab.LSTM or a model with an `.lstm` attribute, got {type(module).__name__}"
        )
    return lstm


@torch.no_grad()
def collect_trace(module: Any, inputs: Any, *, pieces: list[str] | None = None, **call_kwargs: Any) -> Recording:
    """Run `module(inputs, trace=True)` and return its trace as a `Recording`.

    `module` is an `lstmlab.LSTM` (returns `output, (h_n, c_n), trace`) or a model that
    holds one as `.lstm` and returns its trace last (e.g. a language model returning
    `logits, state, trace`). Runs without gradients, in eval mode (no dropout), and
    restores the training mode afterwards.
    """
    lstm = find_lstm(module)
    was_training = getattr(module, "training", False)
    if hasattr(module, "eval"):
        module.eval()
    try:
        result = module(inputs, trace=True, **call_kwargs)
    finally:
        if was_training:
            module.train()
    if not isinstance(result, tuple) or len(result) < 2:
        raise TypeError(f"expected the model to return a tuple ending with the trace, got {type(result).__name__}")
    trace = result[-1]
    batch_first = getattr(trace, "batch_first", None)
    if batch_first is None:
        batch_first = bool(lstm.batch_first)
    return as_recording(trace, batch_first=batch_first, pieces=pieces)


def collect_text_trace(model: Any, token_ids: Sequence[int], pieces: list[str]) -> Recording:
    """Run a token model on one text: `model(tokens (T, 1) LongTensor, trace=True)`.

    `pieces[t]` is the text of token t (the pieces concatenate to the text); the
    recording keeps them so features and the report can align with the text.
    """
    if len(token_ids) != len(pieces):
        raise ValueError(f"got {len(token_ids)} token ids but {len(pieces)} text pieces; expected one piece per token")
    if len(token_ids) == 0:
        raise ValueError("the text is empty: expected at least one token")
    tokens = torch.as_tensor(list(token_ids), dtype=torch.long).view(-1, 1)  # (T, 1)
    return collect_trace(model, tokens, pieces=list(pieces))
