"""The trace is honest: its gates and states are the ones that produced the outputs.

- Recomputing c_t = f*c_{t-1} + i*g and h_t = o*tanh(c_t) (then the projection) from
  the trace reproduces the trace's own states, starting from c0.
- The last layer's h is `output`; each sequence's last valid step is h_n / c_n.
- Packed input: zeros past each sequence's end, a mask, the caller's batch order, and
  the same values as running each sequence on its own.
- Shapes for batch_first, bidirectional, proj_size and unbatched input.
- A loss on the gates backpropagates; asking for the trace changes no number.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import lstmlab
from tolerances import assert_close
from variants import cases, parametrize, variant

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny tensors: see conftest

F64 = torch.float64
FIELDS = ("i", "f", "g", "o", "c", "h")
T, B, I, H = 5, 3, 4, 5


def _time_major(tensor, batch_first):
    """Trace tensor as (T, B, D, H) whatever the module's layout."""
    return tensor.transpose(0, 1) if batch_first else tensor


def _squash_cell(lstm, suffix, c):
    """tanh's argument in h = o * tanh(.): c, or LN(c) * gain + bias with layer_norm."""
    weight, bias = getattr(lstm, "ln_c_weight" + suffix, None), getattr(lstm, "ln_c_bias" + suffix, None)
    if weight is None:
        return c
    return F.layer_norm(c, c.shape[-1:], weight, bias, 1e-5)


def _assert_recomputes(lstm, trace, c0, batch_first, dtype):
    """c and h of every layer and direction follow from the trace's gates and c0.

    c0: (L*D, B, H). Reverse directions run from the last step to the first.
    """
    D = 2 if lstm.bidirectional else 1
    for layer, direction in itertools.product(range(lstm.num_layers), range(D)):
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        i, f, g, o, c, h = (_time_major(getattr(trace[layer], name), batch_first)[:, :, direction]
                            for name in FIELDS)  # each (T, B, H)
        steps = range(c.shape[0] - 1, -1, -1) if direction else range(c.shape[0])
        c_prev = c0[layer * D + direction]
        for t in steps:
            label = f"layer {layer} direction {direction} step {t}"
            assert_close(c[t], f[t] * c_prev + i[t] * g[t], dtype, f"{label}: c = f*c_prev + i*g")
            h_t = o[t] * torch.tanh(_squash_cell(lstm, suffix, c[t]))
            if lstm.proj_size:
                h_t = h_t @ getattr(lstm, "weight_hr" + suffix).T
            assert_close(h[t], h_t, dtype, f"{label}: h = o*tanh(c)")
            c_prev = c[t]


CONFIGS = cases(
    "plain",
    variant("plain", num_layers=2, bidirectional=True),
    variant("plain", num_layers=3, proj_size=2),
    variant("plain", num_layers=2, bidirectional=True, proj_size=3, batch_first=True),
    variant("peephole", bidirectional=True),
    variant("layer_norm", num_layers=2, batch_first=True),
    variant("peephole-layer_norm-coupled", proj_size=2, bidirectional=True),
    variant("weight_drop=0.3-forget_bias=1.0", num_layers=2),
)


@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=str)
@pytest.mark.parametrize("engine", ["reference", "auto"])
@parametrize("config", CONFIGS)
def test_trace_is_honest(config, engine, dtype):
    lstm = lstmlab.LSTM(I, H, dtype=dtype, engine=engine, **config).eval()
    batch_first, D = lstm.batch_first, 2 if lstm.bidirectional else 1
    P = lstm.proj_size or H
    x = torch.randn(*((B, T) if batch_first else (T, B)), I, dtype=dtype)
    rows = lstm.num_layers * D
    h0, c0 = torch.randn(rows, B, P, dtype=dtype), torch.randn(rows, B, H, dtype=dtype)
    output, (h_n, c_n), trace = lstm(x, (h0, c0), trace=True)
    assert isinstance(trace, lstmlab.Trace) and len(trace) == lstm.num_layers
    assert trace.mask is None
    for layer in trace:
        for name in FIELDS:
            width = P if name == "h" else H
            expected = (B, T, D, width) if batch_first else (T, B, D, width)
            assert tuple(getattr(layer, name).shape) == expected, name
        for gate in "ifo":
            assert bool(((getattr(layer, gate) > 0) & (getattr(layer, gate) < 1)).all()), gate
        assert bool((layer.g.abs() < 1).all())
    _assert_recomputes(lstm, trace, c0, batch_first, dtype)
    assert_close(trace[-1].h.flatten(-2), output, dtype, "last layer h == output")
    for layer, direction in itertools.product(range(lstm.num_layers), range(D)):
        last = 0 if direction else T - 1  # the reverse direction ends at step 0
        for state, final in (("h", h_n), ("c", c_n)):
            stepwise = _time_major(getattr(trace[layer], state), batch_first)[last, :, direction]
            assert_close(stepwise, final[layer * D + direction], dtype, f"{state}_n layer {layer} dir {direction}")
    # intermediate layers: layer k's h is layer k+1's input, so layer k+1 must recompute from it
    assert_close(lstm(x, (h0, c0))[0], output, dtype, "trace=True changes no output")


@pytest.mark.parametrize("config", [dict(), dict(num_layers=2, bidirectional=True, proj_size=2)], ids=str)
def test_unbatched_trace_shapes_and_values(config):
    lstm = lstmlab.LSTM(I, H, dtype=F64, **config)
    D, P = 2 if lstm.bidirectional else 1, lstm.proj_size or H
    x = torch.randn(T, I, dtype=F64)
    output, (h_n, c_n), trace = lstm(x, trace=True)
    for name in FIELDS:
        assert tuple(getattr(trace[0], name).shape) == (T, D, P if name == "h" else H), name
    assert_close(trace[-1].h.flatten(-2), output, F64, "unbatched: last layer h == output")
    batched = lstm(x.unsqueeze(1), trace=True)[2]
    for layer in range(lstm.num_layers):
        for name in FIELDS:
            assert_close(getattr(trace[layer], name), getattr(batched[layer], name)[:, 0], F64,
                         f"unbatched trace vs batch of one: layer {layer} {name}")


@pytest.mark.parametrize("batch_first", [False, True], ids=["TB", "BT"])
@pytest.mark.parametrize("engine", ["reference", "auto"])
@parametrize("config", cases(
    "plain",
    variant("plain", num_layers=2, bidirectional=True, proj_size=2),
    variant("layer_norm-peephole", bidirectional=True),
))
def test_packed_trace(config, engine, batch_first):
    lengths = [3, 5, 1, 4]
    lstm = lstmlab.LSTM(I, H, dtype=F64, batch_first=batch_first, engine=engine, **config).eval()
    D, P, longest = 2 if lstm.bidirectional else 1, lstm.proj_size or H, max(lengths)
    batch = len(lengths)
    rows = lstm.num_layers * D
    h0, c0 = torch.randn(rows, batch, P, dtype=F64), torch.randn(rows, batch, H, dtype=F64)
    padded = torch.randn(longest, batch, I, dtype=F64)
    sequence_input = padded.transpose(0, 1) if batch_first else padded
    packed = pack_padded_sequence(sequence_input, torch.tensor(lengths), batch_first=batch_first,
                                  enforce_sorted=False)
    output, (h_n, c_n), trace = lstm(packed, (h0, c0), trace=True)
    assert isinstance(output, PackedSequence)
    valid = torch.arange(longest)[:, None] < torch.tensor(lengths)[None, :]  # (T, B)
    assert trace.mask is not None and trace.mask.dtype == torch.bool
    assert torch.equal(trace.mask, valid.T if batch_first else valid)
    padded_output, _ = pad_packed_sequence(output)  # (T, B, D*P), the caller's batch order
    assert_close(_time_major(trace[-1].h, batch_first).flatten(-2), padded_output, F64,
                 "packed: last layer h == output")
    for layer in trace:
        for name in FIELDS:
            tensor = _time_major(getattr(layer, name), batch_first)
            assert tuple(tensor.shape[:3]) == (longest, batch, D), name
            assert bool((tensor[~valid] == 0).all()), f"{name}: zeros past the end"
    # each sequence alone (unbatched, its own length) gives the same trace and final state
    for b, length in enumerate(lengths):
        alone_output, (alone_h, alone_c), alone = lstm(
            padded[:length, b], (h0[:, b], c0[:, b]), trace=True)
        for k in range(lstm.num_layers):
            for name in FIELDS:
                packed_values = _time_major(getattr(trace[k], name), batch_first)[:length, b]
                assert_close(packed_values, getattr(alone[k], name), F64, f"seq {b} layer {k} {name}")
        assert_close(h_n[:, b], alone_h, F64, f"seq {b}: h_n at its last valid step")
        assert_close(c_n[:, b], alone_c, F64, f"seq {b}: c_n at its last valid step")
    for layer, direction in itertools.product(range(lstm.num_layers), range(D)):
        for b, length in enumerate(lengths):
            last = 0 if direction else length - 1
            for state, final in (("h", h_n), ("c", c_n)):
                stepwise = _time_major(getattr(trace[layer], state), batch_first)[last, b, direction]
                assert_close(stepwise, final[layer * D + direction, b], F64,
                             f"{state}_n: seq {b} layer {layer} dir {direction}")


def test_loss_on_gates_backpropagates():
    """A penalty on the forget gates alone (e.g. a regulariser) reaches weights and input."""
    lstm = lstmlab.LSTM(I, H, num_layers=2, bidirectional=True, peephole=True, dtype=F64)
    x = torch.randn(T, B, I, dtype=F64, requires_grad=True)
    _, _, trace = lstm(x, trace=True)
    loss = sum(layer.f.mean() for layer in trace) + trace[0].o.pow(2).sum()
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, param in lstm.named_parameters():
        assert param.grad is not None, name
    assert lstm.weight_ih_l1.grad.abs().sum() > 0
    assert lstm.weight_peephole_l0_reverse.grad.abs().sum() > 0
    # the gradient is the true one: compare one entry with a finite difference
    with torch.no_grad():
        eps = 1e-6
        lstm.weight_hh_l0[1, 2] += eps
        shifted = lstm(x, trace=True)[2]
        lstm.weight_hh_l0[1, 2] -= eps
        shifted_loss = sum(layer.f.mean() for layer in shifted) + shifted[0].o.pow(2).sum()
    numerical = (shifted_loss - loss.detach()) / eps
    assert abs(numerical.item() - lstm.weight_hh_l0.grad[1, 2].item()) < 1e-5


def test_trace_call_matches_plain_call_and_detaches():
    lstm = lstmlab.LSTM(I, H, num_layers=2)
    x = torch.randn(T, B, I)
    output, (h_n, c_n) = lstm(x)
    traced_output, (traced_h_n, traced_c_n), trace = lstm(x, trace=True)
    assert_close(traced_output, output, torch.float32, "output with and without trace")
    assert_close(traced_h_n, h_n, torch.float32, "h_n with and without trace")
    assert_close(traced_c_n, c_n, torch.float32, "c_n with and without trace")
    assert trace[0].f.requires_grad
    detached = trace.detach()
    assert not detached[0].f.requires_grad and torch.equal(detached[1].c, trace[1].c)


@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=str)
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("config", [dict(), dict(num_layers=2, bidirectional=True, proj_size=2)], ids=str)
@pytest.mark.parametrize("engine", ["native", "auto"])
def test_engines_give_the_same_trace_and_trace_gradients(engine, config, packed, dtype):
    """The native engine (which "auto" picks for plain LSTMs) gives the reference's trace,
    and a loss on that trace gives the reference's gradients (input, h0, c0, weights)."""
    x = torch.randn(T, B, I, dtype=dtype)
    rows = config.get("num_layers", 1) * (2 if config.get("bidirectional") else 1)
    P = config.get("proj_size") or H
    hx = (torch.randn(rows, B, P, dtype=dtype), torch.randn(rows, B, H, dtype=dtype))
    reference = lstmlab.LSTM(I, H, dtype=dtype, engine="reference", **config)
    lengths = torch.tensor([5, 2, 4])

    def run(module):
        x_leaf = x.clone().requires_grad_(True)
        hx_leaf = tuple(t.clone().requires_grad_(True) for t in hx)
        inputs = pack_padded_sequence(x_leaf, lengths, enforce_sorted=False) if packed else x_leaf
        _, _, trace = module(inputs, hx_leaf, trace=True)
        weights = torch.Generator().manual_seed(3)
        loss = sum((tensor * torch.randn(tensor.shape, generator=weights, dtype=dtype)).sum()
                   for layer in trace for _, tensor in layer.items())
        names, params = zip(*module.named_parameters())
        grads = torch.autograd.grad(loss, [x_leaf, *hx_leaf, *params])
        return trace, dict(zip(["input", "h0", "c0", *names], grads))

    expected_trace, expected_grads = run(reference)
    module = lstmlab.LSTM(I, H, dtype=dtype, engine=engine, **config)
    module.load_state_dict(reference.state_dict())
    trace, grads = run(module)
    for k in range(len(expected_trace)):
        for name in FIELDS:
            assert_close(getattr(trace[k], name), getattr(expected_trace[k], name), dtype,
                         f"{engine}: trace layer {k} {name}")
    for name, expected in expected_grads.items():
        assert_close(grads[name], expected, dtype, f"{engine}: grad through the trace, {name}")
