"""Step by step equals the sequence (Flax's numerical-equivalence habit).

Driving `lstmlab.LSTMCell` one step at a time — stacked for several layers, run backwards
for the reverse direction, stopped at each sequence's own length for packed input — gives
the sequence module's output, h_n, c_n and trace, for every variant (evaluation mode, so
zoneout and weight drop are deterministic). `LSTM.step` streaming equals the sequence too.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import lstmlab
from tolerances import assert_close
from variants import cases, cell_options, parametrize, variant

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny tensors: see conftest

F64 = torch.float64
FIELDS = ("i", "f", "g", "o", "c", "h")
T, B, I, H = 5, 3, 4, 3

# each option alone, and everything that changes the equations together
STEP_CASES = cases(
    "plain", "peephole", "layer_norm", "coupled", "zoneout=0.3", "zoneout=0.1,0.5", "weight_drop=0.4",
    "forget_bias=1.0", "chrono_init=20", "peephole-layer_norm-coupled-zoneout=0.2,0.3-weight_drop=0.2",
)


def _cell_for(lstm, layer, direction, options):
    """An LSTMCell holding the weights of one layer and direction of `lstm`."""
    suffix = f"_l{layer}" + ("_reverse" if direction else "")
    in_features = lstm.input_size if layer == 0 else lstm.hidden_size * (2 if lstm.bidirectional else 1)
    cell = lstmlab.LSTMCell(in_features, lstm.hidden_size, bias=lstm.bias, dtype=F64, **cell_options(options))
    state = {name.removesuffix(suffix): value for name, value in lstm.state_dict().items()
             if name.endswith(suffix)}
    cell.load_state_dict(state)
    return cell.eval()


def _run_cells(lstm, options, x, h0, c0):
    """Stacked cells over x (T, B, I) from (L*D, B, H) states, in plain Python loops.

    Returns output (T, B, D*H), h_n, c_n (L*D, B, H) and per-layer traces
    {name: (T, B, D, H)}.
    """
    D = 2 if lstm.bidirectional else 1
    layer_input, finals_h, finals_c, traces = x, [], [], []
    for layer in range(lstm.num_layers):
        directions = []
        for direction in range(D):
            cell = _cell_for(lstm, layer, direction, options)
            h, c = h0[layer * D + direction], c0[layer * D + direction]
            steps = reversed(range(len(x))) if direction else range(len(x))
            per_step = {}
            for t in steps:
                (h, c), step_trace = cell(layer_input[t], (h, c), trace=True)
                per_step[t] = step_trace
            finals_h.append(h), finals_c.append(c)
            directions.append({name: torch.stack([getattr(per_step[t], name) for t in range(len(x))])
                               for name in FIELDS})
        traces.append({name: torch.stack([d[name] for d in directions], 2) for name in FIELDS})
        layer_input = traces[-1]["h"].flatten(-2)
    return layer_input, torch.stack(finals_h), torch.stack(finals_c), traces


@pytest.mark.parametrize("engine", ["reference", "auto"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@parametrize("options", STEP_CASES)
def test_cell_steps_equal_the_sequence(options, bidirectional, engine):
    lstm = lstmlab.LSTM(I, H, num_layers=2, bidirectional=bidirectional, dtype=F64, engine=engine,
                        **options).eval()
    D = 2 if bidirectional else 1
    x = torch.randn(T, B, I, dtype=F64)
    h0, c0 = torch.randn(2 * D, B, H, dtype=F64), torch.randn(2 * D, B, H, dtype=F64)
    output, (h_n, c_n), trace = lstm(x, (h0, c0), trace=True)
    cell_output, cell_h_n, cell_c_n, cell_traces = _run_cells(lstm, options, x, h0, c0)
    assert_close(output, cell_output, F64, "output")
    assert_close(h_n, cell_h_n, F64, "h_n")
    assert_close(c_n, cell_c_n, F64, "c_n")
    for layer in range(2):
        for name in FIELDS:
            assert_close(getattr(trace[layer], name), cell_traces[layer][name], F64,
                         f"trace layer {layer} {name}")


@pytest.mark.parametrize("engine", ["reference", "auto"])
@parametrize("options", cases("plain", "layer_norm-peephole", "peephole-layer_norm-zoneout=0.2"))
def test_cell_steps_equal_the_packed_sequence(options, engine):
    """Each sequence stepped over its own length (backwards for the reverse direction)."""
    lengths = [2, 5, 3, 1]
    lstm = lstmlab.LSTM(I, H, num_layers=2, bidirectional=True, dtype=F64, engine=engine,
                        **options).eval()
    batch, longest = len(lengths), max(lengths)
    padded = torch.randn(longest, batch, I, dtype=F64)
    h0, c0 = torch.randn(4, batch, H, dtype=F64), torch.randn(4, batch, H, dtype=F64)
    packed = pack_padded_sequence(padded, torch.tensor(lengths), enforce_sorted=False)
    output, (h_n, c_n) = lstm(packed, (h0, c0))
    padded_output, output_lengths = pad_packed_sequence(output)
    assert output_lengths.tolist() == lengths
    for b, length in enumerate(lengths):
        cell_output, cell_h_n, cell_c_n, _ = _run_cells(
            lstm, options, padded[:length, b:b + 1], h0[:, b:b + 1], c0[:, b:b + 1])
        assert_close(padded_output[:length, b], cell_output[:, 0], F64, f"sequence {b} output")
        assert bool((padded_output[length:, b] == 0).all()), "padding of the packed output"
        assert_close(h_n[:, b], cell_h_n[:, 0], F64, f"sequence {b} h_n")
        assert_close(c_n[:, b], cell_c_n[:, 0], F64, f"sequence {b} c_n")


@parametrize("options", cases("plain", "peephole-coupled"))
def test_cell_steps_on_unbatched_input(options):
    cell = lstmlab.LSTMCell(I, H, dtype=F64, **options).eval()
    x, h, c = torch.randn(I, dtype=F64), torch.randn(H, dtype=F64), torch.randn(H, dtype=F64)
    h1, c1 = cell(x, (h, c))
    batched_h, batched_c = cell(x[None], (h[None], c[None]))
    assert h1.shape == (H,) and c1.shape == (H,)
    assert_close(h1, batched_h[0], F64, "unbatched h")
    assert_close(c1, batched_c[0], F64, "unbatched c")


# ---------------------------------------------------------------- LSTM.step streaming

@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@parametrize("config", cases(
    "plain",
    variant("plain", num_layers=3, proj_size=2),
    variant("plain", num_layers=2, batch_first=True),
    variant("peephole-layer_norm-coupled-zoneout=0.3", num_layers=2, proj_size=2),
    variant("weight_drop=0.5", dropout=0.5, num_layers=2),
))
def test_streaming_step_equals_the_sequence(config, batched):
    lstm = lstmlab.LSTM(I, H + 1, dtype=F64, **config).eval()
    layers, P = lstm.num_layers, lstm.proj_size or H + 1
    batch_dims = (B,) if batched else ()
    x = torch.randn(T, *batch_dims, I, dtype=F64)  # time-major for the loop below
    sequence_input = x.transpose(0, 1) if batched and lstm.batch_first else x
    h0 = torch.randn(layers, *batch_dims, P, dtype=F64)
    c0 = torch.randn(layers, *batch_dims, H + 1, dtype=F64)
    output, (h_n, c_n) = lstm(sequence_input, (h0, c0))
    if batched and lstm.batch_first:
        output = output.transpose(0, 1)
    state, streamed = (h0, c0), []
    for x_t in x:
        y_t, state = lstm.step(x_t, state)
        assert y_t.shape == (*batch_dims, P)
        assert state[0].shape == h0.shape and state[1].shape == c0.shape
        streamed.append(y_t)
    assert_close(torch.stack(streamed), output, F64, "streamed outputs")
    assert_close(state[0], h_n, F64, "streamed h_n")
    assert_close(state[1], c_n, F64, "streamed c_n")


def test_streaming_step_starts_from_zeros_and_carries_gradients():
    lstm = lstmlab.LSTM(I, H, num_layers=2, peephole=True, dtype=F64)
    x = torch.randn(T, B, I, dtype=F64, requires_grad=True)
    output, _ = lstm(x)
    sequence_grads = torch.autograd.grad(output.pow(2).sum(), [x, *lstm.parameters()])
    state, streamed = None, []
    for x_t in x:
        y_t, state = lstm.step(x_t, state)
        streamed.append(y_t)
    assert_close(torch.stack(streamed), output, F64, "streamed from zero state")
    step_grads = torch.autograd.grad(torch.stack(streamed).pow(2).sum(), [x, *lstm.parameters()])
    for (name, _), expected, got in zip([("input", None), *lstm.named_parameters()],
                                        sequence_grads, step_grads):
        assert_close(got, expected, F64, f"grad {name}: streaming vs sequence")


def test_streaming_step_refuses_bidirectional():
    lstm = lstmlab.LSTM(I, H, bidirectional=True)
    with pytest.raises(ValueError, match="bidirectional"):
        lstm.step(torch.randn(B, I))
