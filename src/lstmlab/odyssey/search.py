"""The random search of Greff et al. (2017), CPU-sized.

Trial k of a task draws its hyper-parameters from `random.Random` seeded by (task, k):
the learning rate log-uniform in [3e-4, 3e-2] (Greff: [1e-6, 1e-2] for SGD with momentum;
we train with Adam, whose useful range sits higher, and narrow the range because a CPU
affords ten trials where Greff ran two hundred), the hidden size from the task's list,
and the dropout uniform in [0, 0.5] (Greff drew input noise; we drop the recurrent
output). Every variant gets the same trials: the same hyper-parameters and the same
seed, so the variants differ in the cell alone.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass
from typing import Any

LR_RANGE = (3e-4, 3e-2)
DROPOUT_RANGE = (0.0, 0.5)


@dataclass(frozen=True)
class Trial:
    """One point of the search: which trial of which task, its seed and hyper-parameters."""

    task: str
    index: int
    seed: int
    hyper: dict[str, Any]


def draw_trials(task: str, count: int, hidden_sizes: tuple[int, ...]) -> list[Trial]:
    """Trials 0 … count-1 of `task` (the same for every variant and every call)."""
    trials = []
    for index in range(count):
        rng = random.Random(zlib.crc32(f"odyssey/{task}/{index}".encode()))
        lr = math.exp(rng.uniform(math.log(LR_RANGE[0]), math.log(LR_RANGE[1])))
        hyper = {"lr": lr, "hidden_size": rng.choice(hidden_sizes), "dropout": rng.uniform(*DROPOUT_RANGE)}
        trials.append(Trial(task, index, 1000 + index, hyper))
    return trials
