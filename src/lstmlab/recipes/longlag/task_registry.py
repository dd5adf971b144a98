"""Task names → task objects, from the command line (name + length) or a saved config."""

from __future__ import annotations

from .task_base import LongLagTask
from .modern_tasks import CopyMemory, ModernAdding
from .tasks import (
    Adding,
    EmbeddedReber,
    Multiplication,
    NoiseFreeLongLag,
    TemporalOrder,
    VeryLongLag,
)

# command-line name → (class, name of the field that `--length` sets, fixed fields, help)
TASKS: dict[str, tuple[type[LongLagTask], str | None, dict, str]] = {
    "reber": (EmbeddedReber, None, {}, "Exp. 1: embedded Reber grammar (no length)"),
    "noise-free": (NoiseFreeLongLag, "p", {}, "Exp. 2a: (y, a1..a(p-1), y) / (x, ..., x); length = p"),
    "very-long-lag": (VeryLongLag, "q", {}, "Exp. 2c: q distractors (p = q symbols); length = q"),
    "adding": (Adding, "T", {}, "Exp. 4: adding problem, values in [-1,1]; length = T"),
    "multiplication": (Multiplication, "T", {}, "Exp. 5: multiplication problem; length = T"),
    "temporal-order-6a": (TemporalOrder, None, {"relevant": 2}, "Exp. 6a: 2 relevant symbols, 4 classes"),
    "temporal-order-6b": (TemporalOrder, None, {"relevant": 3}, "Exp. 6b: 3 relevant symbols, 8 classes"),
    "modern-adding": (ModernAdding, "T", {}, "adding with U[0,1] values, target X1+X2; length = T"),
    "copy": (CopyMemory, "T", {}, "copy-memory task; length = lag T"),
}

TASK_CLASSES: dict[str, type[LongLagTask]] = {cls.name: cls for cls, _, _, _ in TASKS.values()}


def make_task(name: str, length: int | None = None, **options) -> LongLagTask:
    """Build a task from its command-line name and optional length.

    For temporal order `length` is the minimal sequence length (paper: 100) and scales
    the positions of the relevant symbols with it. For very-long-lag the number of
    distractor symbols p equals q unless `p=` is given.
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of: {', '.join(TASKS)}")
    cls, length_field, fixed, _ = TASKS[name]
    arguments = {**fixed, **options}
    if length is not None:
        if name.startswith("temporal-order"):
            arguments["scale"] = length / 100.0
        elif length_field is None:
            raise ValueError(f"task {name!r} has no length parameter, but --length {length} was given")
        else:
            arguments[length_field] = length
            if name == "very-long-lag":
                arguments.setdefault("p", length)
    return cls(**arguments)


def task_from_config(config: dict) -> LongLagTask:
    """Inverse of `LongLagTask.config()`: {"task": name, field: value, ...} → task."""
    config = dict(config)
    name = config.pop("task", None)
    if name not in TASK_CLASSES:
        raise ValueError(f"task config names unknown task {name!r}; expected one of {sorted(TASK_CLASSES)}")
    return TASK_CLASSES[name](**config)
