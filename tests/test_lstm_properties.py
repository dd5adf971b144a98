"""Property-based tests (hypothesis) over random shapes and option combinations.

Properties that must hold for every configuration:
- plain configurations agree with torch.nn.LSTM (float64), packed or not;
- any configuration: each sequence of a batch (packed, random lengths) gives what it
  gives on its own — no information crosses the batch, padding changes nothing;
- the trace is honest (recomputes c and h; last layer h is the output; last valid
  steps are h_n / c_n) whenever zoneout is off;
- output, h_n and c_n have torch.nn.LSTM's shapes.
Example counts are modest (tests/conftest.py); HYPOTHESIS_PROFILE=thorough runs more.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import lstmlab
from test_lstm_trace import _assert_recomputes
from tolerances import assert_close

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny tensors: see conftest

F64 = torch.float64


@st.composite
def configurations(draw, plain=False):
    """(sizes, constructor options, lengths or None, seed)."""
    hidden_size = draw(st.integers(1, 5))
    options = dict(
        num_layers=draw(st.integers(1, 3)),
        bias=draw(st.booleans()),
        batch_first=draw(st.booleans()),
        bidirectional=draw(st.booleans()),
        proj_size=draw(st.integers(0, hidden_size - 1)),
    )
    if not plain:
        options.update(
            peephole=draw(st.booleans()),
            layer_norm=draw(st.booleans()),
            coupled=draw(st.booleans()),
            zoneout=draw(st.sampled_from([0.0, 0.0, 0.25, (0.1, 0.5)])),
            weight_drop=draw(st.sampled_from([0.0, 0.3])),
        )
    steps, batch = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    if not plain:
        options["engine"] = draw(st.sampled_from(["reference", "auto"]))
    packed = draw(st.booleans())
    lengths = draw(st.lists(st.integers(1, steps), min_size=batch, max_size=batch)) if packed else None
    sizes = dict(steps=steps, batch=batch, input_size=draw(st.integers(1, 5)), hidden_size=hidden_size)
    return sizes, options, lengths, draw(st.integers(0, 2**31 - 1))


def _make_input(sizes, options, lengths, dtype=F64):
    """Random input in the module's layout: a tensor, or a PackedSequence (unsorted)."""
    steps, batch = sizes["steps"], sizes["batch"]
    if lengths is not None:
        steps = max(lengths)
    padded = torch.randn(steps, batch, sizes["input_size"], dtype=dtype)  # (T, B, I)
    if lengths is not None:
        return padded, pack_padded_sequence(padded, torch.tensor(lengths), enforce_sorted=False)
    return padded, padded.transpose(0, 1) if options["batch_first"] else padded


def _random_hx(sizes, options, dtype=F64):
    rows = options["num_layers"] * (2 if options["bidirectional"] else 1)
    width = options["proj_size"] or sizes["hidden_size"]
    return (torch.randn(rows, sizes["batch"], width, dtype=dtype),
            torch.randn(rows, sizes["batch"], sizes["hidden_size"], dtype=dtype))


def _time_major_output(output, batch_first):
    if isinstance(output, PackedSequence):
        return pad_packed_sequence(output)[0]
    return output.transpose(0, 1) if batch_first else output


@given(configurations(plain=True))
def test_plain_configurations_agree_with_torch(case):
    sizes, options, lengths, seed = case
    torch.manual_seed(seed)
    theirs = torch.nn.LSTM(sizes["input_size"], sizes["hidden_size"], **options, dtype=F64)
    ours = lstmlab.LSTM(sizes["input_size"], sizes["hidden_size"], **options, dtype=F64,
                        engine="reference")
    ours.load_state_dict(theirs.state_dict())
    _, x = _make_input(sizes, options, lengths)
    hx = _random_hx(sizes, options)
    output, (h_n, c_n) = ours(x, hx)
    expected_output, (expected_h_n, expected_c_n) = theirs(x, hx)
    if lengths is not None:
        output, expected_output = output.data, expected_output.data
    assert_close(output, expected_output, F64, "output")
    assert_close(h_n, expected_h_n, F64, "h_n")
    assert_close(c_n, expected_c_n, F64, "c_n")


@given(configurations())
def test_sequences_of_a_batch_are_independent(case):
    """Every sequence (eval mode) gives the same output and final state alone, unbatched."""
    sizes, options, lengths, seed = case
    torch.manual_seed(seed)
    lstm = lstmlab.LSTM(sizes["input_size"], sizes["hidden_size"], **options, dtype=F64).eval()
    padded, x = _make_input(sizes, options, lengths)
    h0, c0 = _random_hx(sizes, options)
    output, (h_n, c_n) = lstm(x, (h0, c0))
    output = _time_major_output(output, options["batch_first"])  # (T, B, D*P)
    structural = {k: options[k] for k in ("num_layers", "bidirectional", "proj_size")}
    expected_shapes = torch.nn.LSTM(sizes["input_size"], sizes["hidden_size"], **structural)(
        padded.float(), (h0.float(), c0.float()))
    assert h_n.shape == expected_shapes[1][0].shape and c_n.shape == expected_shapes[1][1].shape
    assert output.shape[1:] == expected_shapes[0].shape[1:]
    for b in range(sizes["batch"]):
        length = lengths[b] if lengths is not None else padded.shape[0]
        alone_output, (alone_h, alone_c) = lstm(padded[:length, b], (h0[:, b], c0[:, b]))
        assert_close(output[:length, b], alone_output, F64, f"sequence {b} output")
        assert_close(h_n[:, b], alone_h, F64, f"sequence {b} h_n")
        assert_close(c_n[:, b], alone_c, F64, f"sequence {b} c_n")
        assert bool((output[length:, b] == 0).all())


@given(configurations())
def test_trace_is_honest_for_random_configurations(case):
    sizes, options, lengths, seed = case
    options = dict(options, zoneout=0.0)  # with zoneout the trace holds the zoned-out states
    torch.manual_seed(seed)
    lstm = lstmlab.LSTM(sizes["input_size"], sizes["hidden_size"], **options, dtype=F64).eval()
    _, x = _make_input(sizes, options, lengths)
    h0, c0 = _random_hx(sizes, options)
    output, (h_n, c_n), trace = lstm(x, (h0, c0), trace=True)
    batch_first = options["batch_first"]
    output = _time_major_output(output, batch_first)
    top_h = trace[-1].h.transpose(0, 1) if batch_first else trace[-1].h
    assert_close(top_h.flatten(-2), output, F64, "last layer h == output")
    if lengths is None:
        _assert_recomputes(lstm, trace, c0, batch_first, F64)
        lengths = [output.shape[0]] * sizes["batch"]
    else:
        mask = trace.mask.T if batch_first else trace.mask
        assert torch.equal(mask.sum(0), torch.tensor(lengths))
    D = 2 if options["bidirectional"] else 1
    for layer in range(options["num_layers"]):
        for direction in range(D):
            for b, length in enumerate(lengths):
                last = 0 if direction else length - 1
                for name, final in (("h", h_n), ("c", c_n)):
                    values = getattr(trace[layer], name)
                    values = values.transpose(0, 1) if batch_first else values
                    assert_close(values[last, b, direction], final[layer * D + direction, b], F64,
                                 f"{name}_n layer {layer} direction {direction} sequence {b}")


@pytest.mark.parametrize("dtype", [torch.float32], ids=str)
@given(case=configurations(plain=True))
def test_native_and_reference_agree_in_float32(case, dtype):
    sizes, options, lengths, seed = case
    torch.manual_seed(seed)
    reference = lstmlab.LSTM(sizes["input_size"], sizes["hidden_size"], **options, engine="reference")
    native = lstmlab.LSTM(sizes["input_size"], sizes["hidden_size"], **options, engine="native")
    native.load_state_dict(reference.state_dict())
    _, x = _make_input(sizes, options, lengths, dtype)
    hx = _random_hx(sizes, options, dtype)
    output, (h_n, c_n) = native(x, hx)
    expected_output, (expected_h_n, expected_c_n) = reference(x, hx)
    if lengths is not None:
        output, expected_output = output.data, expected_output.data
    assert_close(output, expected_output, dtype, "output native vs reference")
    assert_close(h_n, expected_h_n, dtype, "h_n native vs reference")
    assert_close(c_n, expected_c_n, dtype, "c_n native vs reference")
