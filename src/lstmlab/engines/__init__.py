"""Engines: one specification of the math (`lstmlab.cell`), several executions.

- ``reference``: plain PyTorch time loop; every option, the trace; the specification.
- ``native``: torch's fused kernel (oneDNN on CPU); plain cells (and weight drop); the
  trace is recomputed from the kernel's outputs with batched GEMMs.

``engine="auto"`` picks the fastest engine that can run the request and can say why
(`describe`). Nothing falls back silently: asking a named engine for something it
cannot do is an error that says which engine can.
"""

from __future__ import annotations

from types import ModuleType

from ..cell import CellSpec
from . import native, reference
from .base import EngineResult, SequenceBatch

ENGINES: dict[str, ModuleType] = {"reference": reference, "native": native}
ENGINE_CHOICES = ("auto", *ENGINES)


def available() -> list[str]:
    """Names accepted by ``engine=`` (besides "auto")."""
    return list(ENGINES)


def check_engine_name(engine: object) -> str:
    if not isinstance(engine, str) or engine not in ENGINE_CHOICES:
        raise ValueError(f"engine: expected one of {', '.join(map(repr, ENGINE_CHOICES))}, got {engine!r}")
    return engine


def select(requested: str, spec: CellSpec, need_trace: bool) -> tuple[str, str]:
    """(engine name, reason) for a forward call."""
    check_engine_name(requested)
    native_problem = native.unsupported_reason(spec, need_trace)
    if requested == "native" and native_problem:
        raise ValueError(f"engine 'native' cannot run this: {native_problem}; use engine='reference' or 'auto'")
    if requested != "auto":
        return requested, f"engine={requested!r} was requested"
    if native_problem is None:
        detail = "; gates recomputed from its outputs" if need_trace else ""
        return "native", f"auto: plain cell runs on torch's fused kernel (oneDNN on CPU){detail}"
    return "reference", f"auto: reference time loop, because {native_problem}"


def describe(module=None) -> str:
    """Which engine runs and why: for `module` (an lstmlab.LSTM), or the general rule."""
    if module is None:
        lines = [f"engines available: {', '.join(available())}",
                 "auto: 'native' (torch's fused kernel, oneDNN on CPU) for plain cells, with the trace",
                 "      recomputed from its outputs; 'reference' (PyTorch time loop) for the variants"]
        return "\n".join(lines)
    spec = module.spec
    without, why_without = select(module.engine, spec, need_trace=False)
    lines = [f"{type(module).__name__}(engine={module.engine!r}, variants: {', '.join(spec.variant_names()) or 'none'})",
             f"  forward without trace: {without} ({why_without})"]
    with_trace, why_with = select(module.engine, spec, need_trace=True)
    lines.append(f"  forward with trace:    {with_trace} ({why_with})")
    return "\n".join(lines)


def run(name: str, batch, need_trace: bool):
    return ENGINES[name].forward(batch, need_trace)
