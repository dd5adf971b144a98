"""Two modern long-lag standards: the adding problem (modern form) and copy memory.

Both come from the unitary/orthogonal RNN literature (Le et al. 2015; Arjovsky et al.
2016) and are the usual benchmarks since; each has a closed-form baseline that a net
which ignores the input can reach, so "learned something" has a precise meaning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .task_base import LongLagTask, SequenceBatch, check_int, end_regression_wrong, one_hot_sequences


@dataclass
class ModernAdding(LongLagTask):
    """The adding problem as used since Le et al. (2015).

    Every sequence has length T; each step is a pair (value ~ U[0, 1], marker). Exactly
    two markers are 1: one at a uniform position in the first half [0, T/2), one in the
    second half [T/2, T); all other markers are 0. The target at the end is X1 + X2.
    Predicting the constant 1 gives MSE Var(X1 + X2) = 2/12 ≈ 0.167, the baseline.

    Success: held-out MSE below 0.01 (6 % of the baseline). "Wrong" counts sequences
    with |error| ≥ 0.16 (the paper's 0.04 on its target scale 0.5 + (X1+X2)/4).
    """

    T: int = 200  # sequence length

    name = "modern-adding"
    kind = "end_regression"
    criterion = "held-out MSE < 0.01 (baseline 0.167)"
    tolerance = 0.16
    success_mse = 0.01

    def __post_init__(self) -> None:
        check_int("T (sequence length)", self.T, 2)

    @property
    def input_size(self) -> int:
        return 2

    @property
    def output_size(self) -> int:
        return 1

    @property
    def lag(self) -> int:
        return self.T

    @property
    def label(self) -> str:
        return f"modern-adding-T{self.T}"

    def sample(self, batch_size: int, generator: torch.Generator) -> SequenceBatch:
        half = self.T // 2
        values = torch.rand(self.T, batch_size, generator=generator)  # (T, B)
        first = torch.randint(0, half, (batch_size,), generator=generator)
        second = torch.randint(half, self.T, (batch_size,), generator=generator)
        batch_index = torch.arange(batch_size)
        markers = torch.zeros(self.T, batch_size)
        markers[first, batch_index] = 1.0
        markers[second, batch_index] = 1.0
        inputs = torch.stack([values, markers], dim=-1)  # (T, B, 2)
        target = values[first, batch_index] + values[second, batch_index]
        return SequenceBatch(inputs, torch.full((batch_size,), self.T), target)

    def wrong(self, outputs: Tensor, batch: SequenceBatch) -> Tensor:
        return end_regression_wrong(outputs, batch, self.tolerance)

    def is_success(self, wrong_fraction: float, loss: float) -> bool:
        return loss < self.success_mse

    def baseline_loss(self) -> float:
        return 2.0 / 12.0


@dataclass
class CopyMemory(LongLagTask):
    """The copy-memory task of Arjovsky et al. (2016).

    Alphabet of 10: 0 is blank, 1 … 8 are data symbols, 9 is the delimiter. The input is
    10 data symbols drawn uniformly from 1 … 8, then T − 1 blanks, the delimiter, then 10
    blanks (length T + 20). The target is T + 10 blanks followed by the 10 data symbols:
    the net must reproduce them after a lag of T. The memoryless baseline predicts blank
    for the first T + 10 steps and a uniform guess over the 8 symbols for the last 10:
    cross-entropy 10 · ln 8 / (T + 20) per step.

    A sequence is right when all 10 recalled symbols are the most likely outputs;
    success: ≤ 1 % of held-out sequences wrong.
    """

    T: int = 100  # the lag: blanks between the data and the delimiter, plus one
    copy_length: int = 10  # number of data symbols to remember
    num_data_symbols: int = 8  # size of the data alphabet

    name = "copy"
    kind = "step_class"
    max_wrong_fraction = 0.01
    criterion = "all copied symbols right; ≤ 1 % of held-out sequences wrong"

    def __post_init__(self) -> None:
        check_int("T (copy lag)", self.T, 1)
        check_int("copy_length", self.copy_length, 1)
        check_int("num_data_symbols", self.num_data_symbols, 2)

    @property
    def delimiter(self) -> int:
        return self.num_data_symbols + 1

    @property
    def input_size(self) -> int:
        return self.num_data_symbols + 2

    @property
    def output_size(self) -> int:
        return self.num_data_symbols + 1  # blank + data symbols; the delimiter is never a target

    @property
    def total_length(self) -> int:
        return self.T + 2 * self.copy_length

    @property
    def lag(self) -> int:
        return self.T

    @property
    def label(self) -> str:
        return f"copy-T{self.T}"

    def sample(self, batch_size: int, generator: torch.Generator) -> SequenceBatch:
        n, length = self.copy_length, self.total_length
        data = torch.randint(1, self.num_data_symbols + 1, (n, batch_size), generator=generator)
        symbols = torch.zeros(length, batch_size, dtype=torch.long)  # (T + 2n, B)
        symbols[:n] = data
        symbols[self.T + n - 1] = self.delimiter
        targets = torch.zeros(length, batch_size, dtype=torch.long)
        targets[-n:] = data
        lengths = torch.full((batch_size,), length)
        mask = torch.ones(length, batch_size, dtype=torch.bool)
        return SequenceBatch(one_hot_sequences(symbols, lengths, self.input_size), lengths, targets, mask)

    def wrong(self, outputs: Tensor, batch: SequenceBatch) -> Tensor:
        recalled = outputs[-self.copy_length :].argmax(-1)  # (n, B)
        return (recalled != batch.targets[-self.copy_length :]).any(0)

    def baseline_loss(self) -> float:
        return self.copy_length * math.log(self.num_data_symbols) / self.total_length

    def baseline_outputs(self, batch_size: int) -> Tensor:
        """Logits of the memoryless baseline: certain blank, then uniform over data symbols."""
        logits = torch.full((self.total_length, batch_size, self.output_size), -1e9)
        logits[: -self.copy_length, :, 0] = 0.0
        logits[-self.copy_length :, :, 1:] = 0.0
        return logits
