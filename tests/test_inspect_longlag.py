"""Finding the cell that carries a long-lag task's answer, on hand-built traces with known answers."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lstmlab import LayerTrace, Trace
from lstmlab.inspect import as_recording
from lstmlab.recipes.longlag.cells import (
    Answer,
    answer_of_each_sequence,
    carrying_units,
    decodable_share,
    information_over_time,
    plot_carrying_cells,
)


def test_decodable_share_known_answers():
    classes = torch.tensor([0, 1, 2, 3] * 5)
    perfect = classes.double()[:, None] * 2.0  # (N, 1): each class at its own level
    first_symbol_only = (classes // 2).double()[:, None]  # tells {0,1} from {2,3} only
    assert decodable_share(perfect, classes, "class").item() == pytest.approx(1.0)
    # half the sequences guessed right where chance (most common class) is 1/4: (1/2 - 1/4) / (3/4)
    assert decodable_share(first_symbol_only, classes, "class").item() == pytest.approx(1 / 3)
    assert decodable_share(torch.ones(20, 1), classes, "class").item() == 0.0  # constant c says nothing
    numbers = torch.linspace(-1, 1, 20)
    both = torch.stack([3 * numbers + 1, numbers**2], dim=1)  # linear in the answer / symmetric
    share = decodable_share(both, numbers, "number")
    assert share[0].item() == pytest.approx(1.0) and share[1].item() == pytest.approx(0.0, abs=1e-9)


def planted_recording(seed=0):
    """8 sequences of 30 steps, 5 units. The class (0/1) arrives at step 3; unit 2 holds it
    (+-1) until the end; unit 4 swings widely in time the same way in every sequence and
    holds only a 100x smaller copy of the class; the others are noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.tensor([0, 1] * 4)
    cells = 0.3 * torch.randn(30, 8, 1, 5, generator=generator)
    sign = (2 * labels - 1).double().float()
    cells[3:, :, 0, 2] = sign + 0.05 * torch.randn(27, 8, generator=generator)
    swing = 3 * torch.sin(torch.arange(30.0))[:, None]  # (T, 1): the same in every sequence
    cells[:, :, 0, 4] = swing + 0.001 * torch.randn(30, 8, generator=generator)
    cells[3:, :, 0, 4] += 0.01 * sign
    gates = torch.full_like(cells, 0.5)
    recording = as_recording(Trace((LayerTrace(i=gates, f=gates, g=gates, o=gates, c=cells, h=cells.tanh()),)))
    return recording, Answer(labels, "class", torch.full((8,), 29))


def test_the_unit_holding_the_class_is_found_and_its_information_appears_at_the_right_step(tmp_path):
    recording, answer = planted_recording()
    units = carrying_units(recording, answer, top=5)
    assert units[0] == (0, 0, 2)
    # unit 4 decodes the class just as well, but its gap is negligible next to its swings:
    # it ranks below the noise units
    at_answer = recording.quantity(0, "c")[29, :, 0, :]  # (B, H)
    assert decodable_share(at_answer, answer.values, "class")[4].item() == pytest.approx(1.0)
    assert units[-1] == (0, 0, 4)
    units = units[:2]
    curve = information_over_time(recording, answer, units[0])
    assert np.all(curve[3:] == 1.0) and np.all(curve[:3] < 1.0)
    path = plot_carrying_cells(recording, answer, units, tmp_path / "cells.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_answer_is_the_last_scored_step_that_varies():
    # a Reber-like step task: the final scored step always asks for the same symbol (E),
    # the one before asks for T or P depending on the sequence
    steps, batch = 6, 4
    targets = torch.zeros(steps, batch, dtype=torch.long)
    targets[4] = torch.tensor([1, 2, 1, 2])
    targets[5] = 3
    mask = torch.ones(steps, batch, dtype=torch.bool)
    task = SimpleNamespace(kind="step_class")
    answer = answer_of_each_sequence(task, SimpleNamespace(targets=targets, mask=mask, lengths=torch.full((batch,), 6)))
    assert answer.values.tolist() == [1, 2, 1, 2] and answer.end_steps.tolist() == [4] * 4
    end_task = SimpleNamespace(kind="end_regression")
    batch_end = SimpleNamespace(targets=torch.tensor([0.5, -0.5]), mask=None, lengths=torch.tensor([7, 9]))
    answer = answer_of_each_sequence(end_task, batch_end)
    assert answer.kind == "number" and answer.end_steps.tolist() == [6, 8]
