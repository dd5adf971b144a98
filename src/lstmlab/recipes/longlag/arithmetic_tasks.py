"""Experiments 4 and 5 of Hochreiter & Schmidhuber (1997): the adding and multiplication problems.

Continuous values must be stored across a long lag and combined at the end. As in
`tasks`, each class is a dataclass of the task's parameters; its docstring quotes the
paper's definition and says how we read it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .task_base import LongLagTask, SequenceBatch, check_int, end_regression_wrong, uniform_int


@dataclass
class Adding(LongLagTask):
    """Exp. 4: the adding problem (the 1997 version).

    Paper: each element is a pair. The first component is a real value drawn from
    [−1, 1]; the second is 1.0, 0.0 or −1.0 and is a marker. Sequence lengths are drawn
    between T and T + T/10. Exactly two pairs are marked with 1.0: first one of the first
    ten pairs (its value is X1), then one of the first T/2 − 1 still unmarked pairs (its
    value is X2). The markers of all other pairs are 0, except the first and the last
    pair, whose markers are −1. In the rare case that the first pair gets marked, its
    value is set to zero. The target, given at the sequence end only, is
    0.5 + (X1 + X2)/4. A sequence is processed correctly if the absolute error at the
    end is below 0.04. Minimal time lag: T/2.

    Here: "one of the first T/2 − 1 still unmarked pairs" is read as positions 0 … T/2 − 1
    minus X1's position (T/2 − 1 candidates). The output is one linear unit.
    """

    T: int = 100  # minimal sequence length; lengths are drawn from [T, T + T // 10]

    name = "adding"
    kind = "end_regression"
    max_wrong_fraction = 0.01  # paper: 1 wrong of 2560 after training; we allow 1 %
    criterion = "|error| < 0.04 at the end; ≤ 1 % of held-out sequences wrong"
    tolerance = 0.04
    value_range = (-1.0, 1.0)  # the first components are uniform in this range
    first_pair_value = 0.0  # what a marked first pair's value becomes (paper: zero)

    def __post_init__(self) -> None:
        check_int("T (minimal sequence length)", self.T, 20)

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
        return f"{self.name}-T{self.T}"

    def target(self, x1: Tensor, x2: Tensor) -> Tensor:
        return 0.5 + (x1 + x2) / 4.0

    def sample(self, batch_size: int, generator: torch.Generator) -> SequenceBatch:
        lengths = uniform_int(self.T, self.T + self.T // 10, batch_size, generator)  # (B,)
        total = int(lengths.max())
        low, high = self.value_range
        values = low + (high - low) * torch.rand(total, batch_size, generator=generator)  # (T, B)
        markers = torch.zeros(total, batch_size)
        batch_index = torch.arange(batch_size)
        markers[0] = -1.0
        markers[lengths - 1, batch_index] = -1.0
        first_position = torch.randint(0, 10, (batch_size,), generator=generator)
        # one of the T/2 − 1 positions in [0, T/2) that are not first_position
        draw = torch.randint(0, self.T // 2 - 1, (batch_size,), generator=generator)
        second_position = draw + (draw >= first_position).long()
        markers[first_position, batch_index] = 1.0
        markers[second_position, batch_index] = 1.0
        first_marked = markers[0] == 1.0
        values[0] = torch.where(first_marked, torch.tensor(self.first_pair_value), values[0])
        valid = torch.arange(total).unsqueeze(1) < lengths.unsqueeze(0)  # (T, B)
        inputs = torch.stack([values, markers], dim=-1) * valid.unsqueeze(-1)  # (T, B, 2)
        x1 = values[first_position, batch_index]
        x2 = values[second_position, batch_index]
        return SequenceBatch(inputs, lengths, self.target(x1, x2))

    def wrong(self, outputs: Tensor, batch: SequenceBatch) -> Tensor:
        return end_regression_wrong(outputs, batch, self.tolerance)

    @property
    def first_pair_marked_probability(self) -> float:
        """P(the first pair is marked) = 1/10 (X1 there) + 9/10 · 1/(T/2 − 1) (X2 there)."""
        return 0.1 + 0.9 / (self.T // 2 - 1)

    def baseline_constant(self) -> float:
        """The best input-ignoring prediction, E[target]: 0.5 (the values have mean zero)."""
        return 0.5

    def baseline_loss(self) -> float:
        """MSE of the constant 0.5: Var((X1 + X2)/4) = (2 − P0) · (1/3) / 16.

        Each value has variance 1/3, except that with probability P0 (the first pair is
        marked) one of them is the constant zero.
        """
        return (2.0 - self.first_pair_marked_probability) / 48.0


@dataclass
class Multiplication(Adding):
    """Exp. 5: the multiplication problem.

    Paper: as the adding problem, except that the values are drawn from [0, 1], a marked
    first pair gets the value 1.0 (the neutral element of the product), and the target
    at the end is X1 × X2. A sequence is correct if the absolute error at the end is
    below 0.04. The paper stops training when fewer than n_seq of the 2000 most recent
    sequences are wrong, with n_seq = 140 or 13; we use the looser 140 / 2000 = 7 %.
    """

    T: int = 100  # minimal sequence length; lengths are drawn from [T, T + T // 10]

    name = "multiplication"
    max_wrong_fraction = 0.07  # paper's n_seq = 140 of 2000
    criterion = "|error| < 0.04 at the end; ≤ 7 % of held-out sequences wrong"
    value_range = (0.0, 1.0)
    first_pair_value = 1.0

    def target(self, x1: Tensor, x2: Tensor) -> Tensor:
        return x1 * x2

    def baseline_constant(self) -> float:
        """E[X1 X2] = (1 − P0)/4 + P0/2: with probability P0 one factor is the constant 1."""
        p0 = self.first_pair_marked_probability
        return (1 - p0) / 4 + p0 / 2

    def baseline_loss(self) -> float:
        """Var(X1 X2) = E[(X1 X2)²] − E[X1 X2]², E[(X1 X2)²] = (1 − P0)/9 + P0/3."""
        p0 = self.first_pair_marked_probability
        return (1 - p0) / 9 + p0 / 3 - self.baseline_constant() ** 2
