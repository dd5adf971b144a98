"""Greff et al.'s FGR (full gate recurrence) as `lstmlab.LSTM(..., full_gate_recurrence=True)`:
the paper's equations (each gate sees the previous step's i, f, o through nine H x H
matrices) checked against a loop written here block by block, the state_dict keys, the
trace, gradcheck, padding, the engine it runs on, and the combinations it refuses."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstmlab
from lstmlab import engines


def paper_fgr_step(x, h, c, previous, W, R, b, p, G):
    """One FGR step as Greff et al. write it: previous = (i, f, o) of step t-1;
    G[(to, frm)] (H, H) is the matrix from gate `frm` at t-1 into gate `to` at t."""
    def extra(to):
        return sum(previous[frm] @ G[(to, frm)].T for frm in "ifo")
    z = torch.tanh(x @ W["z"].T + h @ R["z"].T + b["z"])
    i = torch.sigmoid(x @ W["i"].T + h @ R["i"].T + p["i"] * c + b["i"] + extra("i"))
    f = torch.sigmoid(x @ W["f"].T + h @ R["f"].T + p["f"] * c + b["f"] + extra("f"))
    c_new = z * i + c * f
    o = torch.sigmoid(x @ W["o"].T + h @ R["o"].T + p["o"] * c_new + b["o"] + extra("o"))
    return torch.tanh(c_new) * o, c_new, {"i": i, "f": f, "o": o}


def test_fgr_follows_the_papers_equations_with_its_trace():
    torch.manual_seed(0)
    H = 4
    lstm = lstmlab.LSTM(3, H, peephole=True, full_gate_recurrence=True, dtype=torch.float64)
    assert lstm.weight_gg_l0.shape == (3 * H, 3 * H)
    x = torch.randn(7, 2, 3, dtype=torch.float64)
    output, (h_n, c_n), trace = lstm(x, trace=True)
    names = ("i", "f", "z", "o")
    W = dict(zip(names, lstm.weight_ih_l0.chunk(4)))
    R = dict(zip(names, lstm.weight_hh_l0.chunk(4)))
    b = dict(zip(names, (lstm.bias_ih_l0 + lstm.bias_hh_l0).chunk(4)))
    p = dict(zip("ifo", lstm.weight_peephole_l0.chunk(3)))
    blocks = lstm.weight_gg_l0.detach()
    G = {(to, frm): blocks[r * H:(r + 1) * H, k * H:(k + 1) * H]
         for r, to in enumerate("ifo") for k, frm in enumerate("ifo")}
    h = c = torch.zeros(2, H, dtype=torch.float64)
    previous = {gate: torch.zeros(2, H, dtype=torch.float64) for gate in "ifo"}
    for t in range(7):
        h, c, previous = paper_fgr_step(x[t], h, c, previous, W, R, b, p, G)
        torch.testing.assert_close(output[t], h)
        for gate in "ifo":
            torch.testing.assert_close(getattr(trace[0], gate)[t, :, 0], previous[gate])
    torch.testing.assert_close((h_n[0], c_n[0]), (h, c))


def test_fgr_changes_the_output_and_zero_matrices_give_the_peephole_cell():
    torch.manual_seed(1)
    fgr = lstmlab.LSTM(3, 5, 2, peephole=True, full_gate_recurrence=True)
    vanilla = lstmlab.LSTM(3, 5, 2, peephole=True)
    vanilla.load_state_dict({k: v for k, v in fgr.state_dict().items() if "weight_gg" not in k})
    x = torch.randn(6, 2, 3)
    assert (fgr(x)[0] - vanilla(x)[0]).abs().max() > 1e-3
    with torch.no_grad():
        fgr.weight_gg_l0.zero_()
        fgr.weight_gg_l1.zero_()
    torch.testing.assert_close(fgr(x)[0], vanilla(x)[0])


def test_gradcheck_bidirectional_with_padding():
    torch.manual_seed(2)
    lstm = lstmlab.LSTM(2, 2, bidirectional=True, peephole=True, full_gate_recurrence=True, dtype=torch.float64)
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    parameters = tuple(lstm.parameters())
    lengths = torch.tensor([4, 2])

    def run(x, *weights):
        named = dict(zip((n for n, _ in lstm.named_parameters()), weights))
        output, (h_n, c_n) = torch.func.functional_call(lstm, named, (pack_padded_sequence(x, lengths),))
        return output.data, h_n, c_n

    assert torch.autograd.gradcheck(run, (x, *parameters))


def test_a_padded_sequence_ends_as_its_unpadded_self():
    torch.manual_seed(3)
    lstm = lstmlab.LSTM(3, 4, bidirectional=True, full_gate_recurrence=True)
    x = torch.randn(6, 2, 3)
    _, (h_n, c_n) = lstm(pack_padded_sequence(x, torch.tensor([6, 3])))
    _, (h_short, c_short) = lstm(x[:3, 1:2])
    torch.testing.assert_close(h_n[:, 1], h_short[:, 0])
    torch.testing.assert_close(c_n[:, 1], c_short[:, 0])


def test_coupled_fgr_never_reads_its_f_rows():
    lstm = lstmlab.LSTM(3, 4, coupled=True, full_gate_recurrence=True)
    assert not lstm.weight_gg_l0[4:8].any()
    output, _ = lstm(torch.randn(5, 2, 3))
    output.sum().backward()
    assert not lstm.weight_gg_l0.grad[4:8].any()
    assert lstm.weight_gg_l0.grad[:4].abs().sum() > 0


def test_fgr_runs_on_the_reference_engine_and_says_so():
    lstm = lstmlab.LSTM(3, 4, full_gate_recurrence=True)
    chosen, reason = engines.select("auto", lstm.spec, need_trace=False, like=lstm.weight_ih_l0)
    assert chosen == "reference" and "full gate recurrence" in reason
    assert "reference" in engines.describe(lstm)
    for engine in ("native", "fused"):
        with pytest.raises(ValueError, match="cannot run this"):
            lstmlab.LSTM(3, 4, full_gate_recurrence=True, engine=engine)
    assert "full_gate_recurrence" in repr(lstm)


@pytest.mark.parametrize("options, message", [
    ({"input_gate": False}, "read the removed gate as the constant 1"),
    ({"layer_norm": True}, "neither paper says where"),
    ({"full_gate_recurrence": 1}, "full_gate_recurrence: expected True or False"),
])
def test_combinations_that_make_no_sense_are_refused(options, message):
    options = {"full_gate_recurrence": True, **options}
    error = TypeError if "expected True or False" in message else ValueError
    with pytest.raises(error, match=message):
        lstmlab.LSTM(3, 4, **options)


def test_the_cell_and_step_refuse_with_the_reason():
    with pytest.raises(ValueError, match="no place for the previous step's gates"):
        lstmlab.LSTMCell(3, 4, full_gate_recurrence=True)
    with pytest.raises(ValueError, match="does not hold"):
        lstmlab.LSTM(3, 4, full_gate_recurrence=True).step(torch.randn(3))


def test_onnx_export_refuses_fgr_by_name(tmp_path):
    from lstmlab.export import to_onnx

    with pytest.raises(ValueError, match="full_gate_recurrence"):
        to_onnx(lstmlab.LSTM(3, 4, full_gate_recurrence=True), tmp_path / "fgr.onnx")


def test_state_dict_round_trip(tmp_path):
    lstm = lstmlab.LSTM(3, 4, 2, full_gate_recurrence=True)
    path = tmp_path / "fgr.pt"
    torch.save(lstm, path)
    loaded = torch.load(path)
    x = torch.randn(5, 1, 3)
    torch.testing.assert_close(loaded(x)[0], lstm(x)[0])
    assert loaded.spec.full_gate_recurrence
