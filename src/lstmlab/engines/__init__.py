"""Engines: one specification of the math (`lstmlab.cell`), several executions.

- ``reference``: plain PyTorch time loop; every option, the trace; the specification.
- ``native``: torch's fused kernel (oneDNN on CPU); plain cells (and weight drop); the
  trace is recomputed from the kernel's outputs with batched GEMMs.
- ``fused``: lstmlab's C++ time loop (compiled at first use); every cell (peephole,
  coupled, layer norm, zoneout; Greff's removed parts one at a time) with the trace at no
  extra arithmetic; CPU float32/64. Not FGR (the reference loop runs it).
  Under torch.compile and torch.export it runs as the custom ops of `fused_ops`, and
  "auto" picks it there for plain cells too.

``engine="auto"`` picks the fastest engine that can run the request and can say why
(`describe`). Nothing falls back silently: asking a named engine for something it
cannot do is an error that says which engine can.
"""

from __future__ import annotations

from types import ModuleType

from torch import Tensor

from ..cell import CellSpec
from . import fused, fused_ops, native, reference
from .base import EngineResult, SequenceBatch

ENGINES: dict[str, ModuleType] = {"reference": reference, "native": native, "fused": fused}
ENGINE_CHOICES = ("auto", *ENGINES)


def available() -> list[str]:
    """Names accepted by ``engine=`` (besides "auto")."""
    return list(ENGINES)


def check_engine_name(engine: object) -> str:
    if not isinstance(engine, str) or engine not in ENGINE_CHOICES:
        raise ValueError(f"engine: expected one of {', '.join(map(repr, ENGINE_CHOICES))}, got {engine!r}")
    return engine


def select(requested: str, spec: CellSpec, need_trace: bool, like: Tensor | None = None) -> tuple[str, str]:
    """(engine name, reason) for a forward call. A named engine that cannot run it raises.

    like: a tensor of the call (device and dtype), e.g. the input or a weight.
    """
    check_engine_name(requested)
    if requested != "auto":
        problem = None if requested == "reference" else ENGINES[requested].unsupported_reason(spec, need_trace, like)
        if problem:
            raise ValueError(f"engine {requested!r} cannot run this: {problem}; use engine='reference' or 'auto'")
        return requested, f"engine={requested!r} was requested"
    native_problem = native.unsupported_reason(spec, need_trace, like)
    compiling = like is not None and fused_ops.tracing(like)
    if native_problem is None and not need_trace and not compiling:
        return "native", "auto: plain cell runs on torch's fused kernel (oneDNN on CPU)"
    fused_problem = fused.unsupported_reason(spec, need_trace, like)
    if fused_problem is None and compiling:
        return "fused", "auto: under torch.compile/torch.export, lstmlab's fused CPU engine as a custom op"
    if fused_problem is None:
        what = "plain cell with trace" if native_problem is None else f"{'+'.join(spec.variant_names())} cell"
        return "fused", f"auto: {what} runs on lstmlab's fused CPU engine (C++ time loop)"
    if native_problem is None:
        return "native", f"auto: torch's fused kernel, gates recomputed from its outputs ({fused_problem})"
    return "reference", f"auto: reference time loop, because {native_problem} and {fused_problem}"


def describe(module=None) -> str:
    """Which engine runs and why: for `module` (an lstmlab.LSTM), or the general rule."""
    if module is None:
        build = fused.build_error()
        lines = [f"engines available: {', '.join(available())}",
                 f"fused CPU engine: {'built for ' + fused.capability() if build is None else 'unavailable: ' + build}",
                 f"fused buffer pool: {fused.buffer_pool_bytes() / 2 ** 20:.0f} MiB held, at most "
                 f"{fused.buffer_pool_limit() / 2 ** 20:.0f} MiB (LSTMLAB_BUFFER_POOL_MB)",
                 "auto: 'native' (torch's fused kernel, oneDNN on CPU) for plain cells without trace;",
                 "      'fused' (lstmlab's C++ time loop) for plain cells with trace and for every variant;",
                 "      'reference' (PyTorch time loop) where the fused engine cannot run (not CPU float32/64)"]
        return "\n".join(lines)
    spec = module.spec
    like = next(module.parameters())
    without, why_without = select(module.engine, spec, need_trace=False, like=like)
    lines = [f"{type(module).__name__}(engine={module.engine!r}, variants: {', '.join(spec.variant_names()) or 'none'})",
             f"  forward without trace: {without} ({why_without})"]
    with_trace, why_with = select(module.engine, spec, need_trace=True, like=like)
    lines.append(f"  forward with trace:    {with_trace} ({why_with})")
    return "\n".join(lines)


def run(name: str, batch, need_trace: bool):
    return ENGINES[name].forward(batch, need_trace)
