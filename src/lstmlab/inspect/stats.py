"""Gate saturation and memory-length statistics over a `Recording`.

Gate saturation (Karpathy, Johnson & Fei-Fei 2015, "Visualizing and Understanding
Recurrent Networks", section 4.3): a sigmoid gate (i, f, o) is *left-saturated* at a step
when its value is below 0.1 (nearly shut) and *right-saturated* when above 0.9 (nearly
fully open). A unit's gate that is right-saturated most of the time acts like a switch
stuck open; a forget gate right-saturated most of the time keeps its cell for long.

The cell candidate g is a tanh in [-1, 1], not a gate. We apply the same rule, 10% of
the range from either end: g is left-saturated below -0.8 and right-saturated above 0.8.

Memory length: ignoring what the input gate adds, the cell keeps the fraction
f_{t+1} * f_{t+2} * ... * f_{t+k} of what it held at step t after k more steps. The
*retention curve* averages this product over start steps; the *memory span* counts how
many steps it stays at or above a threshold; the *forget half-life* is the number of steps
after which a constant forget gate equal to the unit's geometric-mean f would halve the cell.

All fractions and means count only real steps (padding excluded via `Recording.valid()`).
Shapes: T steps, B sequences, D directions, H units, K lags.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lstmlab.inspect.collect import Recording

SATURATION_LOW = 0.1  # a sigmoid gate below this is left-saturated (Karpathy et al. 2015)
SATURATION_HIGH = 0.9  # a sigmoid gate above this is right-saturated
SATURATION_GATES = ("i", "f", "o", "g")


@dataclass
class GateSaturation:
    """Per-unit saturation fractions of one gate in one layer."""

    layer: int  # layer index, 0 = closest to the input
    gate: str  # one of i, f, o, g
    left: torch.Tensor  # (D, H) fraction of real steps with the gate left-saturated
    right: torch.Tensor  # (D, H) fraction of real steps with the gate right-saturated
    low: float  # threshold used for left saturation (for g: on the tanh scale)
    high: float  # threshold used for right saturation


def saturation_thresholds(gate: str, low: float = SATURATION_LOW, high: float = SATURATION_HIGH) -> tuple[float, float]:
    """(low, high) for `gate`: as given for sigmoid gates, mapped onto [-1, 1] for g."""
    if gate not in SATURATION_GATES:
        raise ValueError(f"gate must be one of {', '.join(SATURATION_GATES)}; got {gate!r}")
    if gate == "g":
        return 2.0 * low - 1.0, 2.0 * high - 1.0
    return low, high


def _masked_mean_over_time(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of (T, B, D, H) `values` over the real (t, b) steps -> (D, H)."""
    weights = valid.to(values.dtype)[:, :, None, None]  # (T, B, 1, 1)
    count = weights.sum()
    if count == 0:
        raise ValueError("the recording has no real (unpadded) steps")
    return (values * weights).sum(dim=(0, 1)) / count


def saturation(recording: Recording, low: float = SATURATION_LOW, high: float = SATURATION_HIGH) -> list[GateSaturation]:
    """Saturation fractions for every layer and gate (i, f, o, g), per unit."""
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"expected 0 <= low < high <= 1, got low={low}, high={high}")
    valid = recording.valid()
    results = []
    for layer in range(recording.num_layers):
        for gate in SATURATION_GATES:
            values = recording.quantity(layer, gate)  # (T, B, D, H)
            gate_low, gate_high = saturation_thresholds(gate, low, high)
            left = _masked_mean_over_time((values < gate_low).float(), valid)
            right = _masked_mean_over_time((values > gate_high).float(), valid)
            results.append(GateSaturation(layer, gate, left, right, gate_low, gate_high))
    return results


def saturation_summary(stats: list[GateSaturation], mostly: float = 0.5) -> list[dict[str, float | int | str]]:
    """One row per (layer, gate): mean fractions and how many units are mostly shut/open.

    A unit is "mostly shut" when left-saturated in more than `mostly` of the steps.
    """
    rows = []
    for item in stats:
        rows.append(
            {
                "layer": item.layer,
                "gate": item.gate,
                "mean_left": float(item.left.mean()),
                "mean_right": float(item.right.mean()),
                "units_mostly_shut": int((item.left > mostly).sum()),
                "units_mostly_open": int((item.right > mostly).sum()),
                "units": item.left.numel(),
            }
        )
    return rows


def _log_forget_cumsum(recording: Recording, layer: int) -> torch.Tensor:
    """(T + 1, B, D, H) float64 running sum of log f, starting at 0 before step 0."""
    forget = recording.quantity(layer, "f").double().clamp_min(1e-300)
    log_forget = torch.log(forget)
    zeros = torch.zeros_like(log_forget[:1])
    return torch.cat([zeros, log_forget.cumsum(dim=0)], dim=0)


def default_max_lag(recording: Recording, cap: int = 200) -> int:
    return max(1, min(recording.num_steps - 1, cap))


def _forget_products(recording: Recording, layer: int, max_lag: int, budget: int = 4_000_000):
    """Yield (products (K, N, B, D, H), valid (K, N, B)) for chunks of lags k = 1..max_lag.

    products[j, t] = f_{t+1} * ... * f_{t+k_j}: the share of c_t left after k_j more steps
    (N = T - first lag of the chunk start steps; pairs running past the end are invalid).
    Lags are taken `budget` elements at a time: vectorised, with bounded memory.
    """
    if max_lag < 1:
        raise ValueError(f"max_lag must be at least 1, got {max_lag}")
    cumulative = _log_forget_cumsum(recording, layer)  # index s holds sum of log f over steps < s
    valid = recording.valid()  # (T, B)
    steps = recording.num_steps
    last_lag = min(max_lag, steps - 1)
    chunk = max(1, budget // max(1, cumulative[0].numel() * steps))
    for first in range(1, last_lag + 1, chunk):
        lags = torch.arange(first, min(first + chunk, last_lag + 1))[:, None]  # (K, 1)
        starts = torch.arange(steps - first)[None, :]  # (1, N)
        ends = (starts + lags).clamp(max=steps - 1)  # (K, N) last step of each product
        # sum of log f over steps t+1 .. t+k = cumulative[t+k+1] - cumulative[t+1]
        log_product = cumulative[ends + 1] - cumulative[starts + 1]  # (K, N, B, D, H)
        # a pair counts only when its start and end are real steps inside the sequence
        pair_valid = (starts + lags < steps)[..., None] & valid[starts] & valid[ends]  # (K, N, B)
        yield torch.exp(log_product), pair_valid


@dataclass
class MemoryProfile:
    """How long one layer's cells keep what they hold (see the module docstring)."""

    layer: int  # layer index
    retention: torch.Tensor  # (K + 1, D, H) mean forget-gate product over k = 0..K steps
    span: torch.Tensor  # (D, H) expected steps the product stays >= threshold (capped at K)
    threshold: float  # the threshold of `span`
    max_lag: int  # K


def memory_profile(recording: Recording, layer: int, threshold: float = 0.5, max_lag: int | None = None) -> MemoryProfile:
    """Retention curve and memory span of `layer` in one pass over the lags."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    max_lag = default_max_lag(recording) if max_lag is None else max_lag
    shape = (recording.num_directions, recording.hidden_size(layer))
    curve = [torch.ones(1, *shape, dtype=torch.float64)]
    span = torch.zeros(shape, dtype=torch.float64)
    for products, valid in _forget_products(recording, layer, max_lag):
        weights = valid.double()[..., None, None]  # (K, N, B, 1, 1)
        counts = weights.sum(dim=(1, 2))  # (K, 1, 1)
        keep = counts.flatten() > 0  # lags that fit in some sequence
        curve.append(((products * weights).sum(dim=(1, 2)) / counts.clamp_min(1))[keep])
        held = ((products >= threshold).double() * weights).sum(dim=(1, 2)) / counts.clamp_min(1)  # (K, D, H)
        span += held[keep].sum(dim=0)
    return MemoryProfile(layer, torch.cat(curve).float(), span.float(), threshold, max_lag)


def retention_curve(recording: Recording, layer: int, max_lag: int | None = None) -> torch.Tensor:
    """(K + 1, D, H): mean over start steps of the forget-gate product over k steps, k = 0..K.

    Entry 0 is 1 (nothing forgotten yet). Lags longer than the sequence are left out.
    """
    return memory_profile(recording, layer, max_lag=max_lag).retention


def memory_span(recording: Recording, layer: int, threshold: float = 0.5, max_lag: int | None = None) -> torch.Tensor:
    """(D, H): expected number of steps the forget product stays >= `threshold`.

    Sum over k >= 1 of the share of start steps whose product after k steps is still at
    least `threshold`; capped at `max_lag` (and by the sequence length). With a constant
    forget gate f and threshold 0.5 this is floor(log 0.5 / log f).
    """
    return memory_profile(recording, layer, threshold, max_lag).span


def forget_half_life(recording: Recording, layer: int) -> torch.Tensor:
    """(D, H): log(0.5) / mean(log f) — steps for the geometric-mean forget gate to halve c.

    Infinite where the forget gate is exactly 1 at every real step.
    """
    forget = recording.quantity(layer, "f").double().clamp_min(1e-300)
    mean_log = _masked_mean_over_time(torch.log(forget), recording.valid())
    half_life = torch.full_like(mean_log, math.inf)
    forgetting = mean_log < 0
    half_life[forgetting] = math.log(0.5) / mean_log[forgetting]
    return half_life.float()


def memory_summary(recording: Recording, profiles: list[MemoryProfile] | None = None,
                   threshold: float = 0.5, max_lag: int | None = None) -> list[dict[str, float | int]]:
    """One row per layer: median / 90th percentile / max of half-life and memory span.

    Pass `profiles` (one per layer, from `memory_profile`) to reuse work already done.
    """
    if profiles is None:
        profiles = [memory_profile(recording, layer, threshold, max_lag) for layer in range(recording.num_layers)]
    rows = []
    for profile in profiles:
        half_life = forget_half_life(recording, profile.layer).flatten()
        span = profile.span.flatten()
        finite = half_life[torch.isfinite(half_life)]
        rows.append(
            {
                "layer": profile.layer,
                "half_life_median": float(half_life.median()),
                "half_life_p90": float(torch.quantile(finite, 0.9)) if finite.numel() else math.inf,
                "span_median": float(span.median()),
                "span_p90": float(torch.quantile(span, 0.9)),
                "span_max": float(span.max()),
                "max_lag": profile.max_lag,
            }
        )
    return rows
