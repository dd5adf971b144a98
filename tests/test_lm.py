"""Language models: the model, its regularisers, loading, generation, resume, the CLI."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch

import lstmlab
from lstmlab.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lstmlab.cli import main
from lstmlab.config import apply_overrides
from lstmlab.metrics import read_log
from lstmlab.models.activation_regularization import activation_regularization, temporal_activation_regularization
from lstmlab.models.embedding_dropout import embedding_dropout
from lstmlab.models.lm import LanguageModel, LMModelConfig
from lstmlab.models.locked_dropout import LockedDropout
from lstmlab.recipes.lm.config import LMConfig
from lstmlab.recipes.lm.generation import generate
from lstmlab.recipes.lm.task import train_language_model
from tolerances import assert_close


pytestmark = pytest.mark.usefixtures("single_thread")  # small models: see conftest


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A small text of random lines over a 19-word vocabulary (~36 k characters)."""
    rng = random.Random(0)
    words = "to be or not that is the question whether tis nobler in mind suffer slings arrows outrageous fortune".split()
    path = tmp_path_factory.mktemp("corpus") / "words.txt"
    path.write_text("\n".join(" ".join(rng.choice(words) for _ in range(8)) for _ in range(800)))
    return path


def tiny_config(data_path, **overrides) -> LMConfig:
    settings = {"data.path": str(data_path), "hidden_size": 32, "num_layers": 1, "embedding_size": 16,
                "batch_size": 8, "bptt": 20, "max_steps": 30, "log_interval": 1, "progress": False}
    return apply_overrides(LMConfig(), {**settings, **overrides})


@pytest.fixture(scope="module")
def trained_run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train_language_model(tiny_config(corpus, max_steps=40, eval_interval=20), out)
    return out


# ------------------------------------------------------------------------- the model
def test_forward_step_and_trace_agree():
    model = LanguageModel(LMModelConfig(hidden_size=24, num_layers=2, embedding_size=8, projection_size=8,
                                        tie_weights=True), vocab_size=11).eval()
    tokens = torch.randint(0, 11, (9, 3))
    logits, (h, c) = model(tokens)
    assert logits.shape == (9, 3, 11) and h.shape == (2, 3, 24)
    traced_logits, _, trace = model(tokens, trace=True)
    assert isinstance(trace, lstmlab.Trace) and len(trace) == 2 and trace[1].f.shape == (9, 3, 1, 24)
    torch.testing.assert_close(traced_logits, logits)
    state, stepped = None, []
    for t in range(9):
        step_logits, state = model.step(tokens[t], state)
        stepped.append(step_logits)
    assert_close(torch.stack(stepped), logits, torch.float32, "logits stepped vs the sequence")
    assert model.decoder.weight is model.embedding.weight


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_baseline_cells_match_the_lstm_parameter_budget(cell):
    lstm = LanguageModel(LMModelConfig(hidden_size=128), vocab_size=80)
    baseline = LanguageModel(LMModelConfig(hidden_size=128, cell=cell), vocab_size=80)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert baseline.lstm is None and baseline.hidden_size > 128
    assert abs(count(baseline) - count(lstm)) / count(lstm) < 0.01
    with pytest.raises(ValueError, match="trace=True needs cell='lstm'"):
        baseline(torch.zeros(2, 1, dtype=torch.long), trace=True)
    with pytest.raises(ValueError, match="supports none of the LSTM options"):
        LanguageModel(LMModelConfig(cell=cell, weight_drop=0.5), vocab_size=10)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_locked_dropout_between_layers_runs_the_stack_layer_by_layer(cell):
    config = LMModelConfig(cell=cell, hidden_size=16, embedding_size=8, num_layers=3, dropout_between_layers=0.5)
    model = LanguageModel(config, vocab_size=10)
    plain = LanguageModel(LMModelConfig(cell=cell, hidden_size=16, embedding_size=8, num_layers=3), vocab_size=10)
    assert model.state_dict().keys() == plain.state_dict().keys()  # the twins own no parameters
    tokens = torch.randint(0, 10, (6, 4))
    expected, expected_state = model.eval()(tokens)
    model.train()
    model.layer_by_layer.dropout.p = 0.0  # without dropout, layer by layer == the whole stack
    got, got_state = model(tokens)
    assert_close(got, expected, "float32 rerouted", "output layer by layer vs the whole stack")
    for a, b in zip(got_state if cell == "lstm" else [got_state], expected_state if cell == "lstm" else [expected_state]):
        assert_close(a, b, "float32 rerouted", "state layer by layer vs the whole stack")
    model.layer_by_layer.dropout.p = 0.5
    dropped, _ = model(tokens)
    dropped.sum().backward()
    assert not torch.allclose(dropped, expected)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.recurrent.parameters())


def test_locked_dropout_uses_one_mask_over_time():
    dropout = LockedDropout(0.5).train()
    out = dropout(torch.ones(6, 4, 10))
    assert torch.equal(out[0], out[5]) and (out == 0).any() and set(out.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(dropout.eval()(torch.ones(3, 2, 2)), torch.ones(3, 2, 2))


def test_embedding_dropout_removes_whole_tokens():
    embedding = torch.nn.Embedding(50, 6)
    tokens = torch.arange(50).repeat(3, 1).t()  # every token in every column
    dropped = embedding_dropout(embedding, tokens, 0.5, training=True)  # (50, 3, 6)
    zero_rows = (dropped == 0).all(-1)  # (50, 3)
    assert zero_rows.any() and torch.equal(zero_rows[:, 0], zero_rows[:, 2])  # same token, same fate


def test_activation_regularizers():
    output = torch.tensor([[[1.0, 2.0]], [[3.0, 2.0]]])  # (T=2, B=1, H=2)
    assert activation_regularization(output, 2.0).item() == pytest.approx(2.0 * (1 + 4 + 9 + 4) / 4)
    assert temporal_activation_regularization(output, 1.0).item() == pytest.approx((4 + 0) / 2)
    assert activation_regularization(output, 0.0).item() == 0.0


def test_awd_model_trains(corpus, tmp_path):
    config = tiny_config(corpus, dropout_embedding=0.1, dropout_input=0.2, dropout_output=0.2, weight_drop=0.3,
                         ar_alpha=2.0, tar_beta=1.0, variable_bptt=True, max_steps=25, num_layers=2,
                         dropout_between_layers=0.2, lr=1e-2)
    result = train_language_model(config, tmp_path)
    train_losses = [r["loss"] for r in read_log(tmp_path / "metrics.jsonl") if r["split"] == "train"]
    assert sum(train_losses[-5:]) / 5 < sum(train_losses[:5]) / 5 - 0.15
    assert math.isfinite(result["loss"]) and result["loss"] < math.log(result["trainer"].model.vocab_size)


# ------------------------------------------------------------------------- learning and resuming
def test_a_tiny_model_overfits_a_tiny_text(tmp_path):
    (tmp_path / "tiny.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 60)
    config = tiny_config(tmp_path / "tiny.txt", batch_size=4, bptt=30, max_steps=300, lr=1e-2, hidden_size=48)
    train_language_model(config, tmp_path / "run")
    train_losses = [r["loss"] for r in read_log(tmp_path / "run" / "metrics.jsonl") if r["split"] == "train"]
    assert train_losses[-1] < 0.15, train_losses[-10:]


def test_resumed_lm_training_repeats_the_uninterrupted_run(corpus, tmp_path):
    settings = dict(max_steps=24, dropout_input=0.3, dropout_output=0.3, weight_drop=0.2, variable_bptt=True)
    train_language_model(tiny_config(corpus, **settings), tmp_path / "whole")
    train_language_model(tiny_config(corpus, **settings), tmp_path / "split", until_step=11)
    torch.manual_seed(999)
    train_language_model(tiny_config(corpus, **settings), tmp_path / "split", resume=True)
    curve = lambda name: [r["loss"] for r in read_log(tmp_path / name / "metrics.jsonl") if r["split"] == "train"]  # noqa: E731
    assert len(curve("split")) == 24 and curve("split") == curve("whole")


# ------------------------------------------------------------------------- loading and generation
def load_language_model(path):
    run = lstmlab.load(path)
    return run.model, run.tokenizer


def test_load_language_model_gives_the_inspection_interface(trained_run):
    model, tokenizer = load_language_model(trained_run)
    assert not model.training and isinstance(model.lstm, lstmlab.LSTM)
    text = "to be or not"
    tokens = torch.tensor(tokenizer.encode(text)).unsqueeze(1)  # (T, 1)
    logits, state, trace = model(tokens, trace=True)
    assert logits.shape == (len(text), 1, tokenizer.vocab_size) and trace[0].h.shape[0] == len(text)
    assert "".join(tokenizer.pieces(text)) == text and tokenizer.decode(tokenizer.encode(text)) == text
    same_model, _ = load_language_model(trained_run / "latest.pt")
    assert isinstance(same_model, LanguageModel)


def test_runs_of_the_layout_before_recipes_still_load_and_resume(trained_run, tmp_path):
    """A language-model run written before recipes ("lstmlab.train/1", config and tokenizer
    in metadata) loads with lstmlab.load and continues with --resume."""
    state = load_checkpoint(trained_run / "latest.pt")
    trainer = {**state["trainer"], "best_loss": state["trainer"]["best_value"]}
    del trainer["best_value"], trainer["stopped_early"]
    old = {key: value for key, value in state.items() if key not in ("recipe", "config", "components")}
    old.update(format="lstmlab.train/1", trainer=trainer,
               metadata={"task": "lm", "config": state["config"], "tokenizer": state["components"]["tokenizer"],
                         **state["metadata"]})
    folder = tmp_path / "old-run"
    save_checkpoint(old, folder / "latest.pt")
    run = lstmlab.load(folder)
    tokens = torch.tensor(run.tokenizer.encode("to be or")).unsqueeze(1)
    expected = lstmlab.load(trained_run / "latest.pt").model(tokens)[0]
    assert run.recipe == "lm" and torch.equal(run.model(tokens)[0], expected)
    assert main(["train", "lm", "--out", str(folder), "--resume", "--max_steps", "42", "--progress", "false"]) == 0
    assert load_checkpoint(folder / "latest.pt")["trainer"]["step"] == 42


def test_damaged_checkpoints_give_clear_errors(trained_run, tmp_path):
    data = (trained_run / "best.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="truncated, corrupt"):
        load_language_model(tmp_path / "truncated.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="truncated, corrupt"):
        load_language_model(tmp_path / "garbage.pt")
    save_checkpoint({"metadata": {"task": "seq2seq"}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an lstmlab run checkpoint"):
        load_language_model(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no best.pt or latest.pt"):
        load_language_model(tmp_path)


def test_generation_is_reproducible_with_a_seed_and_streams(trained_run):
    model, tokenizer = load_language_model(trained_run)
    streamed: list[str] = []
    first = generate(model, tokenizer, "to be", 80, temperature=1.0, seed=7, on_text=streamed.append)
    assert first == generate(model, tokenizer, "to be", 80, temperature=1.0, seed=7)
    assert first != generate(model, tokenizer, "to be", 80, temperature=1.0, seed=8)
    assert "".join(streamed) == first and len(streamed) > 10 and len(first) == 80
    greedy = generate(model, tokenizer, "to be", 20, temperature=0.0, seed=1)
    assert greedy == generate(model, tokenizer, "to be", 20, temperature=0.0, seed=2)


# ------------------------------------------------------------------------- command line
def test_cli_train_evaluate_generate(corpus, tmp_path, capsys):
    out = tmp_path / "cli-run"
    assert main(["train", "lm", "--data", str(corpus), "--out", str(out), "--hidden-size", "16", "--num_layers", "1",
                 "--batch_size", "8", "--bptt", "20", "--max_steps", "12", "--progress", "false",
                 "--tokenizer", "bpe", "--vocab_size", "300", "--log_format", "csv"]) == 0
    assert "run folder" in capsys.readouterr().out and (out / "metrics.csv").is_file()
    assert main(["evaluate", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"loss", "perplexity", "bits_per_char", "tokens"} <= set(report) and report["tokens"] > 100
    assert main(["generate", str(out), "--prime", "to be", "--length", "30", "--seed", "3"]) == 0
    first = capsys.readouterr().out
    assert main(["generate", str(out), "--prime", "to be", "--length", "30", "--seed", "3"]) == 0
    assert capsys.readouterr().out == first and first.startswith("to be")
    assert main(["train", "lm", "--data", str(corpus), "--out", str(out), "--max_steps", "1"]) == 2
    assert "already holds a run" in capsys.readouterr().err  # never mix two runs' logs


def test_cli_reports_bad_input_without_a_traceback(tmp_path, capsys):
    (tmp_path / "tiny.txt").write_text("x" * 500)
    assert main(["train", "lm", "--data", str(tmp_path / "tiny.txt"), "--out", str(tmp_path / "r")]) == 2
    assert "corpus too small" in capsys.readouterr().err
    assert main(["train", "lm", "--lr", "fast"]) == 2
    assert "expects float" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "no best.pt or latest.pt" in capsys.readouterr().err
