"""Shared pieces of the long-time-lag tasks: the batch type and the per-kind losses.

Every task produces zero-padded, time-major batches (T, B, I) so one model call runs the
whole batch; padding sits *after* each sequence's end, so a unidirectional network's
output at a sequence's last real step never sees the padding. Outputs are (T, B, O).

Shape legend: T time steps (the longest sequence in the batch), B sequences, I input
features, O output units.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class SequenceBatch:
    """One batch of a task, time-major and zero-padded after each sequence's end."""

    inputs: Tensor  # (T, B, I) float32; zero after each sequence's end
    lengths: Tensor  # (B,) int64; real length of each sequence (≤ T)
    targets: Tensor  # end tasks: (B,) float or int64; per-step tasks: (T, B) int64 or (T, B, O) float
    mask: Tensor | None = None  # (T, B) bool: steps whose per-step targets count; None for end tasks

    @property
    def batch_size(self) -> int:
        return int(self.inputs.shape[1])


def one_hot_sequences(symbols: Tensor, lengths: Tensor, num_symbols: int) -> Tensor:
    """(T, B) int64 symbol ids → (T, B, num_symbols) float one-hot, zeroed after each end."""
    valid = torch.arange(symbols.shape[0]).unsqueeze(1) < lengths.unsqueeze(0)  # (T, B)
    return F.one_hot(symbols, num_symbols).float() * valid.unsqueeze(-1)


def last_step(outputs: Tensor, lengths: Tensor) -> Tensor:
    """The output at each sequence's last real step: (T, B, O) → (B, O)."""
    batch_index = torch.arange(outputs.shape[1])
    return outputs[lengths - 1, batch_index]


def uniform_int(low: int, high: int, size: int, generator: torch.Generator) -> Tensor:
    """`size` integers drawn uniformly from the closed range [low, high]."""
    return torch.randint(low, high + 1, (size,), generator=generator)


def check_int(name: str, value: object, minimum: int) -> None:
    """Raise a clear error unless `value` is an int ≥ minimum."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")


class LongLagTask:
    """Base of every task: a dataclass of its parameters plus generators and criteria.

    Subclasses set `name`, `kind`, the sizes, and implement `sample`. The `kind` picks how
    outputs are scored:

    * "end_regression": one real target at the sequence end; outputs (T, B, 1).
    * "end_class": one class at the sequence end; outputs (T, B, C) logits.
    * "step_class": a class at every step where `mask` is true; outputs (T, B, C) logits.
    * "step_multilabel": a set of legal next symbols at every masked step (Reber).

    `wrong(outputs, batch)` applies the per-sequence criterion of the paper (or of the
    modern task); `is_success` turns the held-out wrong fraction and loss into the verdict.
    """

    name: ClassVar[str] = "task"
    kind: ClassVar[str] = "end_regression"
    max_wrong_fraction: ClassVar[float] = 0.0  # success: at most this fraction of eval sequences wrong
    criterion: ClassVar[str] = ""  # one line for tables and docs

    # --- what subclasses provide -------------------------------------------------------
    @property
    def input_size(self) -> int:
        raise NotImplementedError

    @property
    def output_size(self) -> int:
        raise NotImplementedError

    @property
    def lag(self) -> int:
        """The task's size parameter for plots: its minimal sequence length / time lag."""
        raise NotImplementedError

    @property
    def label(self) -> str:
        """A short unique name of this configuration, e.g. "adding-T100"."""
        raise NotImplementedError

    def sample(self, batch_size: int, generator: torch.Generator) -> SequenceBatch:
        raise NotImplementedError

    def baseline_loss(self) -> float | None:
        """The closed-form loss of the best input-ignoring predictor, where one exists."""
        return None

    # --- shared behaviour ----------------------------------------------------------------
    def config(self) -> dict:
        """Plain-dict description that `task_from_config` turns back into this task."""
        return {"task": self.name, **{f.name: getattr(self, f.name) for f in fields(self)}}

    def evaluation_batch(self, size: int, generator: torch.Generator) -> SequenceBatch:
        """The held-out sequences the success criterion is judged on."""
        return self.sample(size, generator)

    def loss(self, outputs: Tensor, batch: SequenceBatch) -> Tensor:
        """Differentiable mean loss: MSE for regression, cross-entropy for classes."""
        if self.kind == "end_regression":
            return F.mse_loss(last_step(outputs, batch.lengths)[:, 0], batch.targets)
        if self.kind == "end_class":
            return F.cross_entropy(last_step(outputs, batch.lengths), batch.targets)
        if self.kind == "step_class":
            per_step = F.cross_entropy(outputs.flatten(0, 1), batch.targets.flatten(), reduction="none")
            return _masked_mean(per_step.view(batch.mask.shape), batch.mask)
        if self.kind == "step_multilabel":
            # soft targets: the legal next symbols are equally likely (true of the Reber grammar)
            distribution = batch.targets / batch.targets.sum(-1, keepdim=True).clamp(min=1)
            per_step = -(distribution * F.log_softmax(outputs, dim=-1)).sum(-1)
            return _masked_mean(per_step, batch.mask)
        raise ValueError(f"unknown task kind {self.kind!r}")

    def wrong(self, outputs: Tensor, batch: SequenceBatch) -> Tensor:
        """(B,) bool: which sequences the task's criterion counts as wrong."""
        raise NotImplementedError

    def is_success(self, wrong_fraction: float, loss: float) -> bool:
        return wrong_fraction <= self.max_wrong_fraction

    def horizon(self) -> int:
        """The longest sequence among 256 samples of a fixed seed: the memory span to plan for."""
        return int(self.sample(256, torch.Generator().manual_seed(0)).lengths.max())


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of `values` (T, B) over the steps where `mask` (T, B) is true."""
    return (values * mask).sum() / mask.sum().clamp(min=1)


def end_regression_wrong(outputs: Tensor, batch: SequenceBatch, tolerance: float) -> Tensor:
    """Wrong when the absolute error at the sequence end is ≥ tolerance."""
    return (last_step(outputs, batch.lengths)[:, 0] - batch.targets).abs() >= tolerance


def end_class_wrong(outputs: Tensor, batch: SequenceBatch, tolerance: float) -> Tensor:
    """Wrong unless every output unit is within `tolerance` of the one-hot target at the end.

    The paper's output units are sigmoids; ours are a softmax, whose probabilities play
    their part: |p_k − target_k| < tolerance for all k.
    """
    probabilities = last_step(outputs, batch.lengths).softmax(-1)  # (B, C)
    target = F.one_hot(batch.targets, probabilities.shape[-1]).float()
    return ((probabilities - target).abs() >= tolerance).any(-1)

