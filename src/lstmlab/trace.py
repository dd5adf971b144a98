"""The trace: every gate and state of every layer, direction and time step.

``output, (h_n, c_n), trace = lstm(x, trace=True)``; ``trace[k]`` is layer k's
`LayerTrace` with tensors ``i, f, g, o, c, h``, each shaped (T, B, D, H) —
(B, T, D, H) for a batch_first module, (T, D, H) for unbatched input — where D = 2
for a bidirectional LSTM (index 1 is the reverse direction, stored at the time step
it belongs to) and ``h`` has proj_size features when proj_size > 0.

Values are post-activation: i, f, o in (0, 1), g in (-1, 1); c is the cell state as
carried from step to step, h the hidden state (the layer's output). They are part of
the autograd graph, so a loss on them backpropagates into the weights.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields

from torch import Tensor

from .cell import TRACE_FIELDS


@dataclass(frozen=True)
class LayerTrace:
    """One layer's gates and states (shapes in the module docstring)."""

    i: Tensor  # input gate
    f: Tensor  # forget gate
    g: Tensor  # cell candidate
    o: Tensor  # output gate
    c: Tensor  # cell state
    h: Tensor  # hidden state (projected when proj_size > 0)

    def __getitem__(self, name: str) -> Tensor:
        if name not in TRACE_FIELDS:
            raise KeyError(f"trace field: expected one of {TRACE_FIELDS}, got {name!r}")
        return getattr(self, name)

    def items(self) -> Iterator[tuple[str, Tensor]]:
        return ((f.name, getattr(self, f.name)) for f in fields(self))

    def map(self, fn) -> LayerTrace:
        """A LayerTrace with `fn` applied to every tensor (e.g. ``lambda t: t.detach()``)."""
        return LayerTrace(**{name: fn(value) for name, value in self.items()})


@dataclass(frozen=True)
class Trace(Sequence):
    """Per-layer traces (``trace[k]``, ``len(trace)``), plus the validity mask.

    mask: None for unpadded input; for a PackedSequence a bool tensor (T, B) ((B, T) for
    batch_first), True where a step is part of its sequence. Trace values at padded
    positions are zero.
    """

    layers: tuple[LayerTrace, ...]
    mask: Tensor | None = None
    batch_first: bool = False

    def __getitem__(self, index):
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def detach(self) -> Trace:
        mask = None if self.mask is None else self.mask.detach()
        return Trace(tuple(layer.map(lambda t: t.detach()) for layer in self.layers), mask, self.batch_first)
