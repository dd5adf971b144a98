"""PNG plots of a `Recording`: gate heatmaps, saturation, memory retention, a cell over time.

Figures are built with `matplotlib.figure.Figure` (Agg canvas, no pyplot global state),
so they render headless and never open a window. Each function writes one PNG and
returns its path. Shape legend: T steps, B sequences, D directions, H units, K lags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from lstmlab.inspect.collect import QUANTITIES, Recording
from lstmlab.inspect.stats import GateSaturation, MemoryProfile

QUANTITY_NAMES = {
    "c": "cell state c",
    "h": "hidden state h",
    "i": "input gate i",
    "f": "forget gate f",
    "o": "output gate o",
    "g": "cell candidate g",
}
GATE_COLOURS = {"i": "#1f77b4", "f": "#d62728", "o": "#2ca02c", "g": "#9467bd"}
DPI = 100


def _colour_range(name: str, values: np.ndarray) -> tuple[str, float, float]:
    """Colour map and limits: gates on [0, 1], tanh quantities on [-1, 1], c symmetric (98th percentile)."""
    if name in ("i", "f", "o"):
        return "viridis", 0.0, 1.0
    if name in ("g", "h"):
        return "RdBu_r", -1.0, 1.0
    # a few cells can grow far beyond the rest; a robust limit keeps the others visible
    limit = float(np.percentile(np.abs(values), 98)) if values.size else 1.0
    return "RdBu_r", -(limit or 1.0), limit or 1.0


def units_by_time(recording: Recording, layer: int, name: str, sequence: int = 0) -> np.ndarray:
    """(D*H, T) activations of sequence `sequence`, directions stacked along the units."""
    values = recording.quantity(layer, name)[:, sequence]  # (T, D, H)
    return values.reshape(values.shape[0], -1).T.numpy()


def plot_gate_heatmaps(
    recording: Recording, layer: int, path: str | Path, *, max_units: int = 64, max_steps: int = 400
) -> Path:
    """Six heatmaps (c, h, i, f, o, g) of one layer: time across, units down."""
    figure = Figure(figsize=(12, 13), dpi=DPI)  # fixed margins: constrained layout is slow here
    axes = figure.subplots(len(QUANTITIES), 1, sharex=True)
    figure.subplots_adjust(left=0.06, right=0.97, top=0.97, bottom=0.05, hspace=0.3)
    for axis, name in zip(axes, QUANTITIES):
        values = units_by_time(recording, layer, name)[:max_units, :max_steps]
        colour_map, low, high = _colour_range(name, values)
        image = axis.imshow(values, aspect="auto", interpolation="nearest", cmap=colour_map, vmin=low, vmax=high)
        axis.set_ylabel("unit")
        axis.set_title(f"layer {layer}: {QUANTITY_NAMES[name]}", loc="left", fontsize=10)
        figure.colorbar(image, ax=axis, pad=0.01, fraction=0.03)
    axes[-1].set_xlabel("time step (token)")
    return _save(figure, path)


def plot_saturation(stats: Sequence[GateSaturation], path: str | Path) -> Path:
    """Karpathy et al. (2015) Fig. 3 style: each dot is one unit's gate.

    x = fraction of steps left-saturated (shut), y = fraction right-saturated (open).
    """
    layers = sorted({item.layer for item in stats})
    figure = Figure(figsize=(4.2 * len(layers), 4.4), dpi=DPI, layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(layers), squeeze=False)[0])
    for axis, layer in zip(axes, layers):
        for item in (entry for entry in stats if entry.layer == layer):
            axis.scatter(
                item.left.flatten().numpy(), item.right.flatten().numpy(),
                s=12, alpha=0.6, color=GATE_COLOURS[item.gate], label=f"{item.gate} gate" if item.gate != "g" else "g (candidate)",
            )
        axis.plot([0, 1], [1, 0], color="#999999", linewidth=0.8, linestyle="--")  # always saturated
        axis.set_xlim(-0.03, 1.03)
        axis.set_ylim(-0.03, 1.03)
        axis.set_xlabel("fraction of time shut (< 0.1)")
        axis.set_ylabel("fraction of time open (> 0.9)")
        axis.set_title(f"layer {layer}")
        axis.legend(fontsize=8, loc="upper right")
    return _save(figure, path)


def plot_retention(profiles: Sequence[MemoryProfile], path: str | Path) -> Path:
    """Per layer: how much of the cell survives k steps of forget gates (median and 10–90% band)."""
    figure = Figure(figsize=(7, 4.2), dpi=DPI, layout="constrained")
    axis = figure.subplots()
    for profile in profiles:
        layer = profile.layer
        curve = profile.retention.flatten(1)  # (K + 1, D*H)
        lags = np.arange(curve.shape[0])
        low, median, high = torch.quantile(curve, torch.tensor([0.1, 0.5, 0.9]), dim=1).numpy()
        line = axis.plot(lags, median, label=f"layer {layer}: median unit")[0]
        axis.fill_between(lags, low, high, color=line.get_color(), alpha=0.2, label=f"layer {layer}: 10–90% of units")
    axis.axhline(0.5, color="#999999", linewidth=0.8, linestyle="--")
    axis.set_xlabel("steps later (k)")
    axis.set_ylabel("share of the cell kept: f × f × … (k times)")
    axis.set_ylim(0, 1.02)
    axis.legend(fontsize=8)
    return _save(figure, path)


def plot_cell_over_time(
    series: dict[str, np.ndarray], path: str | Path, *, markers: dict[str, int] | None = None, title: str = ""
) -> Path:
    """Line plot of one or more (T,) activations, with labelled vertical markers at steps."""
    figure = Figure(figsize=(10, 3.8), dpi=DPI, layout="constrained")
    axis = figure.subplots()
    for label, values in series.items():
        axis.plot(np.arange(len(values)), values, label=label, linewidth=1.2)
    for label, step in (markers or {}).items():
        axis.axvline(step, color="#444444", linestyle=":", linewidth=1)
        axis.annotate(label, (step, 1.0), xycoords=("data", "axes fraction"), rotation=90,
                      va="top", ha="right", fontsize=8)
    axis.axhline(0, color="#bbbbbb", linewidth=0.6)
    axis.set_xlabel("time step")
    axis.set_ylabel("activation")
    axis.set_title(title, loc="left", fontsize=10)
    axis.legend(fontsize=8, loc="lower left")
    return _save(figure, path)


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
