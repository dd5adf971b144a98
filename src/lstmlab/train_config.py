"""The shared trainer's settings (`TrainConfig`, also importable as `lstmlab.train.TrainConfig`):
the optimizer and its schedule, the budget, evaluation, best.pt, logging. Every recipe's
config has it as its ``[train]`` section; ``lstmlab train RECIPE --help`` lists the fields.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from lstmlab.config import choice


@dataclass
class TrainConfig:
    """How to optimise (shared by every recipe)."""

    optimizer: str = choice("adamw", ("adamw", "sgd", "ntasgd"))  # ntasgd: SGD, then averaged SGD
    lr: float = 3e-3  # peak learning rate
    weight_decay: float = 0.0  # decoupled for AdamW, L2 for SGD
    momentum: float = 0.0  # SGD only
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    schedule: str = choice("cosine", ("constant", "linear", "cosine"))  # decay after warm-up
    warmup_steps: int = 0  # linear warm-up from 0 to lr
    min_lr_ratio: float = 0.05  # the decayed LR ends at lr * min_lr_ratio
    max_steps: int = 0  # step budget; 0 = none (then budget must be set)
    budget: float = 0.0  # time budget in seconds of training (evaluation excluded); 0 = none
    eval_interval: int = 0  # evaluate every this many steps; 0 = only at the end
    eval_interval_seconds: float = 0.0  # ... or every this many seconds; 0 = off
    log_interval: int = 25  # steps between training log records
    nonmono: int = 5  # NT-ASGD: switch to averaging when validation has not improved for this many evaluations
    ema_decay: float = 0.0  # evaluate and write best.pt with a moving average of the weights (e.g. 0.999); 0 = off
    best_metric: str = "loss"  # the validation metric that chooses best.pt (any key evaluate returns)
    best_direction: str = choice("lower", ("lower", "higher"))  # lower: loss, wer; higher: bleu, accuracy
    precision: str = choice("float32", ("float32", "bfloat16"))  # bfloat16: training forward under autocast
    seed: int = 1234  # seeds torch, python and numpy
    threads: int = 0  # torch intra-op threads; 0 = torch's default (1 is faster on a busy machine)
    log_format: str = choice("jsonl", ("jsonl", "csv"))  # metrics.jsonl or metrics.csv in the run folder
    progress: bool = True  # show a progress bar


def autocast(model: nn.Module, precision: str) -> contextlib.AbstractContextManager:
    """The context a training forward runs in: nothing for float32; for bfloat16,
    ``torch.autocast`` on the model's device. There matrix products take bfloat16 operands
    (torch's GEMM-like ops, and the fused LSTM engine's GEMMs over all steps) while the
    weights, the optimizer, the LSTM's recurrence and states stay float32. Worth it on CPUs
    with bfloat16 instructions (avx512_bf16, AMX); elsewhere bfloat16 is emulated, and slower."""
    if precision == "float32":
        return contextlib.nullcontext()
    if precision != "bfloat16":
        raise ValueError(f"precision: expected 'float32' or 'bfloat16', got {precision!r}")
    device = next(model.parameters()).device.type
    return torch.autocast(device, dtype=torch.bfloat16)
