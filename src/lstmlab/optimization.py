"""The optimizers and the learning-rate schedule of the shared trainer.

AdamW, SGD (with momentum and L2), and NT-ASGD (Merity et al. 2017): SGD that switches
to averaged SGD once validation stops improving; evaluation then runs on the averaged
weights (`averaged_weights`). The schedule is a linear warm-up followed by constant,
linear or cosine decay over the step budget or the time budget, whichever is further.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator

import torch
from torch import nn


def make_optimizer(config: Any, parameters: list[nn.Parameter]) -> torch.optim.Optimizer:
    """AdamW, or SGD for "sgd" and for NT-ASGD's first phase (`config`: a TrainConfig)."""
    if config.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay)


def averaging_optimizer(config: Any, parameters: list[nn.Parameter]) -> torch.optim.Optimizer:
    """NT-ASGD's second phase: averaged SGD from now on (t0=0, no decay of the step)."""
    return torch.optim.ASGD(parameters, lr=config.lr, t0=0, lambd=0.0, weight_decay=config.weight_decay)


def validation_stalled(losses: list[float], nonmono: int) -> bool:
    """NT-ASGD's trigger: the latest loss is worse than the best one older than `nonmono` evaluations."""
    return len(losses) > nonmono and losses[-1] > min(losses[:-nonmono])


@contextlib.contextmanager
def averaged_weights(model: nn.Module, optimizer: torch.optim.Optimizer, active: bool) -> Iterator[None]:
    """Inside the block the model holds ASGD's averaged weights (when `active`); restored after."""
    saved = []
    if active:
        for parameter in model.parameters():
            average = optimizer.state.get(parameter, {}).get("ax")
            if average is not None:
                saved.append((parameter, parameter.detach().clone()))
                parameter.data.copy_(average)
    try:
        yield
    finally:
        for parameter, value in saved:
            parameter.data.copy_(value)


def learning_rate(config: Any, step: int, elapsed: float) -> float:
    """LR after `step` steps and `elapsed` seconds: warm-up, then decay over the budget."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = 0.0
    if config.max_steps:
        progress = max(progress, (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps))
    if config.budget:
        progress = max(progress, elapsed / config.budget)
    progress = min(progress, 1.0)
    if config.schedule == "constant":
        return config.lr
    if config.schedule == "linear":
        shape = 1.0 - progress
    else:
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.lr * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * shape)
