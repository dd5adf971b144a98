"""`lstmlab.Stream`: real-time inference, one time step per call.

    stream = lstmlab.Stream(lstm, batch_size=1)
    for x_t in frames:              # each (B, I), or (I,) with batch_size=None
        y_t = stream(x_t)           # (B, P): the top layer's h; the state stays inside

Each call is one C++ call (csrc/fused_step.h: all layers, no autograd, no Python per
layer, no allocation but the returned tensor). The weights are packed once into column
panels for one-row products (csrc/fused_gemv.h) and packed again automatically when a
parameter changes (an optimiser step, `load_state_dict`, `p.data = ...`, a replaced
parameter): the check reads each parameter's version counter, in C++. The numbers are
those of the sequence call `lstm(x)` in evaluation mode (up to the order of float sums).

Large steps (from ~2^18 multiply-adds, e.g. H=256) split the weight panels over torch's
threads (`torch.set_num_threads`); small ones run on the calling thread only.

Each call returns a new tensor: it stays valid after later steps, so outputs can be
collected freely. Measured at H=64, batch 1, the fresh output costs ~0.45 µs of a
~1.8 µs step (returning one reused tensor would take ~1.3 µs per step, and silently
overwrite what a caller kept).
"""

from __future__ import annotations

from torch import Tensor

from . import engines
from .inputs import DtypeError, ShapeError
from .nn import LSTM


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
        problem = (engines.fused.unsupported_reason(lstm.spec, False, lstm.weight_ih_l0)
                   or engines.fused.step_cell_reason(lstm.spec))
        if problem:
            raise ValueError(f"Stream runs on the fused CPU engine, which cannot run here: {problem}")
        self.lstm, self.batch_size = lstm, batch_size
        self._weights = engines.fused.packed_step_weights(lstm)  # shared with lstm.step; re-packs itself
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
                    raise ShapeError(f"Stream state {name}: expected shape {expected}, got {tuple(given.shape)}")
                target.copy_(given.detach().reshape(target.shape))
        self._core = engines.fused.load_extension().StreamState(self._weights, h, c, self.batch_size is None)

    @property
    def state(self) -> tuple[Tensor, Tensor]:
        """Copies of (h, c): (L, B, P) and (L, B, H) ((L, P), (L, H) unbatched)."""
        h, c = self._core.h, self._core.c
        if self.batch_size is None:
            return h[:, 0].clone(), c[:, 0].clone()
        return h.clone(), c.clone()

    def __call__(self, x_t: Tensor) -> Tensor:
        """One step: x_t (B, I) (or (I,) unbatched) -> the top layer's h (B, P) (or (P,)), a new tensor."""
        try:
            return self._core.step(x_t)  # checks x_t itself; raises ValueError("Stream input") if wrong
        except (TypeError, ValueError):
            self._check_input(x_t)  # says what was expected
            raise

    def _check_input(self, x_t) -> None:
        expected = (self.lstm.input_size,) if self.batch_size is None else (self.batch_size, self.lstm.input_size)
        if not isinstance(x_t, Tensor) or tuple(x_t.shape) != expected:
            got = tuple(x_t.shape) if isinstance(x_t, Tensor) else type(x_t).__name__
            raise ShapeError(f"Stream input: expected shape {expected}, got {got}")
        dtype = self._core.h.dtype
        if x_t.dtype != dtype:
            raise DtypeError(f"Stream input: expected dtype {dtype} (the weights' dtype), got {x_t.dtype}")
        if x_t.device.type != "cpu":
            raise ValueError(f"Stream input: expected a CPU tensor (the stream runs on CPU), got {x_t.device}")
