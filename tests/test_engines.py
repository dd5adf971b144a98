"""Every engine against the float64 reference: outputs, h_n, c_n, the trace, and every
gradient — including gradients that enter through h_n / c_n and through the trace.

The fused engine is compiled on first use (once per machine, cached); its build must
succeed here: a build failure is a test failure, not a skip.
"""

from __future__ import annotations

import contextlib
import itertools

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstmlab
from lstmlab.cell import GATES, TRACE_FIELDS
from lstmlab.engines import fused, fused_direction, fused_extension
from lstmlab.engines.fused_extension import ForwardInputs, ForwardOutputs
from tolerances import assert_close, tolerance

FUSED_VARIANTS = [dict(), dict(peephole=True), dict(coupled=True), dict(peephole=True, coupled=True),
                  dict(layer_norm=True), dict(layer_norm=True, peephole=True), dict(layer_norm=True, coupled=True),
                  dict(zoneout=0.3), dict(zoneout=(0.2, 0.4), layer_norm=True, peephole=True)]
SHAPES = [dict(), dict(num_layers=2, bidirectional=True), dict(proj_size=3), dict(num_layers=2, proj_size=2)]


def test_fused_engine_builds():
    assert fused.build_error() is None


def run_and_differentiate(lstm, inputs, hx, x, fields=TRACE_FIELDS):
    """Forward with trace, a loss touching output, h_n, c_n and the trace `fields`, backward.

    Returns the tensors to compare: output, h_n, c_n, trace fields, grads of x/h0/c0 and weights.
    """
    lstm.zero_grad()
    for tensor in (x, *hx):
        tensor.grad = None
    output, (h_n, c_n), trace = lstm(inputs, hx, trace=True)
    data = output if isinstance(output, torch.Tensor) else output.data
    loss = (data ** 2).sum() + (h_n * 1.5).sum() + c_n.sin().sum()
    for k, layer in enumerate(trace):
        for j, name in enumerate(TRACE_FIELDS):
            if name in fields:
                loss = loss + (layer[name] * (k + j + 1)).cos().sum()
    loss.backward()
    results = {"output": data, "h_n": h_n, "c_n": c_n}
    results.update({f"trace[{k}].{n}": trace[k][n] for k in range(len(trace)) for n in TRACE_FIELDS})
    results.update({f"grad {name}": p.grad.clone() for name, p in lstm.named_parameters()})
    results.update({f"grad {name}": t.grad.clone() for name, t in (("x", x), ("h0", hx[0]), ("c0", hx[1]))})
    return results


def compare_engines(engine, options, dtype=torch.float64, steps=5, batch=3, input_size=4, hidden=5, packed=False,
                    training=True, fields=TRACE_FIELDS):
    """Both engines from the same seed, so random draws (zoneout, weight drop) coincide."""
    lstm = lstmlab.LSTM(input_size, hidden, **options).to(dtype).train(training)
    rows = lstm.num_layers * lstm.num_directions
    x = torch.randn(steps, batch, input_size, dtype=dtype, requires_grad=True)
    h0 = torch.randn(rows, batch, lstm.proj_size or hidden, dtype=dtype, requires_grad=True)
    c0 = torch.randn(rows, batch, hidden, dtype=dtype, requires_grad=True)
    lengths = torch.randint(1, steps + 1, (batch,))
    lengths[0] = steps
    results = {}
    for name in ("reference", engine):
        lstm.engine = name
        inputs = pack_padded_sequence(x, lengths, enforce_sorted=False) if packed else x
        torch.manual_seed(1234)
        results[name] = run_and_differentiate(lstm, inputs, (h0, c0), x, fields)
    for key, expected in results["reference"].items():
        assert_close(results[engine][key], expected, dtype, f"{engine} {options} {key}")


@pytest.mark.parametrize("options", [{**v, **s} for v, s in itertools.product(FUSED_VARIANTS, SHAPES)],
                         ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()) or "plain")
def test_fused_matches_reference_float64(options):
    compare_engines("fused", options)


@pytest.mark.parametrize("fields", [("f",), ("g", "c"), ("o", "h"), ()], ids=lambda f: "+".join(f) or "none")
@pytest.mark.parametrize("options", [dict(), dict(layer_norm=True, peephole=True), dict(coupled=True, proj_size=2),
                                     dict(zoneout=0.3, layer_norm=True)],
                         ids=["plain", "layer_norm-peephole", "coupled-proj", "zoneout-layer_norm"])
def test_fused_matches_reference_with_some_trace_fields(options, fields):
    """A loss on some trace fields only: the other gates' gradients arrive as None."""
    compare_engines("fused", options, packed=True, batch=4, steps=6, fields=fields)


@pytest.mark.parametrize("options", [dict(zoneout=0.3, peephole=True, proj_size=2, bidirectional=True),
                                     dict(zoneout=(0.5, 0.1), weight_drop=0.3, layer_norm=True, num_layers=2)],
                         ids=["zoneout-peephole-proj-bidirectional", "zoneout-weight_drop-layer_norm"])
@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_fused_zoneout_matches_reference(options, training, packed):
    compare_engines("fused", options, training=training, packed=packed, batch=4, steps=6)


@pytest.mark.parametrize("options", [dict(), dict(peephole=True, bidirectional=True), dict(coupled=True, proj_size=2),
                                     dict(layer_norm=True, bidirectional=True, peephole=True)],
                         ids=["plain", "peephole-bidirectional", "coupled-proj", "layer_norm-bidirectional"])
def test_fused_matches_reference_packed(options):
    compare_engines("fused", options, packed=True, batch=4, steps=6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("options", [dict(), dict(num_layers=2, bidirectional=True, proj_size=2),
                                     dict(layer_norm=True, peephole=True, bidirectional=True),
                                     dict(coupled=True, proj_size=2), dict(peephole=True, num_layers=2)],
                         ids=["plain", "bidirectional-proj", "layer_norm-peephole-bidirectional", "coupled-proj",
                              "peephole-2-layers"])
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_cuda_auto_with_trace_matches_cpu_reference(options, packed):
    """On a GPU, engine="auto" (native for plain cells, else the reference loop) gives the
    CPU float64 reference's outputs, trace and every gradient."""
    dtype, steps, batch, input_size, hidden = torch.float64, 6, 4, 4, 5
    lstm = lstmlab.LSTM(input_size, hidden, **options).to(dtype)
    rows = lstm.num_layers * lstm.num_directions
    x = torch.randn(steps, batch, input_size, dtype=dtype)
    h0 = torch.randn(rows, batch, lstm.proj_size or hidden, dtype=dtype)
    c0 = torch.randn(rows, batch, hidden, dtype=dtype)
    lengths = torch.tensor([steps, 2, 5, 3])
    results = {}
    for device, engine in (("cpu", "reference"), ("cuda", "auto")):
        lstm.to(device).engine = engine
        leaves = [t.detach().to(device).requires_grad_() for t in (x, h0, c0)]  # leaves on each device
        inputs = pack_padded_sequence(leaves[0], lengths, enforce_sorted=False) if packed else leaves[0]
        run = run_and_differentiate(lstm, inputs, tuple(leaves[1:]), leaves[0])
        results[device] = {key: value.cpu() for key, value in run.items()}
    for key, expected in results["cpu"].items():
        assert_close(results["cuda"][key], expected, dtype, f"cuda {options} {key}")


@pytest.mark.parametrize("options", [dict(), dict(num_layers=2, bidirectional=True, proj_size=2)])
@pytest.mark.parametrize("packed", [False, True])
def test_native_trace_matches_reference(options, packed):
    compare_engines("native", options, packed=packed, batch=4, steps=6)


@pytest.mark.parametrize("sizes", [dict(batch=1, hidden=17), dict(steps=1, hidden=3), dict(steps=120, batch=2, hidden=7),
                                   dict(batch=9, hidden=33, input_size=31)],
                         ids=["B1-H17", "T1", "longT", "odd-sizes"])
@pytest.mark.parametrize("variant", [dict(peephole=True), dict(layer_norm=True)], ids=["peephole", "layer_norm"])
def test_fused_odd_sizes(sizes, variant):
    compare_engines("fused", variant, **sizes)


@contextlib.contextmanager
def torch_threads(count: int):
    """torch's thread count set to `count` inside the block, restored after it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def compare_padded_and_packed(variant: dict, sizes: dict) -> None:
    """The fused engine against the reference on a padded batch and on a packed one."""
    compare_engines("fused", variant, **sizes)
    compare_engines("fused", variant, packed=True, **sizes)


# Sizes where the packed, thread-team loops (csrc/fused_recurrent.h) split the work: at least
# 2^16 multiply-adds per step (B * 4H * H); H=45 is not a multiple of a vector's lanes, B=9
# and B=7 not multiples of the kernel's row block, and B=1 gives tiles of one row.
# With 2+ threads: B9-H45 and B13-H40 split the batch rows (each thread runs its rows'
# whole sequence; B13 into 3 ranges with 3 threads); B7-H61 (too few rows), B1-H131 and
# B8-H230 (W_hh too large for a core's L2 in float64) run the team over hidden units.
TEAM_SIZES = [dict(batch=9, hidden=45, input_size=7), dict(batch=7, hidden=61, steps=7),
              dict(batch=1, hidden=131, input_size=3), dict(batch=13, hidden=40, steps=6),
              dict(batch=8, hidden=230, steps=3, input_size=5)]


@pytest.mark.parametrize("threads", [1, 2, 3], ids=lambda n: f"{n}threads")
@pytest.mark.parametrize("sizes", TEAM_SIZES, ids=["B9-H45", "B7-H61", "B1-H131", "B13-H40", "B8-H230"])
@pytest.mark.parametrize("variant", [dict(), dict(peephole=True), dict(coupled=True, bidirectional=True),
                                     dict(layer_norm=True), dict(layer_norm=True, peephole=True, coupled=True)],
                         ids=["plain", "peephole", "coupled-bidirectional", "layer_norm", "layer_norm-peephole-coupled"])
def test_fused_packed_loops_with_a_thread_team(variant, sizes, threads):
    """1 thread runs the loop serially; 2 split the rows or each step; 3 is more threads
    than this machine's cores (a team's parts are then claimed by whichever thread comes first)."""
    with torch_threads(threads):
        compare_padded_and_packed(variant, sizes)


@pytest.mark.parametrize("variant", [dict(), dict(peephole=True, coupled=True, bidirectional=True)],
                         ids=["plain", "peephole-coupled-bidirectional"])
def test_fused_packed_loops_with_the_input_gemm_outside(variant, monkeypatch):
    """A large W_ih is not re-read every step: its GEMM runs before the loop (forced here)."""
    monkeypatch.setattr(fused_direction, "FUSED_INPUT_MAX_BYTES", 0)
    compare_padded_and_packed(variant, TEAM_SIZES[0])


@pytest.mark.parametrize("threads", [1, 2], ids=lambda n: f"{n}threads")
@pytest.mark.parametrize("sizes", TEAM_SIZES, ids=["B9-H45", "B7-H61", "B1-H131", "B13-H40", "B8-H230"])
@pytest.mark.parametrize("variant", [dict(), dict(peephole=True, coupled=True, bidirectional=True)],
                         ids=["plain", "peephole-coupled-bidirectional"])
def test_fused_packed_loops_with_the_input_share_in_the_tile(variant, sizes, threads, monkeypatch):
    """Small batches get the input GEMM before the loop; forced into the tile here, with
    the rows split between threads and with the team over hidden units."""
    monkeypatch.setattr(fused_direction, "FUSED_INPUT_MIN_BATCH", 1)
    with torch_threads(threads):
        compare_padded_and_packed(variant, sizes)


@pytest.mark.parametrize("limit", [0, 1 << 30], ids=["contiguous", "transposed"])
@pytest.mark.parametrize("variant", [dict(bidirectional=True), dict(proj_size=3, peephole=True),
                                     dict(zoneout=0.2, layer_norm=True)], ids=["plain", "proj", "zoneout"])
def test_fused_weight_gradients_in_either_orientation(variant, limit, monkeypatch):
    """dW = d^T inputs is computed as (inputs^T d)^T for small weights only: both ways agree."""
    monkeypatch.setattr(fused_direction, "TRANSPOSED_GRADIENT_MAX_NUMEL", limit)
    compare_engines("fused", variant, packed=True, batch=4, steps=6)


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("variant", [dict(), dict(peephole=True, bidirectional=True), dict(layer_norm=True, num_layers=2),
                                     dict(layer_norm=True, coupled=True, proj_size=3)],
                         ids=["plain", "peephole-bidirectional", "layer_norm-2-layers", "layer_norm-coupled-proj"])
def test_fused_inference_without_trace_matches_reference(variant, packed):
    """Without trace and autograd the loops keep one step of gates and cells (scratch):
    output, h_n and c_n must not change."""
    lstm = lstmlab.LSTM(7, 45, **variant).double().eval()
    rows = lstm.num_layers * lstm.num_directions
    x = torch.randn(6, 9, 7, dtype=torch.double)
    hx = (torch.randn(rows, 9, lstm.proj_size or 45, dtype=torch.double), torch.randn(rows, 9, 45, dtype=torch.double))
    lengths = torch.tensor([6, 3, 1, 5, 6, 2, 4, 6, 1])
    inputs = pack_padded_sequence(x, lengths, enforce_sorted=False) if packed else x
    results = {}
    for engine in ("reference", "fused"):
        lstm.engine = engine
        with torch.no_grad():
            output, (h_n, c_n) = lstm(inputs, hx)
        results[engine] = (output if isinstance(output, torch.Tensor) else output.data, h_n, c_n)
    for name, actual, expected in zip(("output", "h_n", "c_n"), results["fused"], results["reference"]):
        assert_close(actual, expected, torch.float64, f"{variant} {name}")


@pytest.mark.parametrize("variant", [dict(bidirectional=True, num_layers=2), dict(bidirectional=True, peephole=True),
                                     dict(bidirectional=True, layer_norm=True, coupled=True)],
                         ids=["plain-2-layers", "peephole", "layer_norm-coupled"])
def test_fused_inference_with_trace_matches_reference(variant):
    """Under no_grad both directions of a bidirectional layer write into one (T, B, 2, ·)
    buffer per field (fused.stacked_outputs; with layer norm, each direction's gate buffer
    is stacked once, layers.stack_trace): same values and shapes as the reference."""
    lstm = lstmlab.LSTM(7, 45, **variant).double().eval()
    x = torch.randn(6, 9, 7, dtype=torch.double)
    lengths = torch.tensor([6, 3, 1, 5, 6, 2, 4, 6, 1])
    results = {}
    for engine in ("reference", "fused"):
        lstm.engine = engine
        with torch.no_grad():
            output, states, trace = lstm(pack_padded_sequence(x, lengths, enforce_sorted=False), trace=True)
        results[engine] = output.data, *states, trace
    *expected, expected_trace = results["reference"]
    *actual, actual_trace = results["fused"]
    for name, a, e in zip(("output", "h_n", "c_n"), actual, expected):
        assert_close(a, e, torch.float64, f"{variant} {name}")
    for k, layer in enumerate(expected_trace):
        for name in TRACE_FIELDS:
            assert actual_trace[k][name].shape == layer[name].shape == (6, 9, 2, 45), name
            assert_close(actual_trace[k][name], layer[name], torch.float64, f"{variant} trace[{k}].{name}")


def test_fused_bidirectional_inference_writes_each_direction_into_its_slice():
    """No copy stacks the directions: the last layer's output is its trace's h, and the
    gates of every layer are views of one buffer; the values match the reference."""
    lstm = lstmlab.LSTM(6, 21, num_layers=2, bidirectional=True, peephole=True).eval()
    x = torch.randn(5, 4, 6)
    with torch.no_grad():
        output, _, trace = lstm(x, trace=True)
        lstm.engine = "reference"
        expected, _, expected_trace = lstm(x, trace=True)
    assert output.data_ptr() == trace[-1].h.data_ptr()
    for layer in trace:
        assert len({layer[g].untyped_storage().data_ptr() for g in GATES}) == 1
    assert_close(output, expected, torch.float32, "output")
    for k, layer in enumerate(expected_trace):
        for name in TRACE_FIELDS:
            assert_close(trace[k][name], layer[name], torch.float32, f"trace[{k}].{name}")


def test_fused_zoneout_keeps_zero_fresh_cells_on_padded_steps():
    """The per-step loop's fresh cells (before zoneout; the o peephole's gradient sums
    dz_o * fresh over every step) are 0 on padded steps, not whatever the recycled buffer
    held: with NaN left there, the peephole gradient was NaN now and then. Freed NaN
    buffers of the same size are put in the allocator's way before each call."""
    extension = fused.load_extension()
    steps, batch, hidden = 6, 4, 5
    lengths = torch.tensor([6, 2, 4, 1])
    padded = torch.arange(steps)[:, None] >= lengths[None, :]  # (T, B)
    empty = torch.empty(0, dtype=torch.double)
    state = torch.zeros(batch, hidden, dtype=torch.double)
    keep_c = torch.full((steps, batch, hidden), 0.3, dtype=torch.double)
    for _ in range(10):
        x_gates = torch.randn(steps, batch, 4 * hidden, dtype=torch.double)
        w_hh = torch.randn(4 * hidden, hidden, dtype=torch.double)
        poison = torch.full((steps, batch, hidden), float("nan"), dtype=torch.double)
        del poison
        inputs = ForwardInputs(input_gates=x_gates, x=empty, w_ih=empty, bias=empty, ln_g_ih=empty, h0=state,
                               c0=state, w_hh=w_hh, w_hr=empty, peephole=empty, ln_g_hh=empty, ln_g_c=empty,
                               ln_b_c=empty, keep_c=keep_c, keep_h=empty, lengths=lengths, reverse=False,
                               cell=0, keep_trace=True, out=[], packed_weights=[])
        fresh = ForwardOutputs._make(extension.forward(inputs)).cells_fresh
        assert torch.equal(fresh[padded], torch.zeros_like(fresh[padded]))


@pytest.mark.parametrize("wrong", ["out", "packed"])
def test_fused_forward_rejects_a_buffer_of_the_wrong_shape(wrong):
    """The C++ forward checks a given out buffer instead of writing past it, and a given
    packed weight against the weight it stands for (pack_forward_weight's result)."""
    extension = fused.load_extension()
    steps, batch, hidden = 3, 2, 5
    x = torch.randn(steps, batch, 4)
    w_ih, w_hh, bias = torch.randn(4 * hidden, 4), torch.randn(4 * hidden, hidden), torch.zeros(4 * hidden)
    state, empty = torch.zeros(batch, hidden), torch.empty(0)
    if wrong == "out":
        wrong_rows = torch.empty(steps, batch, 2, hidden + 1)[:, :, 0]
        out, packed, message = [empty, empty, wrong_rows], [], "an out buffer must be"
    else:
        other = extension.pack_forward_weight(torch.randn(4 * hidden, hidden + 1), hidden)
        out, packed, message = [], [other, empty], "a packed weight must be"
    inputs = ForwardInputs(input_gates=empty, x=x, w_ih=w_ih, bias=bias, ln_g_ih=empty, h0=state, c0=state,
                           w_hh=w_hh, w_hr=empty, peephole=empty, ln_g_hh=empty, ln_g_c=empty, ln_b_c=empty,
                           keep_c=empty, keep_h=empty, lengths=torch.empty(0, dtype=torch.int64), reverse=False,
                           cell=0, keep_trace=True, out=out, packed_weights=packed)
    with pytest.raises(RuntimeError, match=message):
        extension.forward(inputs)


@pytest.mark.parametrize("batch", [3, 16], ids=["gemm-first", "input-in-tile"])
def test_fused_inference_packs_changed_weights_again(batch):
    """Without autograd the packed weights are cached per weight; a weight changed in place
    (version counter), given other memory (.data =) or replaced is packed again."""
    torch.manual_seed(0)
    lstm = lstmlab.LSTM(6, 20, engine="fused").eval()
    reference = lstmlab.LSTM(6, 20, engine="reference").eval()
    x = torch.randn(5, batch, 6)

    def check():
        reference.load_state_dict(lstm.state_dict())
        with torch.no_grad():
            out, (h, c), trace = lstm(x, trace=True)
            expected, (h_ref, c_ref), trace_ref = reference(x, trace=True)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(trace[0].g, trace_ref[0].g, atol=1e-5, rtol=1e-4)

    check()
    assert lstm.weight_hh_l0 in fused_extension._packed_forward_weights
    with torch.no_grad():
        lstm.weight_hh_l0.mul_(-0.5)  # in place: version counter
        lstm.weight_ih_l0.add_(0.3)
    check()
    lstm.weight_hh_l0.data = torch.randn(80, 20)  # other memory
    check()
    lstm.weight_ih_l0 = torch.nn.Parameter(torch.randn(80, 6))  # another tensor
    check()
    fused.release_buffers()
    assert len(fused_extension._packed_forward_weights) == 0
    check()


@pytest.mark.slow
@pytest.mark.parametrize("capability", ["avx2", "default"])
def test_fused_engine_on_a_cpu_without_avx512(capability):
    """The AVX2 and the generic builds (narrower vectors, smaller row block) pass the
    reference checks: torch is told the CPU has less (ATEN_CPU_CAPABILITY) in a fresh
    process, which builds and loads the extension for that capability (cached)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability}
    selection = ("test_fused_engine_builds or test_fused_matches_reference_float64 or test_fused_odd_sizes "
                 "or (test_fused_packed_loops_with_a_thread_team and not 3threads) or float32")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", selection],
                            env=env, capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    probe = subprocess.run([sys.executable, "-c", "from lstmlab.engines import fused; print(fused.capability())"],
                           env=env, capture_output=True, text=True)
    assert probe.stdout.strip() == capability.upper(), probe.stdout + probe.stderr


def engine_errors_float32(engine, options, steps=20, batch=64, input_size=40, hidden=96):
    """Max abs error vs the float64 reference, per compared tensor, of float32 `engine` and
    of the float32 reference (the rounding any float32 engine must live with)."""
    lstm = lstmlab.LSTM(input_size, hidden, **options).double()
    rows = lstm.num_layers * lstm.num_directions
    data = [torch.randn(steps, batch, input_size), torch.randn(rows, batch, hidden), torch.randn(rows, batch, hidden)]
    results = {}
    for name, dtype in (("truth", torch.float64), ("reference", torch.float32), (engine, torch.float32)):
        lstm.to(dtype).engine = "reference" if name == "truth" else name
        x, h0, c0 = (t.to(dtype).requires_grad_() for t in data)
        results[name] = run_and_differentiate(lstm, x, (h0, c0), x)
    truth = results["truth"]
    return {key: ((results[engine][key].double() - truth[key]).abs().max().item(),
                  (results["reference"][key].double() - truth[key]).abs().max().item(),
                  truth[key].abs().max().item()) for key in truth}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("variant", [dict(peephole=True), dict(layer_norm=True)], ids=["peephole", "layer_norm"])
def test_fused_float32_as_accurate_as_reference(threads, variant):
    """float32 rounding grows with T·B terms in the weight gradients, so the bar is the
    float32 reference's own error against float64 (with a floor from the tolerance table)."""
    with torch_threads(threads):
        errors = engine_errors_float32("fused", dict(num_layers=2, **variant))
    floor = tolerance(torch.float32)["atol"]
    for key, (engine_error, reference_error, scale) in errors.items():
        assert engine_error <= max(4 * reference_error, floor * max(1.0, scale)), (key, engine_error, reference_error)


def test_fused_gradcheck_through_trace():
    lstm = lstmlab.LSTM(3, 4, peephole=True, layer_norm=True, proj_size=2, bidirectional=True, engine="fused").double()
    x = torch.randn(4, 2, 3, dtype=torch.double, requires_grad=True)
    h0 = torch.randn(2, 2, 2, dtype=torch.double, requires_grad=True)
    c0 = torch.randn(2, 2, 4, dtype=torch.double, requires_grad=True)

    def outputs(x, h0, c0):
        output, (h_n, c_n), trace = lstm(x, (h0, c0), trace=True)
        return output, h_n, c_n, trace[0].i, trace[0].c, trace[0].o

    assert torch.autograd.gradcheck(outputs, (x, h0, c0))


def test_fused_weight_drop_uses_one_mask_for_kernel_and_trace():
    lstm = lstmlab.LSTM(3, 4, peephole=True, weight_drop=0.5).double().train()
    x = torch.randn(6, 2, 3, dtype=torch.double)
    output, _, trace = lstm(x, trace=True)
    layer = trace[0]
    # The trace is the run's own: c and h follow from its gates whatever mask was drawn.
    c_prev = torch.cat((torch.zeros_like(layer.c[:1]), layer.c[:-1]))
    assert_close(layer.c, layer.f * c_prev + layer.i * layer.g, torch.float64, "c recurrence")
    assert_close(output, (layer.o * torch.tanh(layer.c)).squeeze(2), torch.float64, "h = o tanh(c)")


def test_auto_picks_fused_for_variants_and_trace_and_native_without():
    assert lstmlab.engines.select("auto", lstmlab.LSTM(2, 3).spec, need_trace=False)[0] == "native"
    assert lstmlab.engines.select("auto", lstmlab.LSTM(2, 3).spec, need_trace=True)[0] == "fused"
    assert lstmlab.engines.select("auto", lstmlab.LSTM(2, 3, peephole=True).spec, need_trace=False)[0] == "fused"
    assert lstmlab.engines.select("auto", lstmlab.LSTM(2, 3, layer_norm=True).spec, need_trace=False)[0] == "fused"
    assert lstmlab.engines.select("auto", lstmlab.LSTM(2, 3, zoneout=0.1).spec, need_trace=False)[0] == "fused"


@pytest.mark.parametrize("options", [dict(), dict(num_layers=2, proj_size=3), dict(num_layers=2, layer_norm=True, peephole=True),
                                     dict(coupled=True, layer_norm=True)],
                         ids=["plain", "2-layer-proj", "2-layer-layer_norm-peephole", "coupled-layer_norm"])
def test_streaming_step_without_autograd_equals_sequence(options):
    """`step` under no_grad runs the fused engine's C++ step: same numbers as the sequence call."""
    lstm = lstmlab.LSTM(5, 7, **options).double().eval()
    x = torch.randn(6, 3, 5, dtype=torch.double)
    h0 = torch.randn(lstm.num_layers, 3, lstm.proj_size or 7, dtype=torch.double)
    c0 = torch.randn(lstm.num_layers, 3, 7, dtype=torch.double)
    output, (h_n, c_n) = lstm(x, (h0, c0))
    state, steps = (h0, c0), []
    with torch.no_grad():
        for x_t in x:
            y_t, state = lstm.step(x_t, state)
            steps.append(y_t)
    assert_close(torch.stack(steps), output, torch.float64, "outputs")
    assert_close(state[0], h_n, torch.float64, "h_n")
    assert_close(state[1], c_n, torch.float64, "c_n")
    assert torch.equal(h0, h0.clone()) and h0.data_ptr() != state[0].data_ptr()  # caller's state untouched


def test_streaming_step_unbatched_and_with_autograd():
    lstm = lstmlab.LSTM(4, 6, num_layers=2).double().eval()
    x = torch.randn(4, dtype=torch.double)
    with torch.no_grad():
        y_fast, (h_fast, c_fast) = lstm.step(x)
    y, (h, c) = lstm.step(x)  # autograd on: the differentiable path
    assert y.requires_grad and y_fast.shape == (6,) and h_fast.shape == (2, 6)
    assert_close(y_fast, y.detach(), torch.float64, "y")
    assert_close(c_fast, c.detach(), torch.float64, "c")


def test_bench_command_runs_the_engine_benchmark(tmp_path):
    from lstmlab.cli import main

    out = tmp_path / "engine.md"
    assert main(["bench", "engine", "--quick", "--rounds", "1", "--out", str(out)]) == 0
    table = out.read_text()
    assert "torch.nn.LSTM ms" in table and "streaming" in table and "(30, 1, 8, 16)" in table


def test_auto_keeps_the_fused_engine_to_cpu_float32_and_float64():
    spec = lstmlab.LSTM(2, 3).spec
    half = torch.zeros(1, dtype=torch.bfloat16)
    assert lstmlab.engines.select("auto", spec, need_trace=True, like=half)[0] == "native"
    meta = torch.zeros(1, device="meta")
    name, reason = lstmlab.engines.select("auto", lstmlab.LSTM(2, 3, peephole=True).spec, need_trace=False, like=meta)
    assert name == "reference" and "CPU" in reason
    with pytest.raises(ValueError, match="expected|fused engine computes in float32 or float64"):
        lstmlab.LSTM(2, 3, engine="fused", dtype=torch.bfloat16)


def test_streaming_step_without_autograd_in_bfloat16_uses_a_path_that_can():
    lstm = lstmlab.LSTM(3, 4).to(torch.bfloat16).eval()
    x = torch.randn(2, 3, dtype=torch.bfloat16)
    with torch.no_grad():
        y, (h, c) = lstm.step(x)
        output, _ = lstm(x.unsqueeze(0))
    assert y.dtype == torch.bfloat16 and torch.equal(y, output[0])


def test_fused_buffer_pool_reuses_freed_buffers_and_never_live_ones():
    """Big buffers return to the pool when their tensors die and serve the next call of the
    same shape; a buffer still held (here, a kept trace) is never handed out again."""
    fused.release_buffers()
    lstm = lstmlab.LSTM(8, 64, engine="fused")
    x = torch.randn(40, 32, 8)  # gates (40, 32, 256) float32: 1.3 MB, above the pool's minimum
    with torch.no_grad():
        _, _, kept = lstm(x, trace=True)
        snapshot = [t.clone() for _, t in kept[0].items()]
        assert fused.buffer_pool_bytes() == 0  # everything the call made is still in use
        lstm(x, trace=True)  # its buffers die at once and go to the pool
        cached = fused.buffer_pool_bytes()
        assert cached > 0
        again = lstm(x * 2, trace=True)  # takes them back
        assert fused.buffer_pool_bytes() < cached
    for (_, value), before in zip(kept[0].items(), snapshot):
        assert torch.equal(value, before)  # the live trace was not overwritten
    del again
    assert "MiB held" in lstmlab.engines.describe()  # lstmlab info reports the pool
    assert fused.release_buffers() > 0
    assert fused.buffer_pool_bytes() == 0


def test_fused_buffer_pool_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("LSTMLAB_BUFFER_POOL_MB", "0.5")
    assert fused.buffer_pool_limit() == 2 ** 19
    monkeypatch.setenv("LSTMLAB_BUFFER_POOL_MB", "lots")
    with pytest.raises(ValueError, match="LSTMLAB_BUFFER_POOL_MB.*'lots'"):
        fused.buffer_pool_limit()
