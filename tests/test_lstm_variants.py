"""The variants: their equations, gradients, initialisation rules and option checks.

- Each variant's output equals the equations written out independently here (float64).
- `torch.autograd.gradcheck` (float64) for each variant and for combinations, with
  respect to the input, h0, c0 and every parameter, and through the trace.
- Initialisation: forget_bias, chrono_init, coupled's unused rows, LN gains, peepholes.
- Training vs evaluation: zoneout, weight drop (DropConnect), dropout between layers.
- Options that cannot work together, or values out of range, fail at construction.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence

import lstmlab
from tolerances import GRADCHECK, assert_close, tolerance
from variants import cases, parametrize, select, variant

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny tensors: see conftest

F64 = torch.float64
LN_EPS = 1e-5


# ---------------------------------------------------------------- the equations, written out

def _layer_norm(v):
    """LN over the last dim, no affine (Ba et al. 2016), eps 1e-5."""
    mean = v.mean(-1, keepdim=True)
    variance = ((v - mean) ** 2).mean(-1, keepdim=True)
    return (v - mean) / torch.sqrt(variance + LN_EPS)


def _normalize_preactivation(z, coupled):
    """LN of a (B, 4H) pre-activation. With coupled, the unused f slice is left out of the
    statistics (lstmlab's documented choice, so unused rows cannot leak in)."""
    if not coupled:
        return _layer_norm(z)
    z_i, z_f, z_g, z_o = z.chunk(4, -1)
    n_i, n_g, n_o = _layer_norm(torch.cat([z_i, z_g, z_o], -1)).chunk(3, -1)
    return torch.cat([n_i, torch.zeros_like(z_f), n_g, n_o], -1)


def _spec_layer(module, suffix, x, h, c, *, peephole=False, layer_norm=False, coupled=False,
                zoneout=(0.0, 0.0)):
    """One unidirectional layer in evaluation mode, straight from the equations.

    x: (T, B, I); h: (B, P); c: (B, H). Returns outputs (T, B, P) and the final (h, c).
    """
    p = lambda name: getattr(module, name + suffix, None)  # noqa: E731
    zoneout_c, zoneout_h = zoneout
    outputs = []
    for x_t in x:
        z_x, z_h = x_t @ p("weight_ih").T, h @ p("weight_hh").T  # (B, 4H) each
        if layer_norm:
            z_x = _normalize_preactivation(z_x, coupled) * p("ln_ih_weight")
            z_h = _normalize_preactivation(z_h, coupled) * p("ln_hh_weight")
        z = z_x + z_h
        if p("bias_ih") is not None:
            z = z + p("bias_ih") + p("bias_hh")
        z_i, z_f, z_g, z_o = z.chunk(4, -1)
        if peephole:
            p_i, p_f, p_o = p("weight_peephole").chunk(3)
            z_i, z_f = z_i + p_i * c, z_f + p_f * c  # i and f see c_{t-1}
        i = torch.sigmoid(z_i)
        f = 1 - i if coupled else torch.sigmoid(z_f)
        c_new = f * c + i * torch.tanh(z_g)
        if peephole:
            z_o = z_o + p_o * c_new  # o sees c_t
        squashed = c_new
        if layer_norm:
            squashed = _layer_norm(c_new) * p("ln_c_weight") + p("ln_c_bias")
        h_new = torch.sigmoid(z_o) * torch.tanh(squashed)
        if p("weight_hr") is not None:
            h_new = h_new @ p("weight_hr").T
        # zoneout in evaluation: the expectation of keeping the old state with prob. z
        c = zoneout_c * c + (1 - zoneout_c) * c_new
        h = zoneout_h * h + (1 - zoneout_h) * h_new
        outputs.append(h)
    return torch.stack(outputs), (h, c)


# the options that change the equations (those `_spec_layer` writes out), alone and together
SPEC_CASES = cases(
    "peephole", "layer_norm", "coupled", "zoneout=0.3", "zoneout=0.2,0.6", "layer_norm-peephole",
    "layer_norm-coupled", "peephole-coupled-zoneout=0.25", "peephole-layer_norm-coupled-zoneout=0.1,0.4",
)


ENGINES = ["reference", "auto"]  # the specification, and whatever engine "auto" picks


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("proj_size", [0, 2], ids=["no_proj", "proj"])
@parametrize("options", SPEC_CASES)
def test_variant_matches_its_equations(options, proj_size, engine):
    """Two stacked layers (eval mode) against the equations, layer by layer."""
    T, B, I, H = 4, 3, 3, 4
    lstm = lstmlab.LSTM(I, H, num_layers=2, proj_size=proj_size, dtype=F64, engine=engine,
                        **options).eval()
    with torch.no_grad():  # break the symmetry of the init (LN gains 1, coupled f rows 0)
        for name, param in lstm.named_parameters():
            if name.startswith("ln_"):
                param.add_(0.3 * torch.randn_like(param))
    P = proj_size or H
    x = torch.randn(T, B, I, dtype=F64)
    h0, c0 = torch.randn(2, B, P, dtype=F64), torch.randn(2, B, H, dtype=F64)
    output, (h_n, c_n) = lstm(x, (h0, c0))
    spec_options = {k: v for k, v in options.items() if k != "zoneout"}
    zoneout = options.get("zoneout", 0.0)
    spec_options["zoneout"] = zoneout if isinstance(zoneout, tuple) else (zoneout, zoneout)
    layer_input = x
    for layer in range(2):
        layer_input, (h, c) = _spec_layer(lstm, f"_l{layer}", layer_input, h0[layer], c0[layer],
                                          **spec_options)
        assert_close(h_n[layer], h, F64, f"h_n layer {layer}")
        assert_close(c_n[layer], c, F64, f"c_n layer {layer}")
    assert_close(output, layer_input, F64, "output")


@pytest.mark.parametrize("engine", ENGINES)
def test_bidirectional_reverse_direction_runs_backwards_in_time(engine):
    T, B, I, H = 4, 2, 3, 3
    options = dict(peephole=True, layer_norm=True)
    lstm = lstmlab.LSTM(I, H, bidirectional=True, dtype=F64, engine=engine, **options)
    x = torch.randn(T, B, I, dtype=F64)
    h0, c0 = torch.randn(2, B, H, dtype=F64), torch.randn(2, B, H, dtype=F64)
    output, (h_n, c_n) = lstm(x, (h0, c0))
    forward, (h_f, _) = _spec_layer(lstm, "_l0", x, h0[0], c0[0], **options)
    backward, (h_b, c_b) = _spec_layer(lstm, "_l0_reverse", x.flip(0), h0[1], c0[1], **options)
    assert_close(output, torch.cat([forward, backward.flip(0)], -1), F64, "bidirectional output")
    assert_close(h_n[1], h_b, F64, "reverse h_n")
    assert_close(c_n[1], c_b, F64, "reverse c_n")


# ---------------------------------------------------------------- gradcheck

def _gradcheck(module, x, hx, *, trace=False, seed=None):
    """gradcheck of module(x, hx) w.r.t. x, h0, c0 and every parameter (float64).

    With `seed`, the generator is reseeded before every evaluation, so the training-mode
    masks (zoneout, weight drop, dropout) are the same in every finite difference.
    Returns the outputs, flattened into one tuple of tensors.
    """
    names, values = zip(*module.named_parameters())
    values = [v.detach().clone().requires_grad_(True) for v in values]

    def function(x, h0, c0, *params):
        if seed is not None:
            torch.manual_seed(seed)
        result = functional_call(module, dict(zip(names, params)), (x, (h0, c0)), dict(trace=trace))
        output, (h_n, c_n) = result[:2]
        flat = [output, h_n, c_n]
        if trace:
            flat += [tensor for layer in result[2] for _, tensor in layer.items()]
        return tuple(flat)

    inputs = (x.requires_grad_(True), *(t.requires_grad_(True) for t in hx), *values)
    assert torch.autograd.gradcheck(function, inputs, **GRADCHECK)


# each option alone, then combinations with structure (H = 2, so proj_size 1)
GRADCHECK_CASES = cases(
    "peephole", "layer_norm", "coupled", "zoneout=0.3", "zoneout=0.0,0.5", "weight_drop=0.4",
    "forget_bias=1.0", "chrono_init=8",
    variant("layer_norm-peephole", bidirectional=True, proj_size=1),
    variant("peephole-layer_norm-coupled", num_layers=2),
    variant("peephole-zoneout=0.2-weight_drop=0.3", bidirectional=True),
    variant("peephole-layer_norm-coupled-zoneout=0.3,0.1-weight_drop=0.2",
            num_layers=2, bidirectional=True, proj_size=1, dropout=0.3),
)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@parametrize("options", GRADCHECK_CASES)
def test_gradcheck_variant(options, training, engine):
    T, B, I, H = 3, 2, 2, 2
    lstm = lstmlab.LSTM(I, H, dtype=F64, engine=engine, **options).train(training)
    D = 2 if lstm.bidirectional else 1
    rows, P = lstm.num_layers * D, lstm.proj_size or H
    x = torch.randn(T, B, I, dtype=F64)
    hx = (torch.randn(rows, B, P, dtype=F64), torch.randn(rows, B, H, dtype=F64))
    _gradcheck(lstm, x, hx, seed=11)


@parametrize("options", cases(
    "plain", "layer_norm-peephole", "coupled-zoneout=0.3",
    variant("peephole", bidirectional=True, proj_size=1, num_layers=2),
))
@pytest.mark.parametrize("engine", ENGINES)
def test_gradcheck_through_the_trace(engine, options):
    """Gradients of every trace tensor (gates and states of every layer) are right."""
    T, B, I, H = 3, 2, 2, 2
    lstm = lstmlab.LSTM(I, H, dtype=F64, engine=engine, **options).eval()
    D = 2 if lstm.bidirectional else 1
    rows, P = lstm.num_layers * D, lstm.proj_size or H
    x = torch.randn(T, B, I, dtype=F64)
    hx = (torch.randn(rows, B, P, dtype=F64), torch.randn(rows, B, H, dtype=F64))
    _gradcheck(lstm, x, hx, trace=True)


@pytest.mark.parametrize("engine", ENGINES)
def test_gradcheck_packed_variant(engine):
    """Variable-length input through a bidirectional layer-norm peephole LSTM."""
    I, H, lengths = 2, 2, [3, 1, 2]
    lstm = lstmlab.LSTM(I, H, bidirectional=True, layer_norm=True, peephole=True, dtype=F64,
                        engine=engine)
    names, values = zip(*lstm.named_parameters())
    values = [v.detach().clone().requires_grad_(True) for v in values]
    padded = torch.randn(3, 3, I, dtype=F64, requires_grad=True)

    def function(padded, *params):
        packed = pack_padded_sequence(padded, torch.tensor(lengths), enforce_sorted=False)
        output, (h_n, c_n), trace = functional_call(
            lstm, dict(zip(names, params)), (packed,), dict(trace=True))
        return output.data, h_n, c_n, trace[0].c, trace[0].h

    assert torch.autograd.gradcheck(function, (padded, *values), **GRADCHECK)


@parametrize("options", cases(
    "peephole", "layer_norm", "coupled", "zoneout=0.3", "weight_drop=0.4",
    "peephole-layer_norm-coupled-zoneout=0.2,0.4",
))
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_gradcheck_cell_variant(options, training):
    B, I, H = 2, 3, 2
    cell = lstmlab.LSTMCell(I, H, dtype=F64, **options).train(training)
    names, values = zip(*cell.named_parameters())
    values = [v.detach().clone().requires_grad_(True) for v in values]

    def function(x, h0, c0, *params):
        torch.manual_seed(5)
        return functional_call(cell, dict(zip(names, params)), (x, (h0, c0)))

    inputs = [torch.randn(B, I, dtype=F64), torch.randn(B, H, dtype=F64), torch.randn(B, H, dtype=F64)]
    inputs = [t.requires_grad_(True) for t in inputs] + values
    assert torch.autograd.gradcheck(function, tuple(inputs), **GRADCHECK)


# ---------------------------------------------------------------- variant parameters and initialisation

@pytest.mark.parametrize("module", ["LSTM", "LSTMCell"])
def test_variant_parameter_names_and_shapes(module):
    H, I = 4, 3
    options = dict(peephole=True, layer_norm=True)
    if module == "LSTMCell":
        suffixes = [""]
        lstm = lstmlab.LSTMCell(I, H, **options)
        plain = torch.nn.LSTMCell(I, H)
    else:
        suffixes = ["_l0", "_l0_reverse", "_l1", "_l1_reverse"]
        lstm = lstmlab.LSTM(I, H, num_layers=2, bidirectional=True, **options)
        plain = torch.nn.LSTM(I, H, num_layers=2, bidirectional=True)
    state = lstm.state_dict()
    expected = {k: v.shape for k, v in plain.state_dict().items()}
    for suffix in suffixes:
        expected.update({
            f"weight_peephole{suffix}": (3 * H,), f"ln_ih_weight{suffix}": (4 * H,),
            f"ln_hh_weight{suffix}": (4 * H,), f"ln_c_weight{suffix}": (H,),
            f"ln_c_bias{suffix}": (H,),
        })
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(v) for k, v in expected.items()}
    bound = 1 / math.sqrt(H)
    for suffix in suffixes:
        assert state[f"weight_peephole{suffix}"].abs().max() <= bound  # U(-1/sqrt(H), 1/sqrt(H))
        assert state[f"weight_peephole{suffix}"].abs().min() > 0
        for gain in ("ln_ih_weight", "ln_hh_weight", "ln_c_weight"):
            assert torch.equal(state[gain + suffix], torch.ones_like(state[gain + suffix])), gain
        assert torch.equal(state[f"ln_c_bias{suffix}"], torch.zeros(H))


def _slices(hidden_size):
    return {gate: slice(k * hidden_size, (k + 1) * hidden_size) for k, gate in enumerate("ifgo")}


@pytest.mark.parametrize("module", ["LSTM", "LSTMCell"])
@pytest.mark.parametrize("forget_bias", [1.0, -2.0, 3])
def test_forget_bias_is_added_to_the_forget_slice_of_bias_ih(module, forget_bias):
    H = 64
    bound = 1 / math.sqrt(H)
    if module == "LSTM":
        lstm = lstmlab.LSTM(3, H, num_layers=2, bidirectional=True, forget_bias=forget_bias)
        suffixes = ["_l0", "_l0_reverse", "_l1", "_l1_reverse"]
    else:
        lstm, suffixes = lstmlab.LSTMCell(3, H, forget_bias=forget_bias), [""]
    gate = _slices(H)
    for suffix in suffixes:
        bias_ih, bias_hh = getattr(lstm, "bias_ih" + suffix), getattr(lstm, "bias_hh" + suffix)
        shifted = bias_ih[gate["f"]] - forget_bias
        assert shifted.abs().max() <= bound + 1e-6, "f slice is forget_bias + U(-k, k)"
        assert abs(shifted.mean().item()) < 0.3 * bound
        for other in "igo":
            assert bias_ih[gate[other]].abs().max() <= bound, f"{other} slice of bias_ih untouched"
        assert bias_hh.abs().max() <= bound, "bias_hh untouched"


@pytest.mark.parametrize("module", ["LSTM", "LSTMCell"])
@pytest.mark.parametrize("longest_dependency", [2, 10, 1000])
def test_chrono_init(module, longest_dependency):
    """b_f = log(U(1, T_max - 1)), b_i = -b_f in bias_ih; f and i slices of bias_hh zero."""
    H = 256
    if module == "LSTM":
        lstm = lstmlab.LSTM(3, H, num_layers=2, chrono_init=longest_dependency)
        suffixes = ["_l0", "_l1"]
    else:
        lstm, suffixes = lstmlab.LSTMCell(3, H, chrono_init=longest_dependency), [""]
    gate, bound = _slices(H), 1 / math.sqrt(H)
    for suffix in suffixes:
        bias_ih, bias_hh = getattr(lstm, "bias_ih" + suffix), getattr(lstm, "bias_hh" + suffix)
        b_f = bias_ih[gate["f"]]
        upper = math.log(longest_dependency - 1)
        assert b_f.min() >= -1e-7 and b_f.max() <= upper + 1e-6, "b_f in [log 1, log(T_max-1)]"
        assert torch.equal(bias_ih[gate["i"]], -b_f), "b_i = -b_f"
        if longest_dependency > 2:  # exp(b_f) is uniform on [1, T_max - 1]
            uniform = b_f.exp()
            assert abs(uniform.mean().item() - longest_dependency / 2) < 0.1 * longest_dependency
            assert uniform.std() > 0
        assert torch.equal(bias_hh[gate["f"]], torch.zeros(H))
        assert torch.equal(bias_hh[gate["i"]], torch.zeros(H))
        for other in "go":
            assert bias_ih[gate[other]].abs().max() <= bound
            assert bias_hh[gate[other]].abs().max() <= bound


@pytest.mark.parametrize("engine", ENGINES)
def test_coupled_forget_rows_are_zero_unused_and_get_no_gradient(engine):
    T, B, I, H = 4, 3, 3, 4
    lstm = lstmlab.LSTM(I, H, num_layers=2, bidirectional=True, coupled=True, dtype=F64,
                        engine=engine)
    f_rows = _slices(H)["f"]
    for name, param in lstm.named_parameters():
        if name.split("_l")[0] in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            assert torch.equal(param[f_rows], torch.zeros_like(param[f_rows])), name
    x = torch.randn(T, B, I, dtype=F64)
    output, (h_n, c_n), trace = lstm(x, trace=True)
    (output.sum() + c_n.sum()).backward()
    for name, param in lstm.named_parameters():
        if name.split("_l")[0] in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            assert torch.equal(param.grad[f_rows], torch.zeros_like(param[f_rows])), name
            assert param.grad.abs().sum() > 0, name
    for k in range(2):
        assert_close(trace[k].f, 1 - trace[k].i, F64, f"layer {k}: f == 1 - i")
    # the unused rows really are unused: filling them changes nothing
    with torch.no_grad():
        reference_output = lstm(x)[0]
        for name, param in lstm.named_parameters():
            if name.split("_l")[0] in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                param[f_rows] = torch.randn_like(param[f_rows])
        assert_close(lstm(x)[0], reference_output, F64, "output with random f rows")


# ---------------------------------------------------------------- training vs evaluation

def test_zoneout_training_keeps_each_unit_or_updates_it():
    """Training: every unit of c_t is either c_{t-1} (kept) or f*c_{t-1} + i*g (updated),
    every unit of h_t either h_{t-1} or o*tanh(updated c); the kept fractions ≈ z_c, z_h."""
    T, B, I, H, zoneout_c, zoneout_h = 12, 8, 3, 16, 0.3, 0.6
    lstm = lstmlab.LSTM(I, H, zoneout=(zoneout_c, zoneout_h), dtype=F64).train()
    x = torch.randn(T, B, I, dtype=F64)
    h0, c0 = torch.randn(1, B, H, dtype=F64), torch.randn(1, B, H, dtype=F64)
    with torch.no_grad():
        output, _, trace = lstm(x, (h0, c0), trace=True)
    layer = trace[0]
    i, f, g, o, c, h = (getattr(layer, name)[:, :, 0] for name in "ifgoch")  # (T, B, H)
    c_prev = torch.cat([c0, c[:-1]])
    h_prev = torch.cat([h0, h[:-1]])
    c_updated = f * c_prev + i * g
    h_updated = o * torch.tanh(c_updated)
    same = tolerance("float64 recomputed")
    c_kept, c_new = torch.isclose(c, c_prev, **same), torch.isclose(c, c_updated, **same)
    h_kept, h_new = torch.isclose(h, h_prev, **same), torch.isclose(h, h_updated, **same)
    assert bool((c_kept | c_new).all()), "c_t must be c_{t-1} or the updated cell"
    assert bool((h_kept | h_new).all()), "h_t must be h_{t-1} or o*tanh(updated cell)"
    assert abs(c_kept.double().mean().item() - zoneout_c) < 0.05
    assert abs(h_kept.double().mean().item() - zoneout_h) < 0.05
    assert torch.equal(output, h.unsqueeze(-1).flatten(-2)), "output is the zoned-out h"
    # training masks are random: another call differs; evaluation is deterministic
    assert not torch.equal(lstm(x, (h0, c0))[0], output)
    lstm.eval()
    assert torch.equal(lstm(x, (h0, c0))[0], lstm(x, (h0, c0))[0])


def test_zoneout_zero_on_h_never_keeps_h():
    lstm = lstmlab.LSTM(3, 8, zoneout=(0.5, 0.0), dtype=F64).train()
    output, _, trace = lstm(torch.randn(6, 4, 3, dtype=F64), trace=True)
    layer = trace[0]
    c = layer.c[:, :, 0]
    h_expected = layer.o[:, :, 0] * torch.tanh(layer.f[:, :, 0] * torch.cat([torch.zeros_like(c[:1]), c[:-1]])
                                              + layer.i[:, :, 0] * layer.g[:, :, 0])
    assert_close(layer.h[:, :, 0], h_expected, F64, "h with z_h = 0")


def _weight_drop_run(lstm, x, hx):
    output, (h_n, c_n) = lstm(x, hx)
    (output.sum() + (h_n * c_n).sum()).backward()
    return output.detach()


@pytest.mark.parametrize("engine", ENGINES)
@parametrize("options", cases("plain", variant("peephole", num_layers=2, bidirectional=True)))
def test_weight_drop_is_one_dropconnect_mask_per_call_on_weight_hh(options, engine):
    """Training with weight_drop=p equals the same LSTM (no weight drop) run with
    W_hh * mask / (1 - p), one mask for the whole sequence: a recurrent weight the mask
    removes gets exactly zero gradient over all T steps, about a fraction p of them."""
    T, B, I, H, p = 10, 4, 3, 16, 0.5  # 4H x H = 1024 weights: the kept fraction is within 6 sigma
    lstm = lstmlab.LSTM(I, H, weight_drop=p, dtype=F64, engine=engine, **options).train()
    x = torch.randn(T, B, I, dtype=F64)
    rows = lstm.num_layers * (2 if lstm.bidirectional else 1)
    hx = (torch.randn(rows, B, H, dtype=F64), torch.randn(rows, B, H, dtype=F64))
    before = {name: param.detach().clone() for name, param in lstm.named_parameters()}
    output = _weight_drop_run(lstm, x, hx)
    plain = lstmlab.LSTM(I, H, dtype=F64, engine="reference", **options).eval()
    masked_state = {}
    for name, param in lstm.named_parameters():
        assert torch.equal(param, before[name]), f"{name} must not be modified in place"
        if name.startswith("weight_hh"):
            kept = param.grad != 0
            assert abs(kept.double().mean().item() - (1 - p)) < 0.1, f"{name}: kept fraction"
            masked_state[name] = param.detach() * kept / (1 - p)
        else:
            assert bool((param.grad != 0).all()), f"{name}: not dropped"
            masked_state[name] = param.detach()
    plain.load_state_dict(masked_state)
    assert_close(output, plain(x, hx)[0], F64, "training output vs W_hh * mask / (1 - p)")
    # evaluation uses W_hh unchanged
    lstm.eval()
    plain.load_state_dict(lstm.state_dict())
    assert_close(lstm(x, hx)[0], plain(x, hx)[0], F64, "eval output with weight_drop")


@pytest.mark.parametrize("engine", ENGINES)
def test_dropout_between_layers_training_vs_eval(engine):
    T, B, I, H = 5, 4, 3, 6
    lstm = lstmlab.LSTM(I, H, num_layers=2, dropout=0.5, dtype=F64, engine=engine)
    x = torch.randn(T, B, I, dtype=F64)
    lstm.train()
    train_output, _, train_trace = lstm(x, trace=True)
    lstm.eval()
    eval_output, _, eval_trace = lstm(x, trace=True)
    assert not torch.allclose(train_output, eval_output), "dropout acts in training"
    assert_close(train_trace[0].h, eval_trace[0].h, F64, "the first layer sees no dropout")
    # a single layer has no layer after it to drop into (torch.nn.LSTM does the same)
    with pytest.warns(UserWarning, match="dropout"):  # as torch.nn.LSTM warns
        single = lstmlab.LSTM(I, H, num_layers=1, dropout=0.5, dtype=F64)
    assert torch.equal(single.train()(x)[0], single.eval()(x)[0])


# ---------------------------------------------------------------- construction checks

@pytest.mark.parametrize("module", ["LSTM", "LSTMCell"])
@pytest.mark.parametrize("bad", [
    dict(zoneout=1.0), dict(zoneout=-0.1), dict(zoneout=(0.1, 1.5)), dict(zoneout=(0.1, 0.2, 0.3)),
    dict(weight_drop=1.0), dict(weight_drop=-0.5),
    dict(forget_bias=1.0, bias=False), dict(chrono_init=10, bias=False),
    dict(forget_bias=1.0, chrono_init=10), dict(chrono_init=1), dict(chrono_init=0.5),
    dict(hidden_size=-1), dict(input_size=-3),
], ids=str)
def test_invalid_options_raise_value_error(module, bad):
    arguments = dict(input_size=3, hidden_size=4)
    arguments.update(bad)
    cls = lstmlab.LSTM if module == "LSTM" else lstmlab.LSTMCell
    with pytest.raises(ValueError, match="expected"):
        cls(**arguments)


@pytest.mark.parametrize("bad", [
    dict(dropout=1.5), dict(dropout=-0.1), dict(num_layers=0), dict(proj_size=4),
    dict(proj_size=7), dict(proj_size=-1),
], ids=str)
def test_invalid_lstm_arguments_raise_value_error(bad):
    with pytest.raises(ValueError):
        lstmlab.LSTM(3, 4, **bad)


def _description_line(description, prefix):
    return next(line for line in description.splitlines() if line.strip().startswith(prefix))


def _chosen_engine(description, prefix):
    """The engine named on the description line starting with `prefix`, and the line."""
    line = next(line for line in description.splitlines() if line.strip().startswith(prefix))
    return line.split(":", 1)[1].split("(")[0].strip(), line


def test_engine_registry_and_description():
    names = lstmlab.engines.available()
    assert {"reference", "native"} <= set(names)
    general = lstmlab.engines.describe()
    assert all(name in general for name in names), general
    plain = lstmlab.engines.describe(lstmlab.LSTM(3, 4, engine="auto"))
    assert _chosen_engine(plain, "forward without trace")[0] == "native", plain
    for options in select("peephole", "zoneout=0.1", "layer_norm-coupled"):
        variant = lstmlab.engines.describe(lstmlab.LSTM(3, 4, **options))
        for prefix in ("forward without trace", "forward with trace"):
            chosen, line = _chosen_engine(variant, prefix)
            assert chosen in names and chosen != "native", variant
            assert all(name in line for name in options), f"the reason names the variant: {line}"
    forced = lstmlab.engines.describe(lstmlab.LSTM(3, 4, engine="reference"))
    assert _chosen_engine(forced, "forward without trace")[0] == "reference", forced


@parametrize("options", cases("peephole", "layer_norm", "coupled", "zoneout=0.1"))
def test_native_engine_refuses_variants_at_construction_and_says_why(options):
    """An engine asked for a cell it cannot run fails when the module is built, not later."""
    name = next(iter(options))
    with pytest.raises(ValueError, match=name):
        lstmlab.LSTM(3, 4, engine="native", **options)


def test_native_engine_accepts_weight_drop():
    lstm = lstmlab.LSTM(3, 4, engine="native", weight_drop=0.3, dtype=F64).eval()
    reference = lstmlab.LSTM(3, 4, engine="reference", weight_drop=0.3, dtype=F64).eval()
    reference.load_state_dict(lstm.state_dict())
    x = torch.randn(5, 2, 3, dtype=F64)
    assert_close(lstm(x)[0], reference(x)[0], F64, "native vs reference, weight_drop in eval")


def test_auto_engine_runs_the_trace_and_variants():
    x = torch.randn(4, 2, 3)
    output, _, trace = lstmlab.LSTM(3, 4, engine="auto")(x, trace=True)
    assert len(trace) == 1 and trace[0].h.shape == (4, 2, 1, 4)
    output, _ = lstmlab.LSTM(3, 4, engine="auto", layer_norm=True)(x)
    assert output.shape == (4, 2, 4)
