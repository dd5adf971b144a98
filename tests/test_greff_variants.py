"""Greff et al.'s one-part-removed cells (NIG, NFG, NOG, NIAF, NOAF) as lstmlab.LSTM options:
each follows its equation (checked against a per-gate loop written here from the paper),
with the trace, gradients (gradcheck), unused rows that stay unused, the fused engine's
parity with the reference on every path, and refusals of combinations that make no sense."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstmlab
from lstmlab import engines

GREFF = {  # Greff's name -> lstmlab option
    "NIG": {"input_gate": False},
    "NFG": {"forget_gate": False},
    "NOG": {"output_gate": False},
    "NIAF": {"input_activation": False},
    "NOAF": {"output_activation": False},
}


def paper_step(x, h, c, W, R, b, p, removed: set[str]):
    """One step as Greff et al. write it (their eq. 1-7), one gate at a time.

    W[gate] (H, I), R[gate] (H, H), b[gate] (H,), p[gate] (H,) for gate in i, f, z (input), o.
    """
    z = torch.tanh(x @ W["z"].T + h @ R["z"].T + b["z"])
    if "NIAF" in removed:
        z = x @ W["z"].T + h @ R["z"].T + b["z"]
    i = torch.sigmoid(x @ W["i"].T + h @ R["i"].T + p["i"] * c + b["i"])
    if "NIG" in removed:
        i = torch.ones_like(i)
    f = torch.sigmoid(x @ W["f"].T + h @ R["f"].T + p["f"] * c + b["f"])
    if "NFG" in removed:
        f = torch.ones_like(f)
    c_new = z * i + c * f
    o = torch.sigmoid(x @ W["o"].T + h @ R["o"].T + p["o"] * c_new + b["o"])
    if "NOG" in removed:
        o = torch.ones_like(o)
    y = (c_new if "NOAF" in removed else torch.tanh(c_new)) * o
    return y, c_new, (i, f, z, o)


def split_weights(lstm: lstmlab.LSTM):
    """lstmlab's (i, f, g, o) stacked layer-0 weights as the paper's per-gate matrices."""
    names = ("i", "f", "z", "o")
    chunks = lambda t: dict(zip(names, t.chunk(4)))  # noqa: E731
    W, R = chunks(lstm.weight_ih_l0), chunks(lstm.weight_hh_l0)
    b = chunks(lstm.bias_ih_l0 + lstm.bias_hh_l0)
    p_i, p_f, p_o = lstm.weight_peephole_l0.chunk(3)
    return W, R, b, {"i": p_i, "f": p_f, "o": p_o}


@pytest.mark.parametrize("name", sorted(GREFF))
def test_each_variant_follows_the_papers_equations_with_its_trace(name):
    torch.manual_seed(0)
    lstm = lstmlab.LSTM(3, 5, peephole=True, **GREFF[name], dtype=torch.float64)  # Greff's vanilla has peepholes
    with torch.no_grad():
        for parameter in lstm.parameters():  # exercise the unused rows too: they must not matter
            parameter.add_(torch.randn_like(parameter) * 0.3)
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    output, (h_n, c_n), trace = lstm(x, trace=True)
    W, R, b, p = split_weights(lstm)
    h = c = torch.zeros(2, 5, dtype=torch.float64)
    for t in range(6):
        h, c, (i, f, z, o) = paper_step(x[t], h, c, W, R, b, p, {name})
        torch.testing.assert_close(output[t], h)
        for field, expected in zip("ifgo", (i, f, z, o)):
            torch.testing.assert_close(getattr(trace[0], field)[t, :, 0], expected, msg=f"{name} {field} at {t}")
        torch.testing.assert_close(trace[0].c[t, :, 0], c)
    torch.testing.assert_close(h_n[0], h)
    torch.testing.assert_close(c_n[0], c)


@pytest.mark.parametrize("name", sorted(GREFF))
def test_cell_and_sequence_module_agree(name):
    torch.manual_seed(1)
    lstm = lstmlab.LSTM(4, 6, **GREFF[name])
    cell = lstmlab.LSTMCell(4, 6, **GREFF[name])
    cell.load_state_dict({key[:-3]: value for key, value in lstm.state_dict().items()})
    x = torch.randn(5, 3, 4)
    output, _ = lstm(x)
    h = c = torch.zeros(3, 6)
    for t in range(5):
        h, c = cell(x[t], (h, c))
        torch.testing.assert_close(output[t], h)


@pytest.mark.parametrize("name", sorted(GREFF))
def test_gradcheck(name):
    torch.manual_seed(2)
    lstm = lstmlab.LSTM(2, 2, bidirectional=True, peephole=True, **GREFF[name], dtype=torch.float64)
    x = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    parameters = tuple(lstm.parameters())

    def run(x, *weights):
        named = dict(zip((n for n, _ in lstm.named_parameters()), weights))
        output, (h_n, c_n) = torch.func.functional_call(lstm, named, (x,))
        return output, h_n, c_n

    assert torch.autograd.gradcheck(run, (x, *parameters))


@pytest.mark.parametrize("gate", ["i", "f", "o"])
def test_a_removed_gate_s_rows_are_zero_and_get_no_gradient(gate):
    option = {"i": "input_gate", "f": "forget_gate", "o": "output_gate"}[gate]
    lstm = lstmlab.LSTM(3, 4, peephole=True, **{option: False})
    rows = slice("ifgo".index(gate) * 4, ("ifgo".index(gate) + 1) * 4)
    peephole_rows = slice("ifo".index(gate) * 4, ("ifo".index(gate) + 1) * 4)
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        assert not getattr(lstm, name)[rows].any(), name
    assert not lstm.weight_peephole_l0[peephole_rows].any()
    output, (h_n, c_n) = lstm(torch.randn(5, 2, 3))
    (output.sum() + c_n.sum()).backward()
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        assert not getattr(lstm, name).grad[rows].any(), name
    assert not lstm.weight_peephole_l0.grad[peephole_rows].any()


def test_nfg_is_the_1997_cell_that_accumulates():
    """Without a forget gate the cell state only adds: c_t = c_{t-1} + i_t g_t."""
    lstm = lstmlab.LSTM(2, 3, forget_gate=False)
    _, _, trace = lstm(torch.randn(7, 1, 2), trace=True)
    cells, i, g = trace[0].c[:, 0, 0], trace[0].i[:, 0, 0], trace[0].g[:, 0, 0]
    torch.testing.assert_close(cells[1:] - cells[:-1], (i * g)[1:])
    assert torch.all(trace[0].f == 1)


@pytest.mark.parametrize("name", sorted(GREFF))
def test_engines_auto_runs_the_fused_engine_and_native_and_stream_refuse(name):
    lstm = lstmlab.LSTM(3, 4, **GREFF[name])
    chosen, reason = engines.select("auto", lstm.spec, need_trace=False, like=lstm.weight_ih_l0)
    assert chosen == "fused" and "no_" in reason
    with pytest.raises(ValueError, match="cannot run this"):
        lstmlab.LSTM(3, 4, **GREFF[name], engine="native")
    with pytest.raises(ValueError, match="Stream runs on the fused CPU engine.*its C\\+\\+ step has no cell"):
        lstmlab.Stream(lstm)
    with torch.no_grad():  # step falls back to the differentiable engines, same numbers as the sequence
        x = torch.randn(3, 1, 3)
        output, _ = lstm(x)
        state = None
        for t in range(3):
            y, state = lstm.step(x[t], state)
            torch.testing.assert_close(y, output[t])


STRUCTURES = {  # the fused engine's paths: packed loops, per-step loops (projection, zoneout), padding
    "packed": {}, "projection": {"proj_size": 3}, "zoneout": {"zoneout": 0.2}, "bidirectional": {"bidirectional": True},
}


@pytest.mark.parametrize("structure", sorted(STRUCTURES))
@pytest.mark.parametrize("name", sorted(GREFF))
def test_fused_engine_matches_the_reference_with_gradients_and_trace(name, structure):
    torch.manual_seed(4)
    options = dict(peephole=True, **GREFF[name], **STRUCTURES[structure])
    reference = lstmlab.LSTM(4, 6, 2, engine="reference", dtype=torch.float64, **options)
    fused = lstmlab.LSTM(4, 6, 2, engine="fused", dtype=torch.float64, **options)
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
    fused.load_state_dict(reference.state_dict())
    x = torch.randn(7, 3, 4, dtype=torch.float64)
    packed_lengths = torch.tensor([7, 5, 2])
    results = []
    for module in (reference, fused):
        module.eval()  # zoneout's expectation: no random draws to align
        inputs = x.clone().requires_grad_()
        output, (h_n, c_n), trace = module(pack_padded_sequence(inputs, packed_lengths), trace=True)
        loss = output.data.pow(2).sum() + h_n.sum() + c_n.pow(2).sum() + trace[0].g.sum() + trace[1].o.sum()
        results.append((output.data, h_n, c_n, trace[0].i, trace[1].c,
                        *torch.autograd.grad(loss, [inputs, *module.parameters()])))
    for got, expected in zip(results[1], results[0]):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["NIAF", "NOAF"])
def test_fused_variants_compile_without_graph_breaks(name):
    torch.manual_seed(5)
    lstm = lstmlab.LSTM(3, 5, 2, peephole=True, **GREFF[name])
    compiled = torch.compile(lstm, backend="aot_eager", fullgraph=True)
    x = torch.randn(6, 2, 3)
    eager_out, _ = lstm(x)
    eager = torch.autograd.grad(eager_out.sum(), list(lstm.parameters()))
    out, _ = compiled(x)
    grads = torch.autograd.grad(out.sum(), list(lstm.parameters()))
    torch.testing.assert_close(out, eager_out)
    for got, expected in zip(grads, eager):
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("options, why", [
    ({"layer_norm": True, "output_activation": False}, "no layer-norm cell without output_activation"),
    ({"coupled": True, "output_gate": False}, "one change to the cell at a time"),
    ({"input_activation": False, "output_activation": False}, "one change to the cell at a time"),
])
def test_fused_engine_refuses_what_it_has_no_loop_for_and_auto_takes_the_reference(options, why):
    lstm = lstmlab.LSTM(3, 4, **options)
    chosen, reason = engines.select("auto", lstm.spec, need_trace=False, like=lstm.weight_ih_l0)
    assert chosen == "reference" and why in reason
    with pytest.raises(ValueError, match=why):
        lstmlab.LSTM(3, 4, **options, engine="fused")


def test_default_cell_is_unchanged_and_named_in_repr():
    torch.manual_seed(3)
    ours, theirs = lstmlab.LSTM(3, 4), torch.nn.LSTM(3, 4)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(5, 2, 3)
    torch.testing.assert_close(ours(x)[0], theirs(x)[0])
    assert "variants=peephole+no_forget_gate" in repr(lstmlab.LSTM(3, 4, peephole=True, forget_gate=False))


@pytest.mark.parametrize("options, message", [
    ({"coupled": True, "input_gate": False}, "f = 1 - i"),
    ({"coupled": True, "forget_gate": False}, "both replace the forget gate"),
    ({"layer_norm": True, "output_gate": False}, "layer norm takes its moments"),
    ({"forget_gate": False, "forget_bias": 1.0}, "forget_bias: it initialises the forget gate's bias"),
    ({"input_gate": False, "chrono_init": 10}, "chrono_init: it initialises the input gate's bias"),
    ({"output_activation": 0}, "output_activation: expected True or False"),
])
@pytest.mark.parametrize("module", ["LSTM", "LSTMCell"])
def test_combinations_that_make_no_sense_are_refused(module, options, message):
    error = TypeError if "expected True or False" in message else ValueError
    with pytest.raises(error, match=message.replace("(", r"\(")):
        getattr(lstmlab, module)(3, 4, **options)
