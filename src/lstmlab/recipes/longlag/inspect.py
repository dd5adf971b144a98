"""The long-lag recipe's report: the gates on fresh task sequences, and the cells that carry
the answer across the lag (`cells`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lstmlab import engines
from lstmlab.inspect.collect import collect_trace
from lstmlab.inspect.report import ReportSection, write_report
from lstmlab.models import count_parameters

from .cells import answer_of_each_sequence, carrying_units, plot_carrying_cells

CARRYING_CELLS_CAPTION = """
<p>In this long time-lag task the network must remember something it saw early in a sequence until it is asked
for it many steps later, while irrelevant input passes by. We ran it on fresh sequences and picked the units whose
cell state c, at the step where the answer is due, differs most between sequences with different answers.</p>
<p><b>Top:</b> the cell state of the best such unit, one line per sequence, coloured by the answer that sequence asks
for. If the LSTM has learned the task, the lines split apart when the information arrives and stay apart across the
lag (the forget gate holds the cell, the input gate keeps new input out) until the answer is read out at the dot.
<b>Bottom:</b> for the chosen units, how well the cell state alone gives the answer at each step: for a numeric
answer r&sup2; (the squared correlation); for a class, the share of sequences whose class is guessed right from the
nearest class average of c, rescaled so that guessing the most common class scores 0 and a perfect guess 1.
0 means c says nothing about the answer yet (or any more); 1 means c alone settles it. This measures how clean
the gap is, not how large: the top panel shows its size.</p>
"""


def _step_pieces(inputs: torch.Tensor, length: int) -> list[str]:
    """A one-character label per step of one (T, I) input: the hot symbol, else a square."""
    labels = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    pieces = []
    for row in inputs[:length]:
        one_hot = bool(((row == 0) | (row == 1)).all()) and float(row.sum()) == 1.0
        index = int(row.argmax())
        pieces.append(labels[index] if one_hot and index < len(labels) else "\u25aa")
    return pieces


def write_longlag_report(run: Any, out_dir: str | Path, *, sequences: int = 64, seed: int = 0) -> Path:
    """Run a long-lag run (loaded, or a run folder / checkpoint path) on `sequences` fresh task
    sequences; return report.html's path."""
    import lstmlab

    if isinstance(run, (str, Path)):
        run = lstmlab.load(run)
    model, task = run.model, run.task
    if model.config.kind != "lstm":
        raise ValueError(f"{run.checkpoint}: this long-lag model is a {model.config.kind}; only LSTMs have gates to inspect")
    batch = task.sample(sequences, torch.Generator().manual_seed(seed))
    recording = collect_trace(model.lstm, batch.inputs)
    steps = recording.num_steps
    recording.mask = torch.arange(steps)[:, None] < batch.lengths[None, :]  # (T, B): padding after each end
    recording.pieces = _step_pieces(batch.inputs[:, 0], steps)
    out_dir = Path(out_dir)
    answer = answer_of_each_sequence(task, batch)
    units = None
    if answer.values.unique().numel() > 1:
        units = carrying_units(recording, answer)
        plot = plot_carrying_cells(recording, answer, units, out_dir / "longlag_cells.png")
        section = ReportSection("The cells that carry the answer across the lag", CARRYING_CELLS_CAPTION, plot)
    else:
        section = ReportSection("The cells that carry the answer across the lag",
                                "<p>All sampled sequences ask for the same answer, so no cell can be shown "
                                "to carry it.</p>")
    summary = {
        "checkpoint": str(run.checkpoint),
        "task": f"{task.label} ({task.kind}); success: {task.criterion}",
        "model": f"LSTM {model.config.input_size} → {model.config.hidden_size} units → read-out {model.config.output_size}",
        "LSTM options": str(model.config.lstm_options or "none"),
        "parameters": f"{count_parameters(model):,}",
        "engine": engines.describe(model.lstm),
        "inspected": f"{sequences} fresh sequences (seed {seed}), up to {steps} steps; the coloured text shows sequence 0, "
                     "one character per step (the letter of a one-hot input symbol, else a square)",
    }
    return write_report(recording, out_dir, title=f"Inside an LSTM solving {task.label}", summary=summary,
                        extra_sections=[section], text_features=False, highlight=units[0] if units else None)
