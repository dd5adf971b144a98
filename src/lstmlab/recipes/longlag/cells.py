"""Which cells carry a long-lag task's answer across the lag, and a plot of them.

Every long-lag task asks the network, at the end of a sequence (or at its last scored
step), for something it saw long before. The *answer* of a sequence is that target: a
number (adding, multiplication) or a class (temporal order, the symbol to recall). A cell
carries the answer when, across many sequences, its state c tells the answers apart: we
measure this with r² (the squared correlation, for numbers) or, for classes, the accuracy
of guessing the class from the nearest class-mean of c, above chance; both are 0 for "no
relation" and 1 for "c settles the answer". Shapes: T steps, B sequences, D directions, H units.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure

from lstmlab.inspect.collect import Recording


@dataclass
class Answer:
    """What each sequence of a long-lag batch must produce at its end."""

    values: torch.Tensor  # (B,) float for numbers, int64 class ids for classes
    kind: str  # "number" or "class"
    end_steps: torch.Tensor  # (B,) int64: the step at which the answer is due


def answer_of_each_sequence(task, batch) -> Answer:
    """The answer per sequence of a `SequenceBatch`, from the task's kind of target."""
    ends = batch.lengths - 1
    if task.kind == "end_regression":
        return Answer(batch.targets.float(), "number", ends)
    if task.kind == "end_class":
        return Answer(batch.targets.long(), "class", ends)
    if task.kind in ("step_class", "step_multilabel"):
        return _last_varying_step_answer(task.kind, batch)
    raise ValueError(f"task kind {task.kind!r}: expected end_regression, end_class, step_class or step_multilabel")


def _last_varying_step_answer(kind: str, batch, max_back: int = 8) -> Answer:
    """Per-step tasks: the target at the last scored step where sequences differ.

    (Embedded Reber always ends with E; its long-lag symbol is the one before.)
    """
    steps = torch.arange(batch.mask.shape[0])[:, None].expand_as(batch.mask)
    last = torch.where(batch.mask, steps, torch.full_like(steps, -1)).max(dim=0).values  # (B,) last scored step
    columns = torch.arange(batch.mask.shape[1])
    for back in range(max_back + 1):
        ends = (last - back).clamp_min(0)
        due = batch.targets[ends, columns]  # (B,) class ids, or (B, O) sets of legal symbols
        if kind == "step_multilabel":
            due = torch.unique(due, dim=0, return_inverse=True)[1]  # one class per distinct set
        if due.unique().numel() > 1:
            break
    return Answer(due.long(), "class", ends)


def decodable_share(values: torch.Tensor, answer: torch.Tensor, kind: str) -> torch.Tensor:
    """(N, K) activations of N sequences vs (N,) answers -> (K,) how well c alone gives the answer.

    Numbers: r², the squared correlation. Classes: the accuracy of guessing each sequence's
    class as the class whose mean c is nearest, rescaled so that always guessing the most
    common class scores 0 and a perfect guess 1 (below chance counts as 0).
    Both are 0 when c says nothing about the answer and 1 when it settles it.
    """
    values = values.double()
    centred = values - values.mean(dim=0)
    total = (centred**2).sum(dim=0)  # (K,)
    if kind == "number":
        target = answer.double() - answer.double().mean()
        share = (target @ centred) ** 2 / (total * (target**2).sum()).clamp_min(1e-300)
        return torch.where(total > 1e-12, share, torch.zeros_like(share)).float()
    labels, index, counts = torch.unique(answer, return_inverse=True, return_counts=True)
    means = torch.stack([values[index == label].mean(dim=0) for label in range(len(labels))])  # (C, K)
    guess = (values[:, None, :] - means[None]).abs().argmin(dim=1)  # (N, K) nearest class mean
    accuracy = (guess == index[:, None]).double().mean(dim=0)
    chance = counts.max().double() / answer.numel()
    share = ((accuracy - chance) / (1 - chance).clamp_min(1e-12)).clamp(0, 1)
    return torch.where(total > 1e-12, share, torch.zeros_like(share)).float()


def _overall_spread(recording: Recording, layer: int) -> torch.Tensor:
    """(D*H,) standard deviation of each unit's c over all real steps of all sequences."""
    cells = recording.quantity(layer, "c").flatten(2)  # (T, B, D*H)
    return cells[recording.valid()].double().std(dim=0).clamp_min(1e-12)


def answer_separation(values: torch.Tensor, answer: torch.Tensor, kind: str, overall: torch.Tensor) -> torch.Tensor:
    """(K,) ranking score: how well c gives the answer, weighted by how much c varies here.

    decodable share × (spread of c across sequences at this step) ÷ (its spread over all
    steps): a unit whose tiny differences happen to decode the answer ranks below one
    that the answer moves as much as everything else does.
    """
    share = decodable_share(values, answer, kind).double()
    return (share * values.double().std(dim=0) / overall).float()


def carrying_units(recording: Recording, answer: Answer, top: int = 3) -> list[tuple[int, int, int]]:
    """The `top` (layer, direction, unit) whose c at the answer step best separates the answers."""
    if answer.values.unique().numel() < 2:
        raise ValueError("every sequence has the same answer: no cell can be told to carry it")
    columns = torch.arange(recording.batch_size)
    scored = []
    for layer in range(recording.num_layers):
        cells = recording.quantity(layer, "c")[answer.end_steps, columns]  # (B, D, H)
        score = answer_separation(cells.flatten(1), answer.values, answer.kind, _overall_spread(recording, layer))
        score = score.view(cells.shape[1:])
        for direction in range(score.shape[0]):
            for unit in range(score.shape[1]):
                scored.append((float(score[direction, unit]), (layer, direction, unit)))
    scored.sort(key=lambda item: item[0], reverse=True)
    return [where for _, where in scored[:top]]


def information_over_time(recording: Recording, answer: Answer, where: tuple[int, int, int]) -> np.ndarray:
    """(T,) `decodable_share` of one unit's c at each step, over sequences not yet past their answer step.

    Bounded in [0, 1]: how well c alone gives the answer, whatever the size of the gap.
    """
    layer, direction, unit = where
    cells = recording.quantity(layer, "c")[:, :, direction, unit]  # (T, B)
    curve = np.full(recording.num_steps, np.nan)
    for step in range(recording.num_steps):
        alive = answer.end_steps >= step
        if int(alive.sum()) >= 4 and answer.values[alive].unique().numel() >= 2:
            curve[step] = float(decodable_share(cells[step, alive][:, None], answer.values[alive], answer.kind)[0])
    return curve


def plot_carrying_cells(recording: Recording, answer: Answer, units: list[tuple[int, int, int]],
                        path: str | Path, max_lines: int = 16) -> Path:
    """Top: the best unit's c over time for several sequences, coloured by answer.
    Bottom: how well each chosen unit's c alone gives the answer, step by step."""
    figure = Figure(figsize=(10, 7), dpi=100, layout="constrained")
    top_axis, bottom_axis = figure.subplots(2, 1, sharex=True)
    layer, direction, unit = units[0]
    cells = recording.quantity(layer, "c")[:, :, direction, unit].numpy()  # (T, B)
    answers = answer.values.double().numpy()
    low, high = float(answers.min()), float(answers.max())
    class_rank = torch.unique(answer.values, return_inverse=True)[1].numpy()  # classes 0, 1, ... for colours
    palette = colormaps["viridis"] if answer.kind == "number" else colormaps["tab10"]
    for sequence in range(min(max_lines, recording.batch_size)):
        end = int(answer.end_steps[sequence]) + 1
        position = (answers[sequence] - low) / (high - low or 1) if answer.kind == "number" else int(class_rank[sequence]) % 10
        top_axis.plot(np.arange(end), cells[:end, sequence], color=palette(position), linewidth=1)
        top_axis.plot([end - 1], [cells[end - 1, sequence]], marker="o", markersize=3, color=palette(position))
    legend = "colour = the number to produce" if answer.kind == "number" else "colour = the class to produce"
    top_axis.set_title(f"cell state c of layer {layer}, unit {unit}, one line per sequence ({legend}; dot = answer step)",
                       loc="left", fontsize=10)
    top_axis.set_ylabel("c")
    for where in units:
        curve = information_over_time(recording, answer, where)
        bottom_axis.plot(np.arange(len(curve)), curve, label=f"layer {where[0]}, unit {where[2]}")
    measure = "r²" if answer.kind == "number" else "nearest-mean accuracy above chance"
    bottom_axis.set_ylabel(f"how well c alone gives the answer\n({measure})", fontsize=9)
    bottom_axis.set_xlabel("time step")
    bottom_axis.set_ylim(-0.02, 1.02)
    bottom_axis.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
