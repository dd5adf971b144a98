"""lstmlab.LSTM / LSTMCell against torch.nn.LSTM / LSTMCell: the drop-in contract.

The same weights drive both modules (via load_state_dict); the outputs, final states and
every gradient (input, h0, c0, every parameter) must agree — to ~1e-10 in float64 and
~1e-5 in float32 (tests/tolerances.py). Engines: "reference" (the pure-PyTorch time loop,
the specification) and "auto" (which runs "native" for plain configurations), each
against torch and against each other.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import lstmlab
from tolerances import assert_close

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny tensors: see conftest

DTYPES = [torch.float64, torch.float32]
ENGINES = ["reference", "auto"]
T, B, I, H = 5, 3, 4, 5  # time steps, batch, input features, hidden units


def _make_pair(dtype, engine, **config):
    """(torch.nn.LSTM, lstmlab.LSTM) with identical weights."""
    theirs = torch.nn.LSTM(**config, dtype=dtype)
    ours = lstmlab.LSTM(**config, dtype=dtype, engine=engine)
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


def _loss_weights(tensors, dtype):
    """Fixed random weights so the loss sends a different gradient into every element."""
    generator = torch.Generator().manual_seed(1234)
    return [torch.randn(t.shape, generator=generator, dtype=dtype).to(t.device) for t in tensors]


def _forward_backward(module, x, hx, dtype):
    """Run `module(x, hx)`; return outputs and the gradients of a weighted loss.

    Returns (output, h_n, c_n, grads) where grads maps "input", "h0", "c0" and every
    parameter name to its gradient. `x` may be a tensor or a PackedSequence.
    """
    if isinstance(x, PackedSequence):
        data = x.data.detach().clone().requires_grad_(True)
        x_leaf = PackedSequence(data, x.batch_sizes, x.sorted_indices, x.unsorted_indices)
    else:
        data = x_leaf = x.detach().clone().requires_grad_(True)
    hx_leaf = None if hx is None else tuple(t.detach().clone().requires_grad_(True) for t in hx)
    output, (h_n, c_n) = module(x_leaf, hx_leaf)
    output_data = output.data if isinstance(output, PackedSequence) else output
    outputs = [output_data, h_n, c_n]
    loss = sum((t * w).sum() for t, w in zip(outputs, _loss_weights(outputs, dtype)))
    names, params = zip(*module.named_parameters())
    wrt = [data, *(hx_leaf or ()), *params]
    grads = torch.autograd.grad(loss, wrt)
    grad_names = ["input", *(["h0", "c0"] if hx_leaf else []), *names]
    return output, h_n, c_n, dict(zip(grad_names, grads))


def _assert_same_run(ours_run, theirs_run, dtype, label):
    output, h_n, c_n, grads = ours_run
    expected_output, expected_h_n, expected_c_n, expected_grads = theirs_run
    if isinstance(expected_output, PackedSequence):
        assert isinstance(output, PackedSequence), f"{label}: expected a PackedSequence output"
        assert torch.equal(output.batch_sizes, expected_output.batch_sizes)
        for field in ("sorted_indices", "unsorted_indices"):
            got, want = getattr(output, field), getattr(expected_output, field)
            assert (got is None) == (want is None), f"{label}: {field} {got} vs {want}"
            if want is not None:
                assert torch.equal(got, want), f"{label}: {field} {got} vs {want}"
        output, expected_output = output.data, expected_output.data
    assert output.shape == expected_output.shape, f"{label}: output shape"
    assert h_n.shape == expected_h_n.shape and c_n.shape == expected_c_n.shape
    assert output.dtype == dtype and h_n.dtype == dtype and c_n.dtype == dtype
    assert_close(output, expected_output, dtype, f"{label}: output")
    assert_close(h_n, expected_h_n, dtype, f"{label}: h_n")
    assert_close(c_n, expected_c_n, dtype, f"{label}: c_n")
    assert grads.keys() == expected_grads.keys(), f"{label}: gradient names"
    for name, expected in expected_grads.items():
        assert_close(grads[name], expected, dtype, f"{label}: grad {name}")


def _random_state(num_layers, bidirectional, batch, hidden_size, proj_size, dtype):
    """(h0, c0) shaped like torch.nn.LSTM's hx; `batch=None` gives the unbatched shape."""
    directions = 2 if bidirectional else 1
    batch_dims = () if batch is None else (batch,)
    h0 = torch.randn(num_layers * directions, *batch_dims, proj_size or hidden_size, dtype=dtype)
    c0 = torch.randn(num_layers * directions, *batch_dims, hidden_size, dtype=dtype)
    return h0, c0


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("with_hx", [False, True], ids=["no_hx", "hx"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["TBI", "BTI"])
@pytest.mark.parametrize(
    "num_layers,bidirectional,proj_size",
    list(itertools.product([1, 2, 3], [False, True], [0, 3])),
)
def test_batched_parity(num_layers, bidirectional, proj_size, batch_first, with_hx, engine, dtype):
    config = dict(input_size=I, hidden_size=H, num_layers=num_layers, batch_first=batch_first,
                  bidirectional=bidirectional, proj_size=proj_size)
    theirs, ours = _make_pair(dtype, engine, **config)
    x = torch.randn(B, T, I, dtype=dtype) if batch_first else torch.randn(T, B, I, dtype=dtype)
    hx = _random_state(num_layers, bidirectional, B, H, proj_size, dtype) if with_hx else None
    _assert_same_run(_forward_backward(ours, x, hx, dtype),
                     _forward_backward(theirs, x, hx, dtype), dtype, f"{engine} {config}")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True)])
def test_no_bias_parity(num_layers, bidirectional, engine, dtype):
    config = dict(input_size=I, hidden_size=H, num_layers=num_layers, bias=False,
                  bidirectional=bidirectional)
    theirs, ours = _make_pair(dtype, engine, **config)
    x = torch.randn(T, B, I, dtype=dtype)
    hx = _random_state(num_layers, bidirectional, B, H, 0, dtype)
    _assert_same_run(_forward_backward(ours, x, hx, dtype),
                     _forward_backward(theirs, x, hx, dtype), dtype, f"{engine} {config}")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("with_hx", [False, True], ids=["no_hx", "hx"])
@pytest.mark.parametrize(
    "num_layers,bidirectional,proj_size", [(1, False, 0), (2, True, 0), (2, False, 3), (1, True, 2)]
)
def test_unbatched_parity(num_layers, bidirectional, proj_size, with_hx, engine, dtype):
    config = dict(input_size=I, hidden_size=H, num_layers=num_layers,
                  bidirectional=bidirectional, proj_size=proj_size)
    theirs, ours = _make_pair(dtype, engine, **config)
    x = torch.randn(T, I, dtype=dtype)
    hx = _random_state(num_layers, bidirectional, None, H, proj_size, dtype) if with_hx else None
    ours_run = _forward_backward(ours, x, hx, dtype)
    assert ours_run[0].shape == (T, (2 if bidirectional else 1) * (proj_size or H))
    _assert_same_run(ours_run, _forward_backward(theirs, x, hx, dtype), dtype, f"{engine} {config}")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("with_hx", [False, True], ids=["no_hx", "hx"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["TBI", "BTI"])
@pytest.mark.parametrize("lengths,enforce_sorted", [
    ([5, 4, 4, 2, 1], True),   # sorted, with a repeated length
    ([2, 5, 1, 4, 4], False),  # unsorted: exercises sorted/unsorted_indices
    ([3, 3, 3], True),         # all the same length
], ids=["sorted", "unsorted", "equal"])
@pytest.mark.parametrize(
    "num_layers,bidirectional,proj_size", [(1, False, 0), (2, True, 0), (1, True, 2), (3, False, 3)]
)
def test_packed_parity(num_layers, bidirectional, proj_size, lengths, enforce_sorted,
                       batch_first, with_hx, engine, dtype):
    config = dict(input_size=I, hidden_size=H, num_layers=num_layers, batch_first=batch_first,
                  bidirectional=bidirectional, proj_size=proj_size)
    theirs, ours = _make_pair(dtype, engine, **config)
    batch, longest = len(lengths), max(lengths)
    shape = (batch, longest, I) if batch_first else (longest, batch, I)
    padded = torch.randn(*shape, dtype=dtype)
    packed = pack_padded_sequence(padded, torch.tensor(lengths), batch_first=batch_first,
                                  enforce_sorted=enforce_sorted)
    hx = _random_state(num_layers, bidirectional, batch, H, proj_size, dtype) if with_hx else None
    _assert_same_run(_forward_backward(ours, packed, hx, dtype),
                     _forward_backward(theirs, packed, hx, dtype), dtype,
                     f"{engine} {config} lengths={lengths}")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("num_layers,bidirectional,proj_size", [(1, False, 0), (2, True, 3)])
def test_reference_and_native_engines_agree(num_layers, bidirectional, proj_size, dtype):
    config = dict(input_size=I, hidden_size=H, num_layers=num_layers,
                  bidirectional=bidirectional, proj_size=proj_size, dtype=dtype)
    reference = lstmlab.LSTM(**config, engine="reference")
    native = lstmlab.LSTM(**config, engine="native")
    native.load_state_dict(reference.state_dict())
    x = torch.randn(T, B, I, dtype=dtype)
    hx = _random_state(num_layers, bidirectional, B, H, proj_size, dtype)
    _assert_same_run(_forward_backward(native, x, hx, dtype),
                     _forward_backward(reference, x, hx, dtype), dtype, "native vs reference")


@pytest.mark.parametrize("engine", ENGINES)
def test_eval_mode_with_dropout_between_layers_matches_torch(engine):
    """Between-layer dropout is inactive in eval mode, exactly as in torch.nn.LSTM."""
    dtype = torch.float64
    theirs, ours = _make_pair(dtype, engine, input_size=I, hidden_size=H, num_layers=3, dropout=0.5)
    theirs.eval(), ours.eval()
    x = torch.randn(T, B, I, dtype=dtype)
    _assert_same_run(_forward_backward(ours, x, None, dtype),
                     _forward_backward(theirs, x, None, dtype), dtype, "eval with dropout")


# ---------------------------------------------------------------- LSTMCell

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("with_hx", [False, True], ids=["no_hx", "hx"])
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
def test_cell_parity(batched, with_hx, bias, dtype):
    theirs = torch.nn.LSTMCell(I, H, bias=bias, dtype=dtype)
    ours = lstmlab.LSTMCell(I, H, bias=bias, dtype=dtype)
    ours.load_state_dict(theirs.state_dict())
    batch_dims = (B,) if batched else ()
    x = torch.randn(*batch_dims, I, dtype=dtype)
    hx = (torch.randn(*batch_dims, H, dtype=dtype), torch.randn(*batch_dims, H, dtype=dtype))

    def run(module):
        x_leaf = x.clone().requires_grad_(True)
        hx_leaf = tuple(t.clone().requires_grad_(True) for t in hx) if with_hx else None
        h, c = module(x_leaf, hx_leaf)
        loss = sum((t * w).sum() for t, w in zip([h, c], _loss_weights([h, c], dtype)))
        names, params = zip(*module.named_parameters())
        grads = torch.autograd.grad(loss, [x_leaf, *(hx_leaf or ()), *params])
        return h, c, dict(zip(["input", *(["h0", "c0"] if with_hx else []), *names], grads))

    h, c, grads = run(ours)
    expected_h, expected_c, expected_grads = run(theirs)
    assert h.shape == expected_h.shape == (*batch_dims, H)
    assert_close(h, expected_h, dtype, "cell h")
    assert_close(c, expected_c, dtype, "cell c")
    assert grads.keys() == expected_grads.keys()
    for name, expected in expected_grads.items():
        assert_close(grads[name], expected, dtype, f"cell grad {name}")


# ---------------------------------------------------------------- state_dict and initialisation

STATE_DICT_CONFIGS = [
    dict(num_layers=1),
    dict(num_layers=2, bidirectional=True),
    dict(num_layers=2, proj_size=3),
    dict(num_layers=3, bidirectional=True, proj_size=2, bias=False),
]


@pytest.mark.parametrize("extra", STATE_DICT_CONFIGS, ids=str)
def test_state_dict_keys_shapes_and_loading_both_ways(extra):
    dtype = torch.float64
    theirs = torch.nn.LSTM(I, H, **extra, dtype=dtype)
    ours = lstmlab.LSTM(I, H, **extra, dtype=dtype)
    their_state, our_state = theirs.state_dict(), ours.state_dict()
    assert list(our_state) == list(their_state), "state_dict keys (and order) of the plain config"
    for key, value in their_state.items():
        assert our_state[key].shape == value.shape, f"{key}: {our_state[key].shape} vs {value.shape}"
        assert our_state[key].dtype == value.dtype
    x = torch.randn(T, B, I, dtype=dtype)
    # torch -> lstmlab
    ours.load_state_dict(their_state)
    assert_close(ours(x)[0], theirs(x)[0], dtype, "output after loading torch's weights")
    # lstmlab -> torch (a fresh torch module, so nothing is left over from above)
    fresh_ours = lstmlab.LSTM(I, H, **extra, dtype=dtype)
    fresh_theirs = torch.nn.LSTM(I, H, **extra, dtype=dtype)
    fresh_theirs.load_state_dict(fresh_ours.state_dict())
    assert_close(fresh_theirs(x)[0], fresh_ours(x)[0], dtype, "output after torch loads ours")


def test_cell_state_dict_matches_torch():
    theirs, ours = torch.nn.LSTMCell(I, H), lstmlab.LSTMCell(I, H)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()}
    theirs.load_state_dict(ours.state_dict())


@pytest.mark.parametrize("module", ["LSTM", "LSTMCell"])
def test_default_initialisation_matches_torch(module):
    """Every parameter ~ U(-1/sqrt(H), 1/sqrt(H)), as torch.nn.LSTM initialises them."""
    hidden_size = 64
    if module == "LSTM":
        ours = lstmlab.LSTM(8, hidden_size, num_layers=2, bidirectional=True, proj_size=16)
    else:
        ours = lstmlab.LSTMCell(8, hidden_size)
    bound = 1 / math.sqrt(hidden_size)
    for name, param in ours.named_parameters():
        assert param.abs().max() <= bound, f"{name} exceeds U(-{bound}, {bound})"
        # a uniform on [-k, k] has std k/sqrt(3); a constant or a narrower init would not
        assert abs(param.std().item() - bound / math.sqrt(3)) < 0.15 * bound, name
        assert abs(param.mean().item()) < 0.1 * bound, name


@pytest.mark.parametrize("extra", STATE_DICT_CONFIGS, ids=str)
def test_same_seed_gives_torchs_initial_weights(extra):
    """A script that seeds torch and swaps torch.nn.LSTM for lstmlab.LSTM starts from the
    very same weights (same init, same draw order)."""
    torch.manual_seed(42)
    theirs = torch.nn.LSTM(I, H, **extra)
    torch.manual_seed(42)
    ours = lstmlab.LSTM(I, H, **extra)
    for (name, expected), (our_name, value) in zip(theirs.state_dict().items(), ours.state_dict().items()):
        assert name == our_name and torch.equal(value, expected), name
    torch.manual_seed(42)
    their_cell = torch.nn.LSTMCell(I, H)
    torch.manual_seed(42)
    our_cell = lstmlab.LSTMCell(I, H)
    for name, expected in their_cell.state_dict().items():
        assert torch.equal(our_cell.state_dict()[name], expected), f"cell {name}"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_dtype_and_device_arguments(dtype):
    ours = lstmlab.LSTM(I, H, num_layers=2, dtype=dtype, device="cpu")
    for name, param in ours.named_parameters():
        assert param.dtype == dtype and param.device.type == "cpu", name
    cell = lstmlab.LSTMCell(I, H, dtype=dtype)
    assert all(p.dtype == dtype for p in cell.parameters())


def test_constructor_signature_matches_torch():
    """Positional arguments mean what they mean in torch.nn.LSTM."""
    ours = lstmlab.LSTM(I, H, 2, False, True, 0.0, True, 3)
    theirs = torch.nn.LSTM(I, H, 2, False, True, 0.0, True, 3)
    for attribute in ("input_size", "hidden_size", "num_layers", "bias", "batch_first",
                      "dropout", "bidirectional", "proj_size"):
        assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("engine", ENGINES)
def test_cuda_parity(engine, dtype):
    """On a GPU, lstmlab and torch.nn.LSTM agree there too (packed, bidirectional, proj)."""
    config = dict(input_size=I, hidden_size=H, num_layers=2, bidirectional=True, proj_size=2,
                  device="cuda")
    theirs = torch.nn.LSTM(**config, dtype=dtype)
    ours = lstmlab.LSTM(**config, dtype=dtype, engine=engine)
    ours.load_state_dict(theirs.state_dict())
    padded = torch.randn(T, B, I, dtype=dtype, device="cuda")
    packed = pack_padded_sequence(padded, torch.tensor([2, 5, 3]), enforce_sorted=False)
    hx = tuple(t.cuda() for t in _random_state(2, True, B, H, 2, dtype))
    # cuDNN's RNN runs float32 as TF32 by default (10-bit mantissa products, ~1e-4 errors);
    # the comparison is of full-precision float32 on both sides.
    with torch.backends.cudnn.flags(allow_tf32=False):
        _assert_same_run(_forward_backward(ours, packed, hx, dtype),
                         _forward_backward(theirs, packed, hx, dtype), dtype, f"cuda {engine}")
