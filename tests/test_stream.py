"""`lstmlab.Stream`: one step per call equals the sequence call; errors are clear."""

from __future__ import annotations

import pytest
import torch

import lstmlab
from tolerances import assert_close


@pytest.mark.parametrize("options", [dict(), dict(num_layers=2, proj_size=3), dict(layer_norm=True, peephole=True),
                                     dict(coupled=True, num_layers=3)],
                         ids=["plain", "2-layer-proj", "layer_norm-peephole", "coupled-3-layer"])
def test_stream_equals_sequence(options):
    lstm = lstmlab.LSTM(5, 7, **options).double().eval()
    x = torch.randn(8, 3, 5, dtype=torch.double)
    h0 = torch.randn(lstm.num_layers, 3, lstm.proj_size or 7, dtype=torch.double)
    c0 = torch.randn(lstm.num_layers, 3, 7, dtype=torch.double)
    output, (h_n, c_n) = lstm(x, (h0, c0))
    stream = lstmlab.Stream(lstm, batch_size=3, state=(h0, c0))
    steps = torch.stack([stream(x_t) for x_t in x])
    assert_close(steps, output, torch.float64, "outputs")
    assert_close(stream.state[0], h_n, torch.float64, "h_n")
    assert_close(stream.state[1], c_n, torch.float64, "c_n")


def test_stream_unbatched_reset_and_weight_changes():
    lstm = lstmlab.LSTM(4, 6).double().eval()
    x = torch.randn(5, 4, dtype=torch.double)
    stream = lstmlab.Stream(lstm, batch_size=None)
    first = torch.stack([stream(x_t) for x_t in x])
    assert_close(first, lstm(x)[0], torch.float64, "unbatched outputs")
    assert stream.state[0].shape == (1, 6)
    with torch.no_grad():
        lstm.weight_hh_l0.mul_(0.5)  # an optimiser step would do the same: the stream re-packs
    stream.reset()
    again = torch.stack([stream(x_t) for x_t in x])
    assert_close(again, lstm(x)[0], torch.float64, "outputs after a weight change")
    assert not torch.allclose(again, first)


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
    with pytest.raises(TypeError, match="expected dtype torch.float32"):
        stream(torch.randn(2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"state h: expected shape \(1, 2, 6\)"):
        stream.reset((torch.zeros(1, 3, 6), torch.zeros(1, 3, 6)))
