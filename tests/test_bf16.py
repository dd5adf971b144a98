"""bfloat16 autocast: the fused engine's GEMMs over all steps take bfloat16 operands while
its results stay float32 and close to the float32 engine's; the trainer's
``precision="bfloat16"`` runs the training forward under autocast and keeps the weights
float32. Outside autocast nothing changes (the float64 comparisons of test_engines.py).
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstmlab
from lstmlab.engines import fused_direction
from lstmlab.engines.fused_direction import _mm, _weight_gradient, bf16_autocast
from lstmlab.models.acoustic import AcousticModel, AcousticModelConfig
from lstmlab.train import LossOutput, Trainer, TrainConfig, autocast

BF16 = dict(device_type="cpu", dtype=torch.bfloat16)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def test_bf16_autocast_is_on_only_inside_bfloat16_autocast_for_float32():
    x = torch.zeros(2, 3)
    assert not bf16_autocast(x)
    with torch.autocast(**BF16):
        assert bf16_autocast(x)
        assert not bf16_autocast(x.double())
    with torch.autocast("cpu", dtype=torch.float16):
        assert not bf16_autocast(x)


def test_bf16_products_round_the_operands_and_write_float32():
    torch.manual_seed(0)
    a, b = torch.randn(64, 96), torch.randn(96, 80)
    exact = a.double() @ b.double()
    out = _mm(a, b, torch.empty(64, 80), bf16=True)
    assert out.dtype == torch.float32
    rounded = a.bfloat16().double() @ b.bfloat16().double()
    assert relative(out.double(), rounded) < 4e-3  # the product of the rounded operands, itself rounded
    assert 1e-4 < relative(out.double(), exact) < 2e-2  # bfloat16, not float32
    d, inputs = torch.randn(30, 4, 40), torch.randn(30, 4, 300)  # the large-gradient orientation
    first = (torch.randn(4, 40), torch.randn(4, 300))
    expected = d.flatten(0, 1).T @ inputs.flatten(0, 1) + first[0].T @ first[1]
    gradient = _weight_gradient(d, inputs, first=first, bf16=True)
    assert gradient.dtype == torch.float32 and 1e-4 < relative(gradient, expected) < 2e-2


@pytest.mark.parametrize("options,tolerance", [(dict(), 3e-2), (dict(layer_norm=True), 8e-2),
                                               (dict(peephole=True), 3e-2), (dict(proj_size=8), 3e-2)],
                         ids=["plain", "layer_norm", "peephole", "projection"])
def test_fused_engine_under_bf16_autocast_is_float32_and_close_to_float32(options, tolerance):
    """Outputs and every gradient within a few % of the float32 engine's, and not equal to
    them (the bfloat16 GEMMs ran). Layer norm divides by the spread of 32 pre-activations,
    which enlarges bfloat16's rounding (~0.4 %) most: its gradients differ by ~5 %. Short
    sequences: a freshly initialised layer-normalised LSTM turns a 0.3 % change of its
    input into ~8 % after 50 steps (in float32 too)."""
    torch.manual_seed(0)
    lstm = lstmlab.LSTM(48, 32, num_layers=2, bidirectional=True, batch_first=True, engine="fused", **options)
    x = torch.randn(16, 6, 48)
    lengths = torch.tensor([6, 5, 6, 3, 6, 6, 2, 6, 4, 6, 6, 1, 6, 5, 6, 6])

    def run(bf16: bool):
        lstm.zero_grad()
        inputs = x.clone().requires_grad_()
        with torch.autocast(**BF16, enabled=bf16):
            packed = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
            output, (h_n, c_n) = lstm(packed)
        (output.data.square().sum() + h_n.sum() + c_n.sum()).backward()
        return [output.data, h_n, c_n, inputs.grad] + [p.grad.clone() for p in lstm.parameters()]

    exact, low = run(False), run(True)
    assert all(t.dtype == torch.float32 for t in low)
    errors = [relative(a, b) for a, b in zip(low, exact)]
    assert max(errors) < tolerance, errors
    assert max(errors) > 1e-4, errors


def test_bf16_flag_reaches_the_backward(monkeypatch):
    """The backward's GEMMs follow the forward's precision, although loss.backward() runs
    outside the autocast context."""
    seen = []
    original = fused_direction._mm
    monkeypatch.setattr(fused_direction, "_mm", lambda a, b, out, bf16: seen.append(bf16) or original(a, b, out, bf16))
    lstm = lstmlab.LSTM(300, 300, engine="fused", layer_norm=True)  # W_ih too large for the loop's tile
    x = torch.randn(5, 20, 300, requires_grad=True)
    with torch.autocast(**BF16):
        output, _ = lstm(x)
    forward_calls = len(seen)
    output.sum().backward()
    assert forward_calls >= 1 and len(seen) > forward_calls  # forward and backward GEMMs
    assert all(seen)
    seen.clear()
    lstm(x)[0].sum().backward()
    assert seen and not any(seen)


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_bf16_flag_reaches_the_backward_of_the_compiled_op(monkeypatch, backend):
    """Under torch.compile the fused loop is a custom op whose backward is another op: the
    forward's precision reaches it through the flags set up at the forward."""
    seen = []
    original = fused_direction._mm
    monkeypatch.setattr(fused_direction, "_mm", lambda a, b, out, bf16: seen.append(bf16) or original(a, b, out, bf16))
    torch.manual_seed(0)
    lstm = lstmlab.LSTM(300, 300, engine="fused", layer_norm=True)
    x = torch.randn(5, 20, 300, requires_grad=True)
    torch._dynamo.reset()
    compiled = torch.compile(lstm, fullgraph=True, backend=backend)
    with torch.autocast(**BF16):
        output, _ = compiled(x)
    forward_calls = len(seen)
    output.sum().backward()
    assert forward_calls >= 1 and len(seen) > forward_calls
    assert all(seen), seen
    eager_grad = x.grad.clone()
    x.grad = None
    with torch.autocast(**BF16):
        reference, _ = lstm(x)
    reference.sum().backward()
    torch.testing.assert_close(output, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(eager_grad, x.grad, rtol=1e-4, atol=1e-4)


def test_acoustic_model_gives_float32_log_probabilities_under_autocast():
    model = AcousticModel(AcousticModelConfig(hidden_size=16, num_layers=1, variants="layer_norm"), 80, 29)
    with torch.autocast(**BF16):
        log_probs, _ = model(torch.randn(2, 30, 80), torch.tensor([30, 21]))
    assert log_probs.dtype == torch.float32
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(2, 10), atol=1e-5)


def test_trainer_precision_bfloat16_trains_float32_weights(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    x = torch.randn(64, 8)
    y = x.sum(1, keepdim=True)
    dtypes = []

    def loss_fn(net, batch):
        prediction = net(batch[0])
        dtypes.append(prediction.dtype)
        loss = (prediction.float() - batch[1]).square().mean()
        return LossOutput(loss, len(batch[0]), loss.item())

    def batches():
        while True:
            yield x, y

    before = loss_fn(model, (x, y)).data_loss
    trainer = Trainer(model, batches(), loss_fn, TrainConfig(max_steps=60, lr=1e-2, precision="bfloat16",
                                                             progress=False))
    trainer.fit()
    assert dtypes[-1] == torch.bfloat16  # the forward ran under autocast
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert loss_fn(model, (x, y)).data_loss < 0.2 * before


def test_autocast_refuses_an_unknown_precision():
    with pytest.raises(ValueError, match="precision: expected 'float32' or 'bfloat16', got 'half'"):
        autocast(torch.nn.Linear(1, 1), "half")


@pytest.mark.parametrize("engine", ["native", "fused"])
def test_states_in_the_autocast_dtype_are_taken_under_autocast(engine):
    """Under autocast torch's own LSTM (the native engine) returns bfloat16 states; carried
    into the next batch (the LM recipe does so) they are taken in the weights' dtype there,
    and refused outside autocast as before."""
    lstm = lstmlab.LSTM(8, 16, engine=engine)
    x = torch.randn(5, 3, 8)
    with torch.autocast(**BF16):
        _, state = lstm(x)
        low = tuple(t.bfloat16() for t in state)
        output, _ = lstm(x.bfloat16(), low)
    assert output.dtype == (torch.bfloat16 if engine == "native" else torch.float32)
    refused = r"h_0: expected dtype torch.float32 \(the weights' dtype\), got torch.bfloat16"
    with pytest.raises(TypeError, match=refused):
        lstm(x, low)
