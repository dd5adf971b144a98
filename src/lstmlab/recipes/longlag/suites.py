"""Named sets of experiments: `quick` (a smoke test, ≤ 3 min), `paper` (the 1997 table,
CPU-sized, ≤ 30 min) and `long` (adding and multiplication at the paper's T = 500 and 1000).

The `paper` suite keeps the paper's lags where the CPU budget allows (Reber, 2a p = 100,
adding / multiplication T = 100, temporal order 6a / 6b at the paper's lengths) and
shrinks the rest (2c with q = p = 50, the modern adding problem at T = 200, copy at
T = 50). Update caps (1000–2000 updates of 32 sequences, 150 s per run) are chosen so
that the whole suite, 3 models × 3 seeds, fits in about 30 minutes on 2 cores with
`--jobs 2`; a model that has not succeeded by then is
counted as a failure, exactly as the paper counts runs that hit its sequence cap.
"""

from __future__ import annotations

from dataclasses import replace

from .experiment import Experiment, longlag_train_config
from .task_registry import make_task

QUICK_TRAIN = longlag_train_config(max_steps=300, budget=30, eval_interval=50)
PAPER_TRAIN = longlag_train_config(max_steps=2000, budget=150, eval_interval=100)


def quick_suite() -> list[Experiment]:
    """Every task at a toy size, one seed: exercises every code path in about a minute."""
    sizes = [("reber", None), ("noise-free", 10), ("very-long-lag", 10), ("adding", 20),
             ("multiplication", 20), ("temporal-order-6a", 20), ("temporal-order-6b", 20),
             ("modern-adding", 20), ("copy", 5)]
    return [Experiment(make_task(name, length), lstm_hidden=16, train=QUICK_TRAIN, seeds=1, eval_size=256)
            for name, length in sizes]


def paper_suite() -> list[Experiment]:
    """The 1997 experiments (plus the two modern standards), sized for 2 CPU cores."""
    def experiment(name: str, length: int | None, hidden: int = 32, batch_size: int = 32, eval_size: int = 2560,
                   **train_changes) -> Experiment:
        return Experiment(make_task(name, length), lstm_hidden=hidden, train=replace(PAPER_TRAIN, **train_changes),
                          seeds=3, batch_size=batch_size, eval_size=eval_size)

    return [
        experiment("reber", None, hidden=16, eval_size=512),
        experiment("noise-free", 100, batch_size=8, max_steps=4000),  # 32,000 sequences, more updates
        experiment("very-long-lag", 50, max_steps=1500),
        experiment("adding", 100),
        experiment("multiplication", 100),
        experiment("temporal-order-6a", None, max_steps=1500),
        experiment("temporal-order-6b", None, max_steps=1500),
        experiment("modern-adding", 200),
        experiment("copy", 50, max_steps=1000),
    ]


def long_suite() -> list[Experiment]:
    """Exp. 4 and 5 at the paper's longer lags, T = 500 and 1000 (~45 minutes on 2 cores).

    Kept out of `paper` so that it stays within 30 minutes: a failing run uses its whole
    budget, and at T = 1000 every update costs ten times one at T = 100.
    """
    return [Experiment(make_task(name, length), lstm_hidden=32, seeds=3,
                       train=replace(PAPER_TRAIN, budget=180))
            for name in ("adding", "multiplication") for length in (500, 1000)]


SUITES = {"quick": quick_suite, "paper": paper_suite, "long": long_suite}
