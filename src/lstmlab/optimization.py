"""The optimizers and the learning-rate schedule of the shared trainer.

AdamW, SGD (with momentum and L2), and NT-ASGD (Merity et al. 2017): SGD that switches
to averaged SGD once validation stops improving; evaluation then runs on the averaged
weights (`asgd_averages`). With any optimizer, `WeightAverage` keeps an exponential moving
average of the weights that evaluation and best.pt use instead (``ema_decay``). The
schedule is a linear warm-up followed by constant, linear or cosine decay over the step
budget or the time budget, whichever is further.
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
def weights_replaced(replacements: list[tuple[nn.Parameter, torch.Tensor]]) -> Iterator[None]:
    """Inside the block each parameter holds its replacement (an average of its past values);
    the parameters' own values are restored after, also on an exception."""
    saved = [(parameter, parameter.detach().clone()) for parameter, _ in replacements]
    for parameter, value in replacements:
        parameter.data.copy_(value)
    try:
        yield
    finally:
        for parameter, value in saved:
            parameter.data.copy_(value)


def asgd_averages(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[tuple[nn.Parameter, torch.Tensor]]:
    """Each parameter with ASGD's average of it (those the averaging optimizer holds one for)."""
    found = ((parameter, optimizer.state.get(parameter, {}).get("ax")) for parameter in model.parameters())
    return [(parameter, average) for parameter, average in found if average is not None]


class WeightAverage:
    """An exponential moving average of parameters (Polyak averaging with decay): after each
    optimizer step ``average ← decay·average + (1 − decay)·weight``. The decay starts low and
    rises to `decay`, ``min(decay, (1 + t) / (10 + t))`` at update t, so the first updates
    do not keep the initial weights for thousands of steps."""

    def __init__(self, parameters: list[nn.Parameter], decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"ema_decay: expected a decay in (0, 1) (e.g. 0.999), or 0 for no average, got {decay}")
        self.parameters, self.decay, self.updates = parameters, decay, 0
        self.averages = [parameter.detach().clone() for parameter in parameters]

    @torch.no_grad()
    def update(self) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for average, parameter in zip(self.averages, self.parameters):
            average.lerp_(parameter.detach(), 1.0 - decay)
        self.updates += 1

    def replacements(self) -> list[tuple[nn.Parameter, torch.Tensor]]:
        return list(zip(self.parameters, self.averages))

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "averages": self.averages}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        shapes = [tuple(average.shape) for average in state["averages"]]
        if shapes != [tuple(parameter.shape) for parameter in self.parameters]:
            raise ValueError(f"the saved weight average holds {len(shapes)} tensors that do not fit this "
                             f"model's {len(self.parameters)} parameters")
        with torch.no_grad():
            for average, saved in zip(self.averages, state["averages"]):
                average.copy_(saved)
        self.updates = int(state["updates"])


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
