"""`lstmlab.Stream`: real-time inference, one time step per call.

    stream = lstmlab.Stream(lstm, batch_size=1)
    for x_t in frames:              # each (B, I), or (I,) with batch_size=None
        y_t = stream(x_t)           # (B, P): the top layer's h; the state stays inside

Each call is one C++ call of the fused engine (all layers, no autograd), so the per-step
cost is the arithmetic plus a few microseconds. The numbers are those of the sequence
call `lstm(x)` in evaluation mode. The weights are packed once and packed again
automatically when they change (an optimiser step, `load_state_dict`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import engines
from .nn import LSTM
from .parameters import layer_weights


class Stream:
    """Stateful one-step inference for a unidirectional `lstmlab.LSTM` (see module doc).

    Args:
        lstm: the module (unidirectional; zoneout is not supported here, use `lstm.step`).
        batch_size: B, the number of streams run side by side; None for unbatched (I,) input.
        state: optional initial (h, c), shaped like `lstm`'s hx for that batch size.
    """

    def __init__(self, lstm: LSTM, batch_size: int | None = 1, state: tuple[Tensor, Tensor] | None = None) -> None:
        if not isinstance(lstm, LSTM):
            raise TypeError(f"Stream: expected an lstmlab.LSTM, got {type(lstm).__name__}")
        if lstm.bidirectional:
            raise ValueError("Stream: expected a unidirectional LSTM (the reverse direction needs the whole "
                             "sequence), got bidirectional=True")
        if lstm.spec.zoneout_c or lstm.spec.zoneout_h:
            raise ValueError("Stream: expected an LSTM without zoneout (the C++ step has none); "
                             "use lstm.step(x_t, state) instead")
        problem = engines.fused.unsupported_reason(lstm.spec, False, lstm.weight_ih_l0)
        if problem:
            raise ValueError(f"Stream runs on the fused CPU engine, which cannot run here: {problem}")
        self.lstm, self.batch_size = lstm, batch_size
        self._packed_versions: tuple[int, ...] | None = None
        self._flat: list[Tensor] = []
        self.reset(state)

    def reset(self, state: tuple[Tensor, Tensor] | None = None) -> None:
        """Start again from `state` (zeros when None)."""
        lstm = self.lstm
        rows = lstm.num_layers
        batch = 1 if self.batch_size is None else self.batch_size
        like = lstm.weight_ih_l0
        h = like.new_zeros(rows, batch, lstm.proj_size or lstm.hidden_size)
        c = like.new_zeros(rows, batch, lstm.hidden_size)
        if state is not None:
            for name, given, target in (("h", state[0], h), ("c", state[1], c)):
                rows, batch_rows, width = target.shape  # unbatched states leave out the batch dim
                expected = (rows, width) if self.batch_size is None else (rows, batch_rows, width)
                if tuple(given.shape) != expected:
                    raise ValueError(f"Stream state {name}: expected shape {expected}, got {tuple(given.shape)}")
                target.copy_(given.reshape(target.shape))
        self._h, self._c = h, c

    @property
    def state(self) -> tuple[Tensor, Tensor]:
        """Copies of (h, c): (L, B, P) and (L, B, H) ((L, P), (L, H) unbatched)."""
        if self.batch_size is None:
            return self._h[:, 0].clone(), self._c[:, 0].clone()
        return self._h.clone(), self._c.clone()

    def _weights(self) -> list[Tensor]:
        """The flat weight list of the C++ step, re-packed when any parameter changed."""
        params = list(self.lstm.parameters())
        versions = tuple(p._version for p in params) + tuple(p.data_ptr() for p in params)
        if versions != self._packed_versions:
            with torch.no_grad():
                layers = [layer_weights(self.lstm, suffix) for suffix in self.lstm._suffixes]
                self._flat = engines.fused.step_weights(layers, self.lstm.weight_ih_l0)
            self._packed_versions = versions
        return self._flat

    def __call__(self, x_t: Tensor) -> Tensor:
        """One step: x_t (B, I) (or (I,) unbatched) -> the top layer's h (B, P) (or (P,))."""
        expected = (self.lstm.input_size,) if self.batch_size is None else (self.batch_size, self.lstm.input_size)
        if not isinstance(x_t, Tensor) or tuple(x_t.shape) != expected:
            got = tuple(x_t.shape) if isinstance(x_t, Tensor) else type(x_t).__name__
            raise ValueError(f"Stream input: expected shape {expected}, got {got}")
        if x_t.dtype != self._h.dtype:
            raise TypeError(f"Stream input: expected dtype {self._h.dtype} (the weights' dtype), got {x_t.dtype}")
        with torch.no_grad():
            y = engines.fused.load_extension().step(x_t.reshape(-1, expected[-1]), self._h, self._c,
                                                    self._weights(), self.lstm.spec.coupled)
        return y[0] if self.batch_size is None else y
