"""`lstmlab.Stream` and `LSTM.step`: one step per call equals the sequence call; the packed
weights follow every kind of parameter change; errors are clear."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
import torch
from torch import nn

import lstmlab
from tolerances import assert_close, tolerance
from variants import cases, parametrize, variant

# what the C++ step runs (no zoneout: Stream refuses it), with and without bias, stacked, projected
STREAM_CASES = cases(
    "plain",
    variant("plain", bias=False),
    "peephole",
    "coupled",
    "peephole-coupled",
    "layer_norm",
    "layer_norm-peephole",
    variant("layer_norm-coupled", bias=False),
    variant("plain", num_layers=2, proj_size=3),
    variant("coupled", num_layers=3),
    variant("layer_norm", num_layers=2, proj_size=4),
)


def run_stream(lstm, x, state=None):
    """Outputs of a Stream driven over x (T, B, I), and the Stream."""
    stream = lstmlab.Stream(lstm, batch_size=x.shape[1], state=state)
    return torch.stack([stream(x_t) for x_t in x]), stream


def random_state(lstm, batch, dtype):
    h0 = torch.randn(lstm.num_layers, batch, lstm.proj_size or lstm.hidden_size, dtype=dtype)
    return h0, torch.randn(lstm.num_layers, batch, lstm.hidden_size, dtype=dtype)


@pytest.mark.parametrize("batch", [1, 3])
@parametrize("options", STREAM_CASES)
def test_stream_equals_sequence_float64(options, batch):
    lstm = lstmlab.LSTM(5, 7, **options).double().eval()
    x = torch.randn(8, batch, 5, dtype=torch.double)
    h0, c0 = random_state(lstm, batch, torch.double)
    output, (h_n, c_n) = lstm(x, (h0, c0))
    steps, stream = run_stream(lstm, x, (h0, c0))
    assert_close(steps, output, torch.float64, "outputs")
    assert_close(stream.state[0], h_n, torch.float64, "h_n")
    assert_close(stream.state[1], c_n, torch.float64, "c_n")


# float32 runs the AVX-512 kernels (where the CPU has them): 4H not a multiple of the
# 128-column panel, batch rows in groups of 3 plus a remainder, and a product large
# enough (> 2^18 multiply-adds) to be split over threads.
@pytest.mark.parametrize("hidden, batch, options", [
    (40, 1, variant("plain")), (40, 5, variant("peephole")), (33, 4, variant("plain", num_layers=2, proj_size=17)),
    (24, 2, variant("layer_norm-coupled")), (300, 1, variant("plain")), (200, 3, variant("plain", proj_size=50)),
], ids=["H40-B1", "H40-B5-peephole", "H33-B4-2-layer-proj", "H24-B2-ln-coupled", "H300-B1", "H200-B3-proj"])
def test_stream_equals_sequence_float32(hidden, batch, options):
    lstm = lstmlab.LSTM(70, hidden, **options).eval()
    x = torch.randn(6, batch, 70)
    h0, c0 = random_state(lstm, batch, torch.float32)
    with torch.no_grad():
        output, (h_n, c_n) = lstm(x, (h0, c0))
    steps, stream = run_stream(lstm, x, (h0, c0))
    assert_close(steps, output, torch.float32, "outputs")
    assert_close(stream.state[1], c_n, torch.float32, "c_n")


def test_stream_same_numbers_on_one_and_two_threads():
    lstm = lstmlab.LSTM(64, 300).eval()  # 4H x (I + H) = 1200 x 364: split over threads when there are 2
    x = torch.randn(4, 1, 64)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one, _ = run_stream(lstm, x)
        torch.set_num_threads(2)
        two, _ = run_stream(lstm, x)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(one, two)  # each column's sum is computed the same way on any thread


def test_stream_unbatched_and_reset():
    lstm = lstmlab.LSTM(4, 6, num_layers=2).double().eval()
    x = torch.randn(5, 4, dtype=torch.double)
    stream = lstmlab.Stream(lstm, batch_size=None)
    first = torch.stack([stream(x_t) for x_t in x])
    assert first.shape == (5, 6)
    assert_close(first, lstm(x)[0], torch.float64, "unbatched outputs")
    assert stream.state[0].shape == (2, 6) and stream.state[1].shape == (2, 6)
    stream.reset()  # back to zeros: the same outputs again
    assert torch.equal(torch.stack([stream(x_t) for x_t in x]), first)
    h0, c0 = torch.randn(2, 6, dtype=torch.double), torch.randn(2, 6, dtype=torch.double)
    stream.reset((h0, c0))
    from_state = torch.stack([stream(x_t) for x_t in x])
    assert_close(from_state, lstm(x, (h0, c0))[0], torch.float64, "outputs from a given state")


def test_stream_returns_a_new_tensor_each_step():
    lstm = lstmlab.LSTM(4, 6).eval()
    stream = lstmlab.Stream(lstm)
    first = stream(torch.randn(1, 4))
    kept = first.clone()
    second = stream(torch.randn(1, 4))
    assert first.data_ptr() != second.data_ptr()
    assert torch.equal(first, kept)  # the next step did not overwrite it
    assert not first.requires_grad


def test_stream_state_is_a_copy():
    lstm = lstmlab.LSTM(4, 6).eval()
    stream = lstmlab.Stream(lstm)
    stream(torch.randn(1, 4))
    h, c = stream.state
    h.zero_()
    c.zero_()
    assert stream.state[1].abs().sum() > 0


WEIGHT_CHANGES = {
    "in-place": lambda lstm: lstm.weight_hh_l0.mul_(0.5),
    "load_state_dict": lambda lstm: lstm.load_state_dict({k: v * 0.5 for k, v in lstm.state_dict().items()}),
    "replaced-parameter": lambda lstm: setattr(lstm, "weight_ih_l0", nn.Parameter(lstm.weight_ih_l0 * 0.5)),
    "data-assigned": lambda lstm: setattr(lstm.bias_hh_l0, "data", lstm.bias_hh_l0.data + 1.0),
    "optimizer-step": lambda lstm: optimizer_step(lstm),
}


def optimizer_step(lstm):
    with torch.enable_grad():
        optimizer = torch.optim.SGD(lstm.parameters(), lr=0.5)
        lstm(torch.randn(3, 1, 4, dtype=torch.double))[0].sum().backward()
        optimizer.step()


@pytest.mark.parametrize("change", WEIGHT_CHANGES.values(), ids=WEIGHT_CHANGES.keys())
def test_stream_and_step_follow_weight_changes(change):
    lstm = lstmlab.LSTM(4, 6).double().eval()
    x = torch.randn(5, 1, 4, dtype=torch.double)
    before, stream = run_stream(lstm, x)
    state = random_state(lstm, 1, torch.double)
    with torch.no_grad():
        step_before = lstm.step(x[0], state)[0]
        change(lstm)
    stream.reset()
    after = torch.stack([stream(x_t) for x_t in x])
    assert_close(after, lstm(x)[0], torch.float64, "Stream outputs after the change")
    assert not torch.allclose(after, before)
    with torch.no_grad():
        step_after = lstm.step(x[0], state)[0]
        assert_close(step_after, lstm(x[:1], state)[0][0], torch.float64, "LSTM.step after the change")
    assert not torch.allclose(step_after, step_before)


@pytest.mark.parametrize("options", [dict(), dict(num_layers=2, proj_size=3, layer_norm=True)],
                         ids=["plain", "ln-proj"])
def test_lstm_step_equals_stream_and_sequence(options):
    lstm = lstmlab.LSTM(5, 7, **options).eval()
    x = torch.randn(6, 2, 5)
    steps, _ = run_stream(lstm, x)
    state, outputs = None, []
    with torch.no_grad():
        for x_t in x:
            y_t, state = lstm.step(x_t, state)
            outputs.append(y_t)
        output, (h_n, c_n) = lstm(x)
    assert torch.equal(torch.stack(outputs), steps)  # the same C++ step
    assert_close(steps, output, torch.float32, "outputs")
    assert_close(state[1], c_n, torch.float32, "c_n")


def test_packed_weights_die_with_the_module():
    lstm = lstmlab.LSTM(4, 6).eval()
    stream = lstmlab.Stream(lstm)
    stream(torch.randn(1, 4))
    with torch.no_grad():
        lstm.step(torch.randn(1, 4))
    module = weakref.ref(lstm)
    del lstm, stream
    gc.collect()
    assert module() is None


def test_stream_says_when_the_weights_changed_dtype():
    lstm = lstmlab.LSTM(4, 6).eval()
    stream = lstmlab.Stream(lstm)
    lstm.double()
    with pytest.raises(TypeError, match="weights changed dtype"):
        stream(torch.randn(1, 4))


def test_stream_errors_name_what_was_expected():
    lstm = lstmlab.LSTM(4, 6)
    with pytest.raises(ValueError, match="unidirectional"):
        lstmlab.Stream(lstmlab.LSTM(4, 6, bidirectional=True))
    with pytest.raises(ValueError, match="zoneout"):
        lstmlab.Stream(lstmlab.LSTM(4, 6, zoneout=0.1))
    with pytest.raises(TypeError, match="expected an lstmlab.LSTM"):
        lstmlab.Stream(torch.nn.LSTM(4, 6))
    stream = lstmlab.Stream(lstm, batch_size=2)
    with pytest.raises(ValueError, match=r"expected shape \(2, 4\), got \(3, 4\)"):
        stream(torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"expected shape \(2, 4\), got \(4,\)"):
        stream(torch.randn(4))
    with pytest.raises(ValueError, match=r"expected shape \(2, 4\), got list"):
        stream([[0.0] * 4] * 2)
    with pytest.raises(TypeError, match="expected dtype torch.float32"):
        stream(torch.randn(2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"state h: expected shape \(1, 2, 6\)"):
        stream.reset((torch.zeros(1, 3, 6), torch.zeros(1, 3, 6)))
    assert stream(torch.randn(2, 4).T.contiguous().T).shape == (2, 6)  # any strides are fine


# the float32 row of tests/tolerances.py is written into the script: the child process has no tests/ on its path
OTHER_BUILD_CHECK = f"""
import sys, torch, lstmlab
assert lstmlab.engines.fused.capability() == sys.argv[1], lstmlab.engines.fused.capability()
lstm = lstmlab.LSTM(70, 40, num_layers=2, proj_size=20, peephole=True).eval()
x = torch.randn(5, 4, 70)
stream = lstmlab.Stream(lstm, batch_size=4)
steps = torch.stack([stream(x_t) for x_t in x])
with torch.no_grad():
    torch.testing.assert_close(steps, lstm(x)[0], **{tolerance(torch.float32)!r})
print("ok")
"""


@pytest.mark.slow
@pytest.mark.parametrize("capability", ["AVX2", "DEFAULT"])
def test_stream_on_the_other_builds(tmp_path, capability):
    """The step's AVX2 and plain-loop kernels, in a process whose torch reports that capability."""
    env = dict(os.environ, ATEN_CPU_CAPABILITY=capability.lower(), LSTMLAB_CACHE=str(tmp_path),
               PYTHONPATH=str(Path(lstmlab.__file__).parents[1]))
    done = subprocess.run([sys.executable, "-c", OTHER_BUILD_CHECK, capability], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def test_bench_streaming_writes_its_own_table(tmp_path):
    from lstmlab.cli import main

    out = tmp_path / "stream.md"
    assert main(["bench", "engine", "--streaming", "--quick", "--rounds", "1", "--out", str(out)]) == 0
    table = out.read_text()
    assert "| 64 |" in table and "| 512 |" in table and "Stream / LSTMCell" in table
