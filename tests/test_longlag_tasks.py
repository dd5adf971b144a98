"""The long-lag generators match the definitions of Hochreiter & Schmidhuber (1997) and the modern tasks."""

import math

import pytest
import torch
import torch.nn.functional as F

from lstmlab.recipes.longlag.task_base import last_step
from lstmlab.recipes.longlag.task_registry import TASKS, make_task, task_from_config
from lstmlab.recipes.longlag.reber import REBER_SYMBOLS
from lstmlab.recipes.longlag.tasks import NoiseFreeLongLag


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def perfect_outputs(task, batch):
    """Logits (T, B, O) that put (almost) all probability on the target class at the end."""
    outputs = torch.zeros(batch.inputs.shape[0], batch.batch_size, task.output_size)
    outputs[batch.lengths - 1, torch.arange(batch.batch_size)] = 20 * F.one_hot(batch.targets, task.output_size).float()
    return outputs


@pytest.mark.parametrize("T", [20, 100, 1000])
def test_adding_follows_the_paper(T):
    task = make_task("adding", T)
    batch = task.sample(512, generator())
    values, markers = batch.inputs[..., 0], batch.inputs[..., 1]  # (T, B)
    assert batch.lengths.min() >= T and batch.lengths.max() <= T + T // 10
    assert ((markers == 1).sum(0) == 2).all(), "exactly two marked pairs"
    for b in range(batch.batch_size):
        length = int(batch.lengths[b])
        marked = (markers[:, b] == 1).nonzero().flatten().tolist()
        assert min(marked) < 10, "X1 is one of the first ten pairs"
        assert max(marked) < T // 2, "X2 is one of the first T/2 pairs"
        if 0 not in marked:
            assert markers[0, b] == -1 and values[0, b] != 0
        else:
            assert values[0, b] == 0, "a marked first pair has its value set to zero"
        assert markers[length - 1, b] == -1, "the last pair's marker is -1"
        assert ((markers[1 : length - 1, b] == 0) | (markers[1 : length - 1, b] == 1)).all()
        assert (batch.inputs[length:, b] == 0).all(), "padding after the end is zero"
        x1, x2 = values[marked, b]
        assert float(batch.targets[b]) == pytest.approx(float(0.5 + (x1 + x2) / 4), abs=1e-6)
    assert values.abs().max() <= 1.0 and values.min() < -0.9 and values.max() > 0.9


def test_adding_first_pair_marked_sometimes_and_lengths_cover_the_range():
    batch = make_task("adding", 100).sample(4000, generator(1))
    first_marked = (batch.inputs[0, :, 1] == 1).float().mean()
    # P = 1/10 (X1 at 0) + 9/10 · 1/49 (X2 at 0)
    assert first_marked == pytest.approx(0.1 + 0.9 / 49, abs=0.02)
    assert set(batch.lengths.tolist()) == set(range(100, 111))


def test_multiplication_follows_the_paper():
    task = make_task("multiplication", 50)
    batch = task.sample(512, generator(2))
    values, markers = batch.inputs[..., 0], batch.inputs[..., 1]
    assert values.min() >= 0 and values.max() <= 1
    for b in range(batch.batch_size):
        marked = (markers[:, b] == 1).nonzero().flatten().tolist()
        if 0 in marked:
            assert values[0, b] == 1.0, "a marked first pair gets the neutral value 1.0"
        x1, x2 = values[marked, b]
        assert batch.targets[b] == pytest.approx(float(x1 * x2), abs=1e-6)


def test_correct_means_absolute_error_below_004():
    task = make_task("adding", 20)
    batch = task.sample(4, generator())
    outputs = torch.zeros(batch.inputs.shape[0], 4, 1)
    errors = torch.tensor([0.0, 0.039, -0.0399, 0.041])
    outputs[batch.lengths - 1, torch.arange(4), 0] = batch.targets + errors
    assert task.wrong(outputs, batch).tolist() == [False, False, False, True]


@pytest.mark.parametrize("variant, relevant, windows", [
    ("temporal-order-6a", 2, [(10, 20), (50, 60)]),
    ("temporal-order-6b", 3, [(10, 20), (33, 43), (66, 76)]),
])
def test_temporal_order_follows_the_paper(variant, relevant, windows):
    task = make_task(variant)
    assert task.input_size == 8 and task.output_size == 2**relevant
    batch = task.sample(400, generator(3))
    symbols = batch.inputs.argmax(-1)  # (T, B); E=0 B=1 a..d=2..5 X=6 Y=7
    assert batch.lengths.min() >= 100 and batch.lengths.max() <= 110
    for b in range(batch.batch_size):
        length = int(batch.lengths[b])
        sequence = symbols[:length, b]
        assert sequence[0] == 0 and sequence[-1] == 1, "starts with E, ends with the trigger B"
        relevant_positions = ((sequence == 6) | (sequence == 7)).nonzero().flatten() + 1  # 1-based
        assert len(relevant_positions) == relevant
        for position, (low, high) in zip(relevant_positions.tolist(), windows):
            assert low <= position <= high
        order = sequence[relevant_positions - 1] - 6  # X → 0, Y → 1
        assert int(batch.targets[b]) == int("".join(map(str, order.tolist())), 2)  # XX→Q=0, XY→R=1, ...
        assert ((sequence[1:-1] >= 2) & (sequence[1:-1] <= 7)).all()
    assert torch.bincount(batch.targets, minlength=2**relevant).min() > 0, "every class occurs"


def test_temporal_order_criterion_is_03_on_every_unit():
    task = make_task("temporal-order-6a")
    batch = task.sample(3, generator())
    outputs = perfect_outputs(task, batch)
    assert not task.wrong(outputs, batch).any()
    end = batch.lengths - 1
    outputs[end, torch.arange(3)] = torch.zeros(3, 4)  # uniform 0.25: error 0.75 on the target unit
    assert task.wrong(outputs, batch).all()


def test_noise_free_sequences_are_the_papers_two():
    task = make_task("noise-free", 100)
    batch = task.evaluation_batch(10_000, generator())
    assert batch.batch_size == 2, "only two distinct sequences exist"
    full = torch.cat([batch.inputs.argmax(-1), batch.targets[-1:]], dim=0)  # (p + 1, 2)
    x, y = 99, 100
    assert full[:, 0].tolist() == [x, *range(99), x]
    assert full[:, 1].tolist() == [y, *range(99), y]
    assert (batch.targets[:-1] == batch.inputs.argmax(-1)[1:]).all(), "targets are the next symbols"
    outputs = 30 * F.one_hot(batch.targets, 101).float()
    assert not task.wrong(outputs, batch).any()
    outputs[-1, 0, x], outputs[-1, 0, y] = 0.0, 0.0  # no memory of the first symbol at the end
    assert task.wrong(outputs, batch).tolist() == [True, False]


def test_noise_free_training_batches_hold_both_sequences_equally():
    task = make_task("noise-free", 20)
    first_is_y = lambda batch: batch.inputs[0].argmax(-1) == 20  # noqa: E731
    for size in (2, 8, 32):
        batch = task.sample(size, generator(size))
        assert int(first_is_y(batch).sum()) == size // 2
    odd = [int(first_is_y(task.sample(5, generator(seed))).sum()) for seed in range(40)]
    assert set(odd) == {2, 3}, "the odd one out is either sequence"
    orders = {tuple(first_is_y(task.sample(8, generator(seed))).tolist()) for seed in range(10)}
    assert len(orders) > 1, "the order within a batch is random"


def test_noise_free_loss_weights_the_last_prediction():
    task = make_task("noise-free", 10)
    batch = task.sample(4, generator())
    outputs = torch.randn(10, 4, 11, generator=generator(1))
    per_step = F.cross_entropy(outputs.flatten(0, 1), batch.targets.flatten(), reduction="none").view(10, 4)
    expected = (per_step[:-1].sum() + 9 * per_step[-1].sum()) / (18 * 4)  # default weight p − 1
    assert torch.allclose(task.loss(outputs, batch), expected)
    uniform = NoiseFreeLongLag(10, final_step_weight=1.0)
    assert torch.allclose(uniform.loss(outputs, batch), per_step.mean())
    assert task_from_config(uniform.config()) == uniform
    with pytest.raises(ValueError, match="final_step_weight must be a positive number"):
        NoiseFreeLongLag(10, final_step_weight=0)


def test_very_long_lag_follows_the_paper():
    q, p = 50, 20
    task = make_task("very-long-lag", q, p=p)
    assert task.input_size == p + 4 and task.output_size == 2
    batch = task.sample(2000, generator(4))
    symbols = batch.inputs.argmax(-1)
    e, b_symbol, x = p, p + 1, p + 2
    assert (symbols[0] == b_symbol).all()
    assert (batch.targets == symbols[1] - x).all(), "the target is the second element"
    assert (batch.lengths >= q + 3).all()
    for b in range(batch.batch_size):
        length = int(batch.lengths[b])
        assert symbols[length - 1, b] == e
        assert (symbols[2 : length - 1, b] < p).all(), "only distractors between x|y and e"
    extra = (batch.lengths - q - 3).float()
    assert extra.mean() == pytest.approx(9.0, rel=0.1), "suffix: distractor w.p. 9/10, e w.p. 1/10"


def test_embedded_reber_strings_are_grammatical_and_targets_legal():
    task = make_task("reber")
    strings = task.strings("train") + task.strings("test")
    assert len(strings) == 512
    for text, legal in strings:
        assert text[0] == "B" and text[-1] == "E" and text[1] in "TP" and text[-2] == text[1]
        assert _is_reber(text[2:-2]), text
        for t in range(len(text) - 1):
            assert text[t + 1] in legal[t], f"{text}: {text[t + 1]} not legal after {text[: t + 1]}"
        assert legal[-3] == {text[1]}, "after the inner E only the remembered symbol is legal"
    batch = task.evaluation_batch(0, generator())
    assert not task.wrong(batch.targets * 10, batch).any(), "outputs = legal sets are all right"
    shifted = batch.targets.roll(1, dims=-1) * 10
    assert task.wrong(shifted, batch).all()


def _is_reber(text):
    """Run the Reber automaton (Fahlman's layout) over `text`."""
    transitions = {1: {"T": 2, "P": 3}, 2: {"S": 2, "X": 4}, 3: {"T": 3, "V": 5}, 4: {"X": 3, "S": 6}, 5: {"P": 4, "V": 6}}
    if not (text.startswith("B") and text.endswith("E")):
        return False
    state = 1
    for symbol in text[1:-1]:
        if state not in transitions or symbol not in transitions[state]:
            return False
        state = transitions[state][symbol]
    return state == 6 and set(text) <= set(REBER_SYMBOLS)


def test_modern_adding_definition_and_constant_baseline():
    task = make_task("modern-adding", 60)
    batch = task.sample(20_000, generator(5))
    values, markers = batch.inputs[..., 0], batch.inputs[..., 1]
    assert (markers[:30].sum(0) == 1).all() and (markers[30:].sum(0) == 1).all()
    assert torch.allclose((values * markers).sum(0), batch.targets)
    constant = torch.ones(60, batch.batch_size, 1)  # predict E[X1 + X2] = 1
    mse = float(task.loss(constant, batch))
    assert mse == pytest.approx(task.baseline_loss(), rel=0.04)
    assert task.baseline_loss() == pytest.approx(1 / 6)


def test_copy_definition_and_memoryless_baseline():
    T = 30
    task = make_task("copy", T)
    batch = task.sample(64, generator(6))
    symbols = batch.inputs.argmax(-1)
    assert batch.inputs.shape[0] == T + 20
    assert ((symbols[:10] >= 1) & (symbols[:10] <= 8)).all()
    assert (symbols[10 : T + 9] == 0).all() and (symbols[T + 9] == 9).all() and (symbols[T + 10 :] == 0).all()
    assert (batch.targets[: T + 10] == 0).all() and (batch.targets[T + 10 :] == symbols[:10]).all()
    loss = float(task.loss(task.baseline_outputs(64), batch))
    assert loss == pytest.approx(10 * math.log(8) / (T + 20), rel=1e-5)
    assert task.wrong(F.one_hot(batch.targets, 9).float() * 10, batch).sum() == 0


@pytest.mark.parametrize("name, T", [("adding", 40), ("adding", 200), ("multiplication", 40), ("multiplication", 200)])
def test_paper_baselines_match_closed_forms(name, T):
    task = make_task(name, T)
    batch = task.sample(40_000, generator(7))
    assert float(batch.targets.mean()) == pytest.approx(task.baseline_constant(), abs=0.004)
    outputs = torch.full((batch.inputs.shape[0], batch.batch_size, 1), task.baseline_constant())
    assert float(task.loss(outputs, batch)) == pytest.approx(task.baseline_loss(), rel=0.03)


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_is_reproducible_and_survives_its_config(name):
    task = make_task(name)
    first, second = task.sample(8, generator(11)), task.sample(8, generator(11))
    assert torch.equal(first.inputs, second.inputs) and torch.equal(first.targets, second.targets)
    rebuilt = task_from_config(task.config())
    assert rebuilt.label == task.label
    assert torch.equal(rebuilt.sample(8, generator(11)).inputs, first.inputs)
    outputs = torch.randn(first.inputs.shape[0], 8, task.output_size)
    assert task.loss(outputs, first).ndim == 0 and task.wrong(outputs, first).shape == (8,)
    assert last_step(outputs, first.lengths).shape == (8, task.output_size)


def test_bad_task_arguments_say_what_was_expected():
    with pytest.raises(ValueError, match="T .* ≥ 20"):
        make_task("adding", 5)
    with pytest.raises(ValueError, match="unknown task 'adder'"):
        make_task("adder")
    with pytest.raises(ValueError, match="no length parameter"):
        make_task("reber", 50)
