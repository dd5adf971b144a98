"""The tasks of Hochreiter & Schmidhuber, "Long Short-Term Memory" (1997), section 5.

Each class is a dataclass of the task's parameters; its docstring quotes the paper's
definition and says how we read it. Sequences are drawn with a `torch.Generator`, so a
seed fixes every set. Positions below count from 0 unless a docstring says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .task_base import (
    LongLagTask,
    SequenceBatch,
    check_int,
    end_class_wrong,
    last_step,
    one_hot_sequences,
    uniform_int,
)
from .arithmetic_tasks import Adding, Multiplication
from .reber import EmbeddedReber

__all__ = [
    "EmbeddedReber",
    "NoiseFreeLongLag",
    "VeryLongLag",
    "Adding",
    "Multiplication",
    "TemporalOrder",
]  # Adding and Multiplication (Exp. 4 and 5) live in `arithmetic_tasks`


@dataclass
class NoiseFreeLongLag(LongLagTask):
    """Exp. 2a: noise-free sequences with long time lags.

    Paper: p + 1 input symbols a_1 … a_{p−1}, a_p = x, a_{p+1} = y, each coded locally
    (one-hot, p + 1 units). Two training sequences, each chosen with probability 0.5:
    (y, a_1, …, a_{p−1}, y) and (x, a_1, …, a_{p−1}, x). The net sees one symbol per
    step and predicts the next one at every step; to predict the last element it must
    remember the first for p steps. Success (paper): maximal absolute error of all
    output units below 0.25 (they ask it for 10,000 consecutive sequences).

    Here: inputs are the first p symbols, targets the last p (next-symbol prediction);
    outputs are a softmax over the p + 1 symbols. Since only two distinct sequences
    exist, "10,000 consecutive sequences right" is the same as "both sequences right",
    which is what the evaluation checks.

    Two training choices differ from the paper (both apply to every model alike):

    * Each training batch holds the two sequences in equal numbers, in random order
      (the paper draws each with probability 0.5; a stratified batch has the same
      distribution without the batch-to-batch imbalance that Adam chases).
    * The cross-entropy of the last prediction — the only one that needs memory — is
      weighted by `final_step_weight` (default p − 1, so it carries half of the loss).
      With a uniform weight it is 1/p of the loss: Adam first fits the p − 1
      input-determined predictions, whose writes drift the cell states into tanh's
      saturation, after which no gradient reaches the memory (measured: 0 of 3 LSTM
      seeds at p = 100). The paper's online SGD and truncated gradient avoided this.
    """

    p: int = 100  # the time lag: sequence length is p + 1
    final_step_weight: float | None = None  # loss weight of the last prediction; None: p − 1

    name = "noise-free"
    kind = "step_class"
    criterion = "max |output − target| < 0.25 at every step, both sequences"
    tolerance = 0.25

    def __post_init__(self) -> None:
        check_int("p (noise-free lag)", self.p, 2)
        weight = self.final_step_weight
        if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0):
            raise ValueError(f"final_step_weight must be a positive number or None, got {weight!r}")

    @property
    def input_size(self) -> int:
        return self.p + 1

    @property
    def output_size(self) -> int:
        return self.p + 1

    @property
    def lag(self) -> int:
        return self.p

    @property
    def label(self) -> str:
        return f"noise-free-p{self.p}"

    def sequences(self, first_is_y: Tensor) -> Tensor:
        """(B,) bool → (p + 1, B) symbol ids: (x|y, a_1, …, a_{p−1}, x|y)."""
        x_symbol, y_symbol = self.p - 1, self.p  # a_1 … a_{p−1} are ids 0 … p−2
        first = torch.where(first_is_y, y_symbol, x_symbol)  # (B,)
        middle = torch.arange(self.p - 1).unsqueeze(1).expand(-1, first.shape[0])  # (p−1, B)
        return torch.cat([first.unsqueeze(0), middle, first.unsqueeze(0)], dim=0)

    def sample(self, batch_size: int, generator: torch.Generator) -> SequenceBatch:
        """A stratified batch: ⌊B/2⌋ of each sequence (one more of a random one if B is odd), shuffled."""
        first_is_y = torch.arange(batch_size) % 2 == 0
        if batch_size % 2 and torch.rand(1, generator=generator).item() < 0.5:
            first_is_y[-1] = False
        return self._batch(first_is_y[torch.randperm(batch_size, generator=generator)])

    def evaluation_batch(self, size: int, generator: torch.Generator) -> SequenceBatch:
        return self._batch(torch.tensor([False, True]))  # the only two sequences there are

    def _batch(self, first_is_y: Tensor) -> SequenceBatch:
        symbols = self.sequences(first_is_y)  # (p + 1, B)
        lengths = torch.full((symbols.shape[1],), self.p)
        inputs = one_hot_sequences(symbols[:-1], lengths, self.input_size)
        mask = torch.ones(self.p, symbols.shape[1], dtype=torch.bool)
        return SequenceBatch(inputs, lengths, symbols[1:], mask)

    def wrong(self, outputs: Tensor, batch: SequenceBatch) -> Tensor:
        target = F.one_hot(batch.targets, self.output_size).float()  # (T, B, O)
        error = (outputs.softmax(-1) - target).abs().amax(-1)  # (T, B)
        return (error * batch.mask).amax(0) >= self.tolerance

    def step_weights(self) -> Tensor:
        """(p,) loss weight of each prediction: 1, except the last (see the class doc)."""
        weights = torch.ones(self.p)
        weights[-1] = self.p - 1 if self.final_step_weight is None else self.final_step_weight
        return weights

    def loss(self, outputs: Tensor, batch: SequenceBatch) -> Tensor:
        """Weighted mean cross-entropy of the p predictions (every step of both sequences is real)."""
        per_step = F.cross_entropy(outputs.flatten(0, 1), batch.targets.flatten(), reduction="none")
        weights = self.step_weights().unsqueeze(1)  # (p, 1)
        return (per_step.view(batch.targets.shape) * weights).sum() / (weights.sum() * batch.batch_size)


@dataclass
class VeryLongLag(LongLagTask):
    """Exp. 2c: very long time lags, no local regularities, many distractors.

    Paper: p + 4 input symbols: distractors a_1 … a_p, and e, b, x, y. The two kinds of
    sequence are (b, y, a_i1, …, a_i(q+k), e, y) and (b, x, a_i1, …, a_i(q+k), e, x).
    A sequence is built by (1) a prefix of length q + 2 — b, then x or y, then q random
    distractors; (2) a suffix: each further element is a random distractor with
    probability 9/10 or e with probability 1/10; after e, (3) the sequence ends with x or
    y, the same as its second element. Only the last element has to be predicted; the
    minimal time lag is q + 1. Success (paper): final absolute error of the output units
    below 0.2 (for 10,000 successive sequences).

    Here: inputs run from b to e; the target is the class (x or y) at the step that reads
    e; outputs are a 2-way softmax. Success: no wrong sequence among the held-out set.
    """

    q: int = 100  # minimal number of distractors between the x|y and e
    p: int = 100  # number of distinct distractor symbols

    name = "very-long-lag"
    kind = "end_class"
    criterion = "final |output − target| < 0.2 on every held-out sequence"
    tolerance = 0.2
    continue_probability = 0.9  # chance that the suffix goes on with another distractor

    def __post_init__(self) -> None:
        check_int("q (very-long-lag minimal lag)", self.q, 1)
        check_int("p (number of distractor symbols)", self.p, 1)

    @property
    def input_size(self) -> int:
        return self.p + 4

    @property
    def output_size(self) -> int:
        return 2

    @property
    def lag(self) -> int:
        return self.q

    @property
    def label(self) -> str:
        return f"very-long-lag-q{self.q}-p{self.p}"

    def sample(self, batch_size: int, generator: torch.Generator) -> SequenceBatch:
        e_symbol, b_symbol, x_symbol = self.p, self.p + 1, self.p + 2  # y is p + 3
        is_y = (torch.rand(batch_size, generator=generator) < 0.5).long()  # (B,)
        # suffix length: number of distractors before e, geometric with P(stop) = 1/10
        uniform = torch.rand(batch_size, generator=generator).clamp(min=1e-12)
        extra = torch.floor(uniform.log() / torch.log(torch.tensor(self.continue_probability))).long()
        lengths = self.q + 3 + extra  # b, x|y, q + extra distractors, e
        total = int(lengths.max())
        symbols = torch.randint(0, self.p, (total, batch_size), generator=generator)  # (T, B)
        batch_index = torch.arange(batch_size)
        symbols[0] = b_symbol
        symbols[1] = x_symbol + is_y
        symbols[lengths - 1, batch_index] = e_symbol
        inputs = one_hot_sequences(symbols, lengths, self.input_size)
        return SequenceBatch(inputs, lengths, is_y)

    def wrong(self, outputs: Tensor, batch: SequenceBatch) -> Tensor:
        return end_class_wrong(outputs, batch, self.tolerance)


@dataclass
class TemporalOrder(LongLagTask):
    """Exp. 6a / 6b: classify a sequence by the temporal order of widely separated symbols.

    Paper: symbols E, B, a, b, c, d, X, Y, coded locally (8 inputs). A sequence starts
    with E, ends with the trigger B, and is otherwise random symbols from {a, b, c, d},
    except at two (6a) or three (6b) positions that hold X or Y. Length: random in
    [100, 110]. 6a: t1 in [10, 20], t2 in [50, 60]; 4 classes Q, R, S, U for XX, XY, YX,
    YY. 6b: t1 in [10, 20], t2 in [33, 43], t3 in [66, 76]; 8 classes Q … C for XXX …
    YYY. The target is given at the end; a sequence is correct if the final absolute
    error of all output units is below 0.3.

    Here: positions count from 1 as in the paper (E is at position 1); `scale` shrinks
    all lengths and windows for smoke tests (scale = 1 is the paper). Outputs are a
    softmax over the classes; success: ≤ 1 % of held-out sequences wrong (paper: 1 wrong
    of 2560 after training).
    """

    relevant: int = 2  # 2 → Exp. 6a (4 classes), 3 → Exp. 6b (8 classes)
    scale: float = 1.0  # multiplies the paper's lengths and windows (1.0 = the paper)

    name = "temporal-order"
    kind = "end_class"
    max_wrong_fraction = 0.01
    criterion = "final |output − target| < 0.3 for every unit; ≤ 1 % of held-out sequences wrong"
    tolerance = 0.3
    symbols = "EBabcdXY"

    def __post_init__(self) -> None:
        if self.relevant not in (2, 3):
            raise ValueError(f"temporal order needs relevant = 2 (6a) or 3 (6b), got {self.relevant!r}")
        if not 0.1 <= self.scale <= 10:
            raise ValueError(f"temporal-order scale must be in [0.1, 10], got {self.scale!r}")

    def _scaled(self, pair: tuple[int, int]) -> tuple[int, int]:
        return max(2, round(pair[0] * self.scale)), max(2, round(pair[1] * self.scale))

    @property
    def length_range(self) -> tuple[int, int]:
        return self._scaled((100, 110))

    @property
    def windows(self) -> list[tuple[int, int]]:
        """The 1-based position ranges of the relevant X/Y symbols."""
        paper = [(10, 20), (50, 60)] if self.relevant == 2 else [(10, 20), (33, 43), (66, 76)]
        return [self._scaled(window) for window in paper]

    @property
    def input_size(self) -> int:
        return len(self.symbols)

    @property
    def output_size(self) -> int:
        return 2**self.relevant

    @property
    def lag(self) -> int:
        return self.length_range[0]

    @property
    def label(self) -> str:
        variant = "6a" if self.relevant == 2 else "6b"
        return f"temporal-order-{variant}" + ("" if self.scale == 1.0 else f"-x{self.scale:g}")

    def sample(self, batch_size: int, generator: torch.Generator) -> SequenceBatch:
        lengths = uniform_int(*self.length_range, batch_size, generator)  # (B,)
        total = int(lengths.max())
        batch_index = torch.arange(batch_size)
        symbols = torch.randint(2, 6, (total, batch_size), generator=generator)  # a..d are ids 2..5
        symbols[0] = 0  # E
        symbols[lengths - 1, batch_index] = 1  # B, the trigger
        label = torch.zeros(batch_size, dtype=torch.long)
        for low, high in self.windows:
            position = uniform_int(low, high, batch_size, generator) - 1  # 1-based → index
            is_y = torch.randint(0, 2, (batch_size,), generator=generator)
            symbols[position, batch_index] = 6 + is_y  # X = 6, Y = 7
            label = label * 2 + is_y  # XX → 0 (Q), XY → 1 (R), YX → 2 (S), YY → 3 (U)
        inputs = one_hot_sequences(symbols, lengths, self.input_size)
        return SequenceBatch(inputs, lengths, label)

    def wrong(self, outputs: Tensor, batch: SequenceBatch) -> Tensor:
        return end_class_wrong(outputs, batch, self.tolerance)


def end_prediction(outputs: Tensor, batch: SequenceBatch) -> Tensor:
    """Convenience for inspection: each sequence's output at its last real step (B, O)."""
    return last_step(outputs, batch.lengths)
