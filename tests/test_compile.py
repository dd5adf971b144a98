"""torch.compile and torch.export of lstmlab.LSTM: the fused engine as torch.library custom ops.

- the custom ops pass torch.library.opcheck (schema, fake implementation against the
  real one, autograd registration, AOT dispatch) for every cell the fused engine runs;
- the op path gives FusedDirection's outputs and gradients exactly (eager, forced);
- torch.compile(fullgraph=True) gives eager's outputs, states, trace and gradients
  (aot_eager for the variant matrix, inductor for a plain and a layer-norm LSTM);
- torch.export.export with dynamic time and batch axes runs at other lengths and batches.
"""

from __future__ import annotations

import pytest
import torch
from variants import FUSED_VARIANTS, variant_id

import lstmlab
from lstmlab.engines import fused, fused_ops

pytestmark = [
    pytest.mark.usefixtures("single_thread"),
    pytest.mark.skipif(fused.build_error() is not None, reason="the fused engine could not be built here"),
]

# Structure crossed with the variants: projection, bidirectional and packed lengths.
STRUCTURES = {"one-layer": dict(), "two-layer-bidirectional": dict(num_layers=2, bidirectional=True),
              "projection": dict(proj_size=3)}
# The slower checks (opcheck, compiling) run every variant on two bidirectional layers,
# and projection (a loop of its own in C++) with the plain cell and with zoneout.
SLOW_CASES = [(options, STRUCTURES["two-layer-bidirectional"]) for options in FUSED_VARIANTS] + [
    (FUSED_VARIANTS[0], STRUCTURES["projection"]), (FUSED_VARIANTS[-1], STRUCTURES["projection"])]
SLOW_IDS = [f"{variant_id(o)}-{'projection' if 'proj_size' in s else 'bidirectional'}" for o, s in SLOW_CASES]


def _module(options: dict, structure: dict, training: bool = True) -> lstmlab.LSTM:
    torch.manual_seed(1)
    module = lstmlab.LSTM(5, 6, engine="fused", **options, **structure).double()
    return module.train(training)


def _inputs(steps: int = 7, rows: int = 3) -> torch.Tensor:
    return torch.randn(steps, rows, 5, dtype=torch.float64, requires_grad=True)


def _run(module, x, compiled=None, trace=False, seed=2):
    """Outputs and gradients (x's and every parameter's) of one forward and backward."""
    torch.manual_seed(seed)  # zoneout's keep weights: the same draws in both runs
    outputs = (module if compiled is None else compiled)(x, trace=trace)
    y, (h_n, c_n) = outputs[:2]
    loss = (y * torch.linspace(-1, 1, y.shape[-1], dtype=y.dtype)).sum() + h_n.pow(2).sum() + c_n.sin().sum()
    if trace:
        layer = outputs[2].layers[0]
        loss = loss + layer.f.sum() + layer.c.pow(2).mean()
    parameters = [p for p in module.parameters()]
    grads = torch.autograd.grad(loss, [x, *parameters])
    values = [y, h_n, c_n] + ([t for layer in outputs[2].layers for _, t in layer.items()] if trace else [])
    return [v.detach() for v in values], grads


def _assert_same(first, second, exact: bool):
    for a, b in zip(first, second, strict=True):
        if exact:
            assert torch.equal(a, b)
        else:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@pytest.fixture
def op_path(monkeypatch):
    """Every fused call goes through the custom ops, eagerly; yields the ops' recorded arguments."""
    recorded = []
    real = fused_ops.fused_direction

    def recording(*args):
        recorded.append(args)
        return real(*args)

    monkeypatch.setattr(fused_ops, "tracing", lambda x: True)
    monkeypatch.setattr(fused_ops, "fused_direction", recording)
    yield recorded


@pytest.mark.parametrize("structure", list(STRUCTURES.values()), ids=list(STRUCTURES))
@pytest.mark.parametrize("options", FUSED_VARIANTS, ids=[variant_id(o) for o in FUSED_VARIANTS])
def test_op_path_equals_the_autograd_function(options, structure, op_path):
    """The custom ops run the same C++ forward and backward: bit-identical results."""
    module, x = _module(options, structure), _inputs()
    through_ops = _run(module, x)
    assert op_path, "the custom op was not called"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fused_ops, "tracing", lambda x: False)
        direct = _run(module, x)
    _assert_same(through_ops[0], direct[0], exact=True)
    _assert_same(through_ops[1], direct[1], exact=True)


@pytest.mark.parametrize(("options", "structure"), SLOW_CASES, ids=SLOW_IDS)
def test_custom_ops_pass_opcheck(options, structure, op_path):
    """Schema, fake implementation (shapes, strides) against the real one, autograd
    registration and AOT dispatch, for the forward op; the backward op through it."""
    module = _module(options, structure)
    lengths = torch.tensor([7, 4, 2])
    packed = torch.nn.utils.rnn.pack_padded_sequence(_inputs(), lengths, enforce_sorted=False)
    _run(module, _inputs())
    module(packed)
    for args in op_path[:1] + op_path[-1:]:  # a first direction without lengths; a last one with
        torch.library.opcheck(torch.ops.lstmlab.fused_direction.default, args)


# The variants compiled with aot_eager (Dynamo's capture and AOT autograd, no code
# generation): all of the fused engine's cells.
@pytest.mark.parametrize(("options", "structure"), SLOW_CASES, ids=SLOW_IDS)
def test_compiled_training_matches_eager(options, structure):
    module, x = _module(options, structure), _inputs()
    torch._dynamo.reset()
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    eager = _run(module, x, trace=True)
    graph = _run(module, x, compiled, trace=True)
    _assert_same(graph[0], eager[0], exact=False)
    _assert_same(graph[1], eager[1], exact=False)


@pytest.mark.parametrize("options", [dict(), dict(layer_norm=True, peephole=True)], ids=["plain", "layer_norm-peephole"])
def test_inductor_training_matches_eager(options):
    """The default backend, float32, a 2-layer LSTM: outputs and gradients as eager, and
    the compiled graph calls lstmlab's op (engine "auto" picks it under compile)."""
    torch.manual_seed(0)
    module = lstmlab.LSTM(8, 16, num_layers=2, **options)
    x = torch.randn(9, 4, 8, requires_grad=True)
    torch._dynamo.reset()
    compiled = torch.compile(module, fullgraph=True)
    eager = _run(module, x)
    graph = _run(module, x, compiled)
    for a, b in zip(graph[0] + list(graph[1]), eager[0] + list(eager[1]), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    again = _run(module, torch.randn(13, 2, 8, requires_grad=True), compiled)  # another shape: recompiles or is dynamic
    assert again[0][0].shape == (13, 2, 16)


def test_auto_picks_the_fused_op_under_compile():
    module = lstmlab.LSTM(4, 4)
    x = torch.randn(3, 2, 4)
    graph = torch.export.export(module.eval(), (x,)).graph
    targets = {str(node.target) for node in graph.nodes}
    assert "lstmlab.fused_direction.default" in targets
    assert lstmlab.engines.select("auto", module.spec, need_trace=False, like=x)[0] == "native"  # eager: oneDNN


@pytest.mark.parametrize("structure", list(STRUCTURES.values()), ids=list(STRUCTURES))
@pytest.mark.parametrize("options", [dict(), dict(peephole=True, layer_norm=True, coupled=True)],
                         ids=["plain", "peephole-layer_norm-coupled"])
def test_export_with_dynamic_axes_runs_at_other_shapes(options, structure):
    module = _module(options, structure, training=False)
    steps, rows = torch.export.Dim("steps"), torch.export.Dim("rows")
    program = torch.export.export(module, (_inputs().detach(),), dynamic_shapes=({0: steps, 1: rows},))
    for shape in ((1, 2), (7, 3), (28, 5)):
        x = _inputs(*shape).detach()
        y, (h_n, c_n) = program.module()(x)
        y0, (h0, c0) = module(x)
        _assert_same([y, h_n, c_n], [y0, h0, c0], exact=False)


@pytest.mark.parametrize("options", [dict(peephole=True), dict(layer_norm=True, coupled=True)],
                         ids=["peephole", "layer_norm-coupled"])
def test_jit_trace_records_the_fused_op_and_runs_at_other_lengths(options, tmp_path):
    """torch.jit.trace sees the custom op (not an opaque C++ call frozen into the graph);
    the traced module saves, loads and runs at other lengths and batches."""
    module = lstmlab.LSTM(5, 6, num_layers=2, **options).eval()
    traced = torch.jit.trace(module, (torch.randn(4, 2, 5),))
    assert "lstmlab::fused_direction" in str(traced.graph)
    torch.jit.save(traced, tmp_path / "lstm.pt")
    loaded = torch.jit.load(tmp_path / "lstm.pt")
    x = torch.randn(11, 3, 5)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)[0], module(x)[0], rtol=0, atol=1e-6)


def test_jit_script_is_refused_with_torchscripts_own_error():
    """Documented in the README: TorchScript (deprecated in torch 2.13) cannot script
    forward's keyword-only `trace` argument; torch.jit.trace, torch.compile, torch.export
    and ONNX export are the supported ways."""
    with pytest.raises(Exception, match="(?i)keyword|argument|support"):
        torch.jit.script(lstmlab.LSTM(3, 4))


def test_compiled_inference_sees_weights_changed_in_place():
    """Without autograd the op keeps packed copies of the weights between calls; an
    optimiser-style in-place update must reach the next compiled call."""
    torch.manual_seed(0)
    module = lstmlab.LSTM(6, 8, num_layers=2, peephole=True).eval()
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    x = torch.randn(5, 64, 6)  # rows enough for the loop to compute the input share in its tile
    with torch.no_grad():
        before = compiled(x)[0]
        for parameter in module.parameters():
            parameter.mul_(0.5)
        after = compiled(x)[0]
        torch.testing.assert_close(after, module(x)[0], rtol=0, atol=1e-6)
    assert not torch.allclose(before, after)
