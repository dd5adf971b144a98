"""The music recipe's report: one chorale, what the model predicts, and its gates and cells.

`write_music_report(run, out_dir)` plays one held-out chorale (a test chorale by default)
through the model frame by frame and draws, on one time axis of eighth-note frames: the
piano roll, the model's probability for every key to sound in the next frame, and the
negative log-likelihood of each frame; then every layer's gates and cells (the report's
explorer and heatmaps). It ranks the cells that follow five signals of the score: the
**soprano** and the **bass** (the highest and lowest sounding key), the **notes
sounding**, the **new notes** (keys that start at the frame) and the **beat** (1 on a
quarter-note beat, 0 between: even frames, when the chorale starts on a beat).

Each frame of the coloured text is the soprano's pitch class, a lower-case letter for a
sharp (c = C sharp) and ``·`` where nothing sounds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from lstmlab.data.chorales import LOWEST_KEY, load_chorales
from lstmlab.inspect.collect import as_recording
from lstmlab.inspect.features import best_tracking_table
from lstmlab.inspect.plots import plot_gate_heatmaps
from lstmlab.inspect.report import ReportSection, write_report
from lstmlab.models import count_parameters

PITCH_CLASSES = "CcDdEFfGgAaB"  # lower case: the sharp of the letter before


def soprano_pieces(roll: np.ndarray) -> list[str]:
    """(T, 88) roll -> one character per frame: the highest sounding key's pitch class."""
    pieces = []
    for frame in roll:
        keys = np.flatnonzero(frame)
        pieces.append(PITCH_CLASSES[(LOWEST_KEY + int(keys[-1])) % 12] if len(keys) else "·")
    return pieces


def score_signals(roll: np.ndarray) -> dict[str, np.ndarray]:
    """Per frame of a (T, 88) roll: soprano and bass key (the frame before where silent),
    notes sounding, new notes, and the beat (1 on even frames)."""
    sounding = roll.sum(1).astype(float)
    soprano, bass = np.zeros(len(roll)), np.zeros(len(roll))
    for t, frame in enumerate(roll):
        keys = np.flatnonzero(frame)
        soprano[t] = keys[-1] if len(keys) else (soprano[t - 1] if t else 0.0)
        bass[t] = keys[0] if len(keys) else (bass[t - 1] if t else 0.0)
    previous = np.vstack([np.zeros((1, roll.shape[1]), roll.dtype), roll[:-1]])
    new = ((roll == 1) & (previous == 0)).sum(1).astype(float)
    beat = (np.arange(len(roll)) % 2 == 0).astype(float)
    return {"soprano (highest key)": soprano, "bass (lowest key)": bass, "notes sounding": sounding,
            "new notes": new, "beat (even frames)": beat}


def _plot_predictions(roll: np.ndarray, probabilities: np.ndarray, nll: np.ndarray, path: Path) -> Path:
    """Three panels over the frames: the roll, p(key sounds next), the NLL of each frame."""
    used = np.flatnonzero(roll.any(0))
    low, high = (max(0, used[0] - 4), min(roll.shape[1], used[-1] + 5)) if len(used) else (0, roll.shape[1])
    figure = Figure(figsize=(12, 8), dpi=100, layout="constrained")
    top, middle, bottom = figure.subplots(3, 1, sharex=True, height_ratios=(3, 3, 1.4))
    extent = (-0.5, len(roll) - 0.5, LOWEST_KEY + low - 0.5, LOWEST_KEY + high - 0.5)
    top.imshow(roll[:, low:high].T, origin="lower", aspect="auto", cmap="Greys", extent=extent,
               interpolation="nearest")
    top.set_title("the chorale: piano roll, one column per eighth note", loc="left", fontsize=10)
    top.set_ylabel("MIDI key")
    middle.imshow(probabilities[:, low:high].T, origin="lower", aspect="auto", cmap="magma", vmin=0, vmax=1,
                  extent=extent, interpolation="nearest")
    middle.set_title("the model's probability that each key sounds, from the frames before", loc="left",
                     fontsize=10)
    middle.set_ylabel("MIDI key")
    bottom.plot(np.arange(len(nll)), nll, color="tab:red", linewidth=1)
    bottom.set_title(f"NLL of each frame (nats; mean {nll.mean():.2f})", loc="left", fontsize=10)
    bottom.set_xlabel("frame (eighth note)")
    figure.savefig(path)
    return path


@torch.no_grad()
def write_music_report(run: Any, out_dir: str | Path, *, split: str = "test", index: int = 0) -> Path:
    """Play chorale `index` of `split` through the run's model and write out_dir/report.html."""
    model = run.model.eval()
    if model.config.cell != "lstm":
        raise ValueError(f"{run.checkpoint}: this music model uses cell={model.config.cell!r}; only LSTM models have "
                         "gates to inspect")
    chorales = load_chorales(run.config.data.limit or None, progress=False)
    rolls = chorales.split(split)
    if not 0 <= index < len(rolls):
        raise ValueError(f"chorale index: expected 0..{len(rolls) - 1} of the {split} split, got {index}")
    roll = rolls[index]  # (T, 88): the model sees silence, then frames 0..T-2, and predicts frames 0..T-1
    inputs = torch.cat([torch.zeros(1, roll.shape[1]), torch.from_numpy(roll[:-1]).float()])[:, None]  # (T, 1, 88)
    states, _, trace = model.recurrent(inputs, trace=True)
    logits = model.readout(states)[:, 0]  # (T, 88)
    target = torch.from_numpy(roll).float()
    nll = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(1)
    recording = as_recording(trace, pieces=soprano_pieces(roll))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = chorales.names[split][index]
    sections = [ReportSection("The chorale and what the model predicts",
                              "<p>Top: the score as a piano roll. Middle: at each frame, the model's probability "
                              "for every key to sound, computed from the frames before only. A model that has "
                              "learned the style is bright where the next notes are, and dark elsewhere. Bottom: "
                              "how surprised it was by each frame (its NLL, summed over the 88 keys).</p>",
                              _plot_predictions(roll, torch.sigmoid(logits).numpy(), nll.numpy(),
                                                out_dir / "music.png")),
                ReportSection("Which cells follow the soprano, the bass, the texture and the beat",
                              "<p>Pearson correlation between each cell state and a signal of the score; the "
                              "strongest cell per signal, over all layers.</p>"
                              + best_tracking_table(recording, score_signals(roll)))]
    for layer in range(recording.num_layers):
        image = plot_gate_heatmaps(recording, layer, out_dir / f"gates_layer{layer}.png")
        sections.append(ReportSection(f"Layer {layer}: gates and cells over the chorale",
                                      "Time across in eighth-note frames, units down (the first 64).", image))
    summary = {"checkpoint": str(run.checkpoint), "chorale": f"{name} ({split} split, {len(roll)} frames)",
               "model": repr(model.recurrent), "parameters": f"{count_parameters(model):,}",
               "NLL": f"{nll.mean():.3f} nats per frame on this chorale",
               "text": "one character per frame: the soprano's pitch class (c = C sharp, · = silence)"}
    return write_report(recording, out_dir, title="Inside an LSTM that learned Bach's chorales", summary=summary,
                        extra_sections=sections, text_features=False)
