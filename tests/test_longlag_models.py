"""Models with matched sizes, checkpoints that the inspection tool can load, and reproducible training."""

import dataclasses

import pytest
import torch

import lstmlab
from lstmlab.checkpoint import CheckpointError, save_checkpoint
from lstmlab.models.longlag import LongLagModel, ModelConfig, count_parameters, formula_parameters
from lstmlab.recipes.longlag.contenders import model_configs, parse_lstm_options
from lstmlab.recipes.longlag.experiment import longlag_train_config, train_one
from lstmlab.recipes.longlag.task_registry import make_task
from tolerances import assert_close


@pytest.mark.parametrize("name, length", [("adding", 100), ("noise-free", 100), ("temporal-order-6b", None), ("copy", 50)])
@pytest.mark.parametrize("hidden", [16, 32])
def test_parameter_counts_are_matched_within_a_few_percent(name, length, hidden):
    task = make_task(name, length)
    configs = model_configs(task, ["lstm", "gru", "rnn"], hidden, {})
    counts = {c.kind: count_parameters(LongLagModel(c)) for c in configs}
    for kind in ("gru", "rnn"):
        assert abs(counts[kind] - counts["lstm"]) / counts["lstm"] < 0.05, counts
    assert configs[2].hidden_size > configs[1].hidden_size > configs[0].hidden_size


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("shortcut", [False, True])
def test_parameter_formula_matches_the_modules(kind, shortcut):
    config = ModelConfig(kind, 5, 7, 3, input_to_output=shortcut)
    assert count_parameters(LongLagModel(config)) == formula_parameters(kind, 5, 7, 3, shortcut)


def test_input_to_output_shortcut_adds_a_linear_path():
    model = LongLagModel(ModelConfig("rnn", 4, 6, 4, input_to_output=True))
    inputs = torch.randn(5, 2, 4)
    without = model.readout(model.recurrent(inputs)[0])
    assert_close(model(inputs) - without, inputs @ model.shortcut.weight.T, "float32 closed form",
                 "output minus the recurrent path vs the shortcut")


def test_lstm_is_lstmlab_and_variants_reach_it():
    model = LongLagModel(ModelConfig("lstm", 2, 8, 1, {"peephole": True}))
    assert isinstance(model.lstm, lstmlab.LSTM) and "peephole" in model.lstm.spec.variant_names()
    with pytest.raises(AttributeError, match="lstm"):
        LongLagModel(ModelConfig("gru", 2, 8, 1)).lstm
    with pytest.raises(ValueError, match="lstm only"):
        ModelConfig("rnn", 2, 8, 1, {"peephole": True})


def test_chrono_init_sets_lstm_forget_and_gru_update_biases():
    lstm = LongLagModel(ModelConfig("lstm", 2, 16, 1, {}, chrono_init=100)).lstm
    forget_bias = lstm.bias_ih_l0[16:32] + lstm.bias_hh_l0[16:32]
    assert forget_bias.min() >= 0 and forget_bias.max() <= torch.log(torch.tensor(99.0)) + 1e-5
    gru = LongLagModel(ModelConfig("gru", 2, 16, 1, {}, chrono_init=100)).recurrent
    update_bias = gru.bias_ih_l0[16:32] + gru.bias_hh_l0[16:32]
    assert update_bias.min() >= 0 and update_bias.max() <= torch.log(torch.tensor(99.0)) + 1e-5
    assert update_bias.std() > 0.3, "time scales are spread, not one constant"


def test_parse_lstm_options():
    assert parse_lstm_options("layer_norm, peephole,forget_bias=1") == {"layer_norm": True, "peephole": True, "forget_bias": 1.0}
    assert parse_lstm_options("") == {}
    with pytest.raises(ValueError, match="unknown or malformed lstm option 'bogus'"):
        parse_lstm_options("bogus")


def test_run_folder_round_trip_gives_the_same_model_and_a_working_task(tmp_path, single_thread):
    task = make_task("temporal-order-6a")
    config = model_configs(task, ["lstm"], 8, {}, chrono_init=110)[0]
    train = longlag_train_config(max_steps=3, eval_interval=2)
    _, model = train_one(task, config, 0, train, eval_size=16, out_dir=tmp_path / "run")
    run = lstmlab.load(tmp_path / "run" / "latest.pt")
    assert run.recipe == "longlag" and isinstance(run.model.lstm, lstmlab.LSTM) and run.task.label == task.label
    batch = run.task.sample(4, torch.Generator().manual_seed(0))
    assert torch.equal(model(batch.inputs), run.model(batch.inputs))
    output, (h_n, c_n), trace = run.model.lstm(batch.inputs, trace=True)
    assert trace[0].c.shape == (batch.inputs.shape[0], 4, 1, 8)


def test_checkpoints_of_the_earlier_layout_still_load(tmp_path):
    """Long-lag files written before recipes ({"kind": "longlag", ...}) load as runs."""
    task = make_task("adding", 20)
    torch.manual_seed(0)
    model = LongLagModel(ModelConfig("lstm", task.input_size, 6, task.output_size))
    old = {"kind": "longlag", "task": task.label, "task_config": task.config(),
           "model_config": dataclasses.asdict(model.config), "state_dict": model.state_dict(), "result": {"seed": 0}}
    run = lstmlab.load(save_checkpoint(old, tmp_path / "adding-T20-lstm-seed0.pt"))
    batch = task.sample(3, torch.Generator().manual_seed(1))
    assert run.recipe == "longlag" and torch.equal(run.model(batch.inputs), model(batch.inputs))
    assert run.metadata["result"] == {"seed": 0}


def test_loading_something_else_is_a_clear_error(tmp_path):
    path = save_checkpoint({"kind": "lm", "state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an lstmlab run checkpoint"):
        lstmlab.load(path)


def test_training_is_reproducible_and_learns_a_short_lag(single_thread):  # as the runner trains
    task = make_task("temporal-order-6a", 20)
    config = model_configs(task, ["lstm"], 16, {}, chrono_init=task.horizon())[0]
    train = longlag_train_config(max_steps=400, eval_interval=50, budget=60)
    first, _ = train_one(task, config, 0, train, eval_size=256)
    second, _ = train_one(task, config, 0, train, eval_size=256)
    assert first.history == second.history, "same seed, same run"
    assert first.success and first.stopped_by == "success"
    assert first.sequences_to_success == first.steps * 32
    other, _ = train_one(task, config, 1, train, eval_size=256)
    assert other.history != first.history
