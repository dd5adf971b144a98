"""Saturation and memory statistics on hand-built traces with known answers."""

import math

import pytest
import torch

from lstmlab import LayerTrace, Trace
from lstmlab.inspect import as_recording, forget_half_life, memory_span, retention_curve, saturation
from lstmlab.inspect.stats import memory_summary, saturation_summary
from tolerances import assert_close


def layer_from(**given):
    """A LayerTrace (T, B, D, H); fields not given are 0.5 (nothing saturated)."""
    shape = next(iter(given.values())).shape
    fields = {name: given.get(name, torch.full(shape, 0.5)) for name in "ifgoch"}
    return LayerTrace(**fields)


def column(values):
    """(T,) values -> (T, 1, 1, 1)."""
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1)


def test_saturation_fractions_per_unit_and_gate():
    forget = torch.cat([
        column([0.05] * 3 + [0.5] * 5 + [0.95] * 2),  # unit 0: shut 30%, open 20%
        column([0.1] * 5 + [0.9] * 5),  # unit 1: exactly on the thresholds: never saturated
        column([0.99] * 10),  # unit 2: always open
    ], dim=3)
    candidate = torch.cat([column([-0.85] * 4 + [0.85] * 1 + [-0.75] * 5)] * 3, dim=3)
    recording = as_recording(Trace((layer_from(f=forget, g=candidate),)))
    by_gate = {(item.layer, item.gate): item for item in saturation(recording)}
    assert torch.allclose(by_gate[0, "f"].left, torch.tensor([[0.3, 0.0, 0.0]]))
    assert torch.allclose(by_gate[0, "f"].right, torch.tensor([[0.2, 0.0, 1.0]]))
    # g is tanh-valued: the 10%-from-each-end rule gives -0.8 / 0.8
    assert by_gate[0, "g"].low == pytest.approx(-0.8) and by_gate[0, "g"].high == pytest.approx(0.8)
    assert torch.allclose(by_gate[0, "g"].left, torch.full((1, 3), 0.4))
    assert torch.allclose(by_gate[0, "g"].right, torch.full((1, 3), 0.1))
    assert torch.all(by_gate[0, "i"].left == 0) and torch.all(by_gate[0, "o"].right == 0)
    rows = {(row["layer"], row["gate"]): row for row in saturation_summary(saturation(recording))}
    assert rows[0, "f"]["units_mostly_open"] == 1 and rows[0, "f"]["units_mostly_shut"] == 0
    assert rows[0, "f"]["mean_right"] == pytest.approx((0.2 + 0 + 1) / 3)


def test_padding_is_not_counted_and_batch_first_is_normalised():
    forget = torch.zeros(6, 2, 1, 1)  # padding is zero, which would count as "shut"
    forget[:, 0] = 0.95
    forget[:4, 1] = torch.tensor([0.95, 0.95, 0.5, 0.02]).view(4, 1, 1)
    mask = torch.arange(6)[:, None] < torch.tensor([6, 4])[None]  # (T, B)
    time_major = as_recording(Trace((layer_from(f=forget),), mask=mask))
    batch_major = as_recording(Trace((layer_from(f=forget.transpose(0, 1)),), mask=mask.T, batch_first=True))
    for recording in (time_major, batch_major):
        forget_stats = next(item for item in saturation(recording) if item.gate == "f")
        assert forget_stats.left.item() == pytest.approx(1 / 10)  # 10 real steps, one shut
        assert forget_stats.right.item() == pytest.approx(8 / 10)


def test_constant_forget_gate_has_closed_form_memory():
    recording = as_recording(Trace((layer_from(f=torch.full((40, 2, 1, 3), 0.8)),)))
    curve = retention_curve(recording, 0, max_lag=10)
    expected = torch.tensor([0.8**lag for lag in range(11)])
    assert_close(curve[:, 0, 0], expected, "float32 closed form", "retention curve vs 0.8**lag")
    assert torch.allclose(forget_half_life(recording, 0), torch.full((1, 3), math.log(0.5) / math.log(0.8)))
    # 0.8^3 = 0.512 >= 0.5 > 0.8^4: the memory stays above one half for 3 steps
    assert torch.allclose(memory_span(recording, 0, threshold=0.5, max_lag=10), torch.full((1, 3), 3.0))


def brute_force_retention(forget, lag):
    """Mean over t of prod_{s=t+1}^{t+lag} f_s, by explicit loops, for (T,) values."""
    products = [math.prod(forget[t + 1 : t + lag + 1]) for t in range(len(forget) - lag)]
    return sum(products) / len(products)


def test_retention_and_span_match_explicit_loops():
    torch.manual_seed(0)
    forget_values = torch.rand(30).pow(0.3).tolist()
    recording = as_recording(Trace((layer_from(f=column(forget_values)),)))
    curve = retention_curve(recording, 0, max_lag=12)[:, 0, 0]
    for lag in range(1, 13):
        assert curve[lag].item() == pytest.approx(brute_force_retention(forget_values, lag), rel=1e-5)
    span = 0.0
    for lag in range(1, 13):
        starts = range(len(forget_values) - lag)
        span += sum(math.prod(forget_values[t + 1 : t + lag + 1]) >= 0.5 for t in starts) / len(starts)
    assert memory_span(recording, 0, 0.5, max_lag=12).item() == pytest.approx(span, rel=1e-5)


def test_hand_computed_retention_example():
    recording = as_recording(Trace((layer_from(f=column([1.0, 0.5, 0.5, 1.0, 0.25])),)))
    curve = retention_curve(recording, 0, max_lag=4)[:, 0, 0]
    assert curve[1].item() == pytest.approx((0.5 + 0.5 + 1.0 + 0.25) / 4)
    assert curve[2].item() == pytest.approx((0.25 + 0.5 + 0.25) / 3)
    assert curve[4].item() == pytest.approx(0.5 * 0.5 * 1.0 * 0.25)


def test_forget_gate_of_one_never_halves_and_summary_reports_it():
    recording = as_recording(Trace((layer_from(f=torch.ones(8, 1, 1, 2)),)))
    assert torch.isinf(forget_half_life(recording, 0)).all()
    row = memory_summary(recording, max_lag=5)[0]
    assert math.isinf(row["half_life_median"]) and row["span_max"] == pytest.approx(5.0)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="expected \\(T, B, D, H\\)"):
        as_recording([layer_from(f=torch.ones(4, 3))])
    recording = as_recording(Trace((layer_from(f=torch.ones(4, 1, 1, 2)),)))
    with pytest.raises(ValueError, match="low < high"):
        saturation(recording, low=0.9, high=0.1)
    with pytest.raises(ValueError, match="layer must be in"):
        recording.quantity(3, "c")


def test_padded_batch_memory_matches_explicit_loops_in_any_chunking(monkeypatch):
    from lstmlab.inspect import stats

    torch.manual_seed(1)
    lengths = [25, 9]
    forget = torch.rand(25, 2, 1, 1).pow(0.2)
    mask = torch.arange(25)[:, None] < torch.tensor(lengths)[None]
    recording = as_recording(Trace((layer_from(f=forget),), mask=mask))
    sequences = [forget[: lengths[b], b, 0, 0].tolist() for b in range(2)]
    expected_curve, expected_span = [], 0.0
    for lag in range(1, 15):
        products = [math.prod(values[t + 1 : t + lag + 1]) for values in sequences for t in range(len(values) - lag)]
        expected_curve.append(sum(products) / len(products))
        expected_span += sum(product >= 0.5 for product in products) / len(products)
    for budget in (4_000_000, 1):  # one chunk of lags, or one lag at a time
        monkeypatch.setattr(stats._forget_products, "__defaults__", (budget,))
        profile = stats.memory_profile(recording, 0, threshold=0.5, max_lag=14)
        assert profile.retention[1:, 0, 0].tolist() == pytest.approx(expected_curve, rel=1e-5)
        assert profile.span.item() == pytest.approx(expected_span, rel=1e-5)
