"""Bad input fails loudly: a ValueError (TypeError for dtypes) whose message says what
was expected and what was given — wrong feature size, wrong number of dims, dtype or
device mismatch with the weights or hx, hx of the wrong shape, packed batch_sizes that
do not fit the data, an unknown engine name.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence

import lstmlab
from variants import cases, variant

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny tensors: see conftest

T, B, I, H = 5, 3, 4, 6


def _raises(error, call, *given):
    """Assert `call()` raises `error` with "expected" and each `given` text in its message."""
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert "expected" in message, f"message does not say what was expected: {message!r}"
    for text in given:
        assert str(text) in message, f"message does not name {text!r}: {message!r}"
    return message


LSTM_CASES = cases("plain", variant("plain", num_layers=2, bidirectional=True, proj_size=2), "layer_norm-peephole")


@pytest.fixture(params=list(LSTM_CASES.values()), ids=list(LSTM_CASES))
def lstm(request):
    return lstmlab.LSTM(I, H, **request.param)


def _hx(lstm, batch=B, dtype=torch.float32):
    rows = lstm.num_layers * (2 if lstm.bidirectional else 1)
    return (torch.zeros(rows, batch, lstm.proj_size or H, dtype=dtype),
            torch.zeros(rows, batch, H, dtype=dtype))


# ---------------------------------------------------------------- the input tensor

def test_wrong_feature_size(lstm):
    message = _raises(ValueError, lambda: lstm(torch.randn(T, B, I + 3)), I, I + 3)
    assert "input" in message


def test_wrong_feature_size_unbatched(lstm):
    _raises(ValueError, lambda: lstm(torch.randn(T, I - 1)), I, I - 1)


@pytest.mark.parametrize("shape", [(T,), (2, T, B, I), ()], ids=["1d", "4d", "scalar"])
def test_wrong_number_of_dims(lstm, shape):
    _raises(ValueError, lambda: lstm(torch.randn(shape)), tuple(shape))


def test_input_that_is_not_a_tensor(lstm):
    with pytest.raises(TypeError, match="expected"):
        lstm([[1.0] * I] * T)


def test_input_dtype_differs_from_weights(lstm):
    _raises(TypeError, lambda: lstm(torch.randn(T, B, I, dtype=torch.float64)), "float64", "float32")


def test_integer_input(lstm):
    _raises(TypeError, lambda: lstm(torch.ones(T, B, I, dtype=torch.int64)), "int64")


def test_input_device_differs_from_weights(lstm):
    """The "meta" device stands in for a second device (a GPU) on a CPU-only machine."""
    _raises(ValueError, lambda: lstm(torch.randn(T, B, I, device="meta")), "meta", "cpu")


# ---------------------------------------------------------------- hx

def test_hx_dtype_differs_from_weights(lstm):
    h0, c0 = _hx(lstm)
    _raises(TypeError, lambda: lstm(torch.randn(T, B, I), (h0.double(), c0)), "float64", "h_0")
    _raises(TypeError, lambda: lstm(torch.randn(T, B, I), (h0, c0.double())), "float64", "c_0")


def test_hx_device_differs_from_weights(lstm):
    h0, c0 = _hx(lstm)
    _raises(ValueError, lambda: lstm(torch.randn(T, B, I), (h0.to("meta"), c0)), "meta")


def test_hx_of_the_wrong_batch(lstm):
    h0, c0 = _hx(lstm, batch=B + 1)
    _raises(ValueError, lambda: lstm(torch.randn(T, B, I), (h0, c0)), tuple(h0.shape))


def test_hx_with_the_wrong_number_of_layers(lstm):
    h0, c0 = _hx(lstm)
    _raises(ValueError, lambda: lstm(torch.randn(T, B, I), (h0, c0[:-1])), tuple(c0[:-1].shape))


def test_h0_with_the_wrong_width():
    """With proj_size, h_0 has proj_size features and c_0 hidden_size: swapping them fails."""
    lstm = lstmlab.LSTM(I, H, proj_size=2)
    h0, c0 = torch.zeros(1, B, 2), torch.zeros(1, B, H)
    _raises(ValueError, lambda: lstm(torch.randn(T, B, I), (c0, c0)), (1, B, 2), (1, B, H))
    _raises(ValueError, lambda: lstm(torch.randn(T, B, I), (h0, h0)), (1, B, H), (1, B, 2))


def test_batched_hx_for_unbatched_input(lstm):
    h0, c0 = _hx(lstm, batch=1)
    _raises(ValueError, lambda: lstm(torch.randn(T, I), (h0, c0)), tuple(h0.shape))


def test_hx_that_is_not_a_pair(lstm):
    h0, _ = _hx(lstm)
    with pytest.raises((TypeError, ValueError), match="expected"):
        lstm(torch.randn(T, B, I), h0)


# ---------------------------------------------------------------- packed input

def _packed(data_rows, batch_sizes, sorted_indices=None, features=I):
    unsorted = None if sorted_indices is None else torch.argsort(sorted_indices)
    return PackedSequence(torch.randn(data_rows, features), torch.tensor(batch_sizes),
                          sorted_indices, unsorted)


def test_packed_batch_sizes_that_do_not_sum_to_the_data(lstm):
    _raises(ValueError, lambda: lstm(_packed(7, [3, 2, 1])), 7, 6)


def test_packed_batch_sizes_that_increase(lstm):
    _raises(ValueError, lambda: lstm(_packed(6, [2, 3, 1])), "[2, 3, 1]")


def test_packed_batch_sizes_with_a_zero(lstm):
    _raises(ValueError, lambda: lstm(_packed(5, [3, 2, 0])), "[3, 2, 0]")


def test_packed_sorted_indices_that_do_not_fit_the_batch(lstm):
    _raises(ValueError, lambda: lstm(_packed(6, [3, 2, 1], sorted_indices=torch.tensor([1, 0]))), 3, 2)


def test_packed_data_with_the_wrong_feature_size(lstm):
    _raises(ValueError, lambda: lstm(_packed(6, [3, 2, 1], features=I + 1)), I, I + 1)


def test_packed_hx_of_the_wrong_batch(lstm):
    h0, c0 = _hx(lstm, batch=2)
    _raises(ValueError, lambda: lstm(_packed(6, [3, 2, 1]), (h0, c0)), tuple(h0.shape))


# ---------------------------------------------------------------- engines

@pytest.mark.parametrize("name", ["fast", "Reference", "", None])
def test_unknown_engine_name(name):
    message = _raises(ValueError, lambda: lstmlab.LSTM(I, H, engine=name), repr(name))
    for valid in ("auto", "reference", "native"):
        assert valid in message, f"the message should list {valid!r}: {message!r}"


# ---------------------------------------------------------------- LSTMCell and LSTM.step

def test_cell_wrong_feature_size():
    _raises(ValueError, lambda: lstmlab.LSTMCell(I, H)(torch.randn(B, I + 2)), I, I + 2)


def test_cell_wrong_number_of_dims():
    _raises(ValueError, lambda: lstmlab.LSTMCell(I, H)(torch.randn(T, B, I)), (T, B, I))


def test_cell_dtype_mismatch():
    cell = lstmlab.LSTMCell(I, H)
    _raises(TypeError, lambda: cell(torch.randn(B, I, dtype=torch.float64)), "float64")
    hx = (torch.zeros(B, H, dtype=torch.float64), torch.zeros(B, H))
    _raises(TypeError, lambda: cell(torch.randn(B, I), hx), "float64")


def test_cell_hx_of_the_wrong_shape():
    cell = lstmlab.LSTMCell(I, H)
    _raises(ValueError, lambda: cell(torch.randn(B, I), (torch.zeros(B, H + 1), torch.zeros(B, H))),
            (B, H + 1))
    _raises(ValueError, lambda: cell(torch.randn(I), (torch.zeros(1, H), torch.zeros(1, H))), (1, H))


def test_step_wrong_input():
    lstm = lstmlab.LSTM(I, H)
    _raises(ValueError, lambda: lstm.step(torch.randn(B, I + 1)), I, I + 1)
    _raises(ValueError, lambda: lstm.step(torch.randn(T, B, I)), (T, B, I))
    state = (torch.zeros(1, B + 1, H), torch.zeros(1, B + 1, H))
    _raises(ValueError, lambda: lstm.step(torch.randn(B, I), state), (1, B + 1, H))


MISTAKES = {  # the same mistake made with torch's LSTM / LSTMCell and with lstmlab's
    "input dtype": lambda lstm, cell: lstm(torch.randn(5, 3, 4, dtype=torch.float64)),
    "input size": lambda lstm, cell: lstm(torch.randn(5, 3, 7)),
    "input dims": lambda lstm, cell: lstm(torch.randn(5, 3, 4, 2)),
    "state shape": lambda lstm, cell: lstm(torch.randn(5, 3, 4), (torch.zeros(1, 2, 8), torch.zeros(1, 2, 8))),
    "state dtype": lambda lstm, cell: lstm(torch.randn(5, 3, 4), (torch.zeros(1, 3, 8, dtype=torch.float64),) * 2),
    "cell input size": lambda lstm, cell: cell(torch.randn(3, 7)),
    "cell state shape": lambda lstm, cell: cell(torch.randn(3, 4), (torch.zeros(2, 8), torch.zeros(2, 8))),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_errors_are_also_of_the_type_torch_raises(mistake):
    """Code that catches torch.nn.LSTM's exception for a mistake catches lstmlab's too."""
    make = MISTAKES[mistake]
    with pytest.raises(Exception) as torch_error:
        make(torch.nn.LSTM(4, 8), torch.nn.LSTMCell(4, 8))
    with pytest.raises(torch_error.type) as ours:
        make(lstmlab.LSTM(4, 8), lstmlab.LSTMCell(4, 8))
    assert "expected" in str(ours.value)  # our message, not torch's
