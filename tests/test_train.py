"""The shared trainer, the typed config and the metrics log."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lstmlab.checkpoint import CheckpointError
from lstmlab.config import ConfigError, apply_overrides, load_toml
from lstmlab.metrics import MetricsLog, bits_per_char, perplexity, read_log
from lstmlab.recipes.lm.config import LMConfig
from lstmlab.train import LossOutput, TrainConfig, Trainer, learning_rate, seed_everything


pytestmark = pytest.mark.usefixtures("single_thread")  # small models: see conftest


# ------------------------------------------------------------------------- config
def test_overrides_are_type_checked_and_unknown_keys_rejected():
    config = apply_overrides(LMConfig(), {"hidden_size": "64", "model.num_layers": 3, "lr": "1e-3",
                                          "tie-weights": "true", "path": "none"})
    assert (config.model.hidden_size, config.model.num_layers, config.train.lr) == (64, 3, 1e-3)
    assert config.model.tie_weights is True and config.data.path is None
    with pytest.raises(ConfigError, match="unknown config key 'hiden_size'"):
        apply_overrides(LMConfig(), {"hiden_size": 3})
    with pytest.raises(ConfigError, match="expects int"):
        apply_overrides(LMConfig(), {"hidden_size": "big"})
    with pytest.raises(ConfigError, match="expects int"):
        apply_overrides(LMConfig(), {"hidden_size": 2.5})
    with pytest.raises(ConfigError, match="must be one of"):
        apply_overrides(LMConfig(), {"cell": "transformer"})


def test_toml_sections_and_flat_keys(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('lr = 0.01\n[model]\nhidden_size = 32\n[data]\ntokenizer = "bpe"\n')
    config = load_toml(LMConfig(), path)
    assert (config.train.lr, config.model.hidden_size, config.data.tokenizer) == (0.01, 32, "bpe")
    path.write_text("[model]\nhidden = 32\n")
    with pytest.raises(ConfigError, match="unknown config key"):
        load_toml(LMConfig(), path)


# ------------------------------------------------------------------------- metrics
def test_bits_and_perplexity():
    assert bits_per_char(math.log(2)) == pytest.approx(1.0)
    assert perplexity(math.log(50)) == pytest.approx(50.0)


def test_csv_log_keeps_one_header_that_grows_with_new_metrics(tmp_path):
    log = MetricsLog(tmp_path / "m.csv", fields=["step", "loss", "lr"])
    log.write({"step": 1, "loss": 2.0, "lr": 0.1})
    log.write({"step": 2, "loss": 1.5})
    assert read_log(tmp_path / "m.csv") == [{"step": "1", "loss": "2.0", "lr": "0.1"}, {"step": "2", "loss": "1.5"}]
    log.write({"step": 3, "bleu": 7.5})  # a new metric widens the header; no value is dropped
    MetricsLog(tmp_path / "m.csv").write({"step": 4, "loss": 1.0, "bleu": 8.0})  # reopened: the wide header
    lines = (tmp_path / "m.csv").read_text().splitlines()
    assert lines[0] == "step,loss,lr,bleu" and len(lines) == 5
    assert read_log(tmp_path / "m.csv")[2:] == [{"step": "3", "bleu": "7.5"}, {"step": "4", "loss": "1.0", "bleu": "8.0"}]


def test_learning_rate_warms_up_then_decays_over_the_budget():
    config = TrainConfig(lr=1.0, warmup_steps=10, max_steps=110, schedule="cosine", min_lr_ratio=0.0)
    assert learning_rate(config, 0, 0.0) == pytest.approx(0.1)
    assert learning_rate(config, 10, 0.0) == pytest.approx(1.0)
    assert learning_rate(config, 60, 0.0) == pytest.approx(0.5)
    assert learning_rate(config, 110, 0.0) == pytest.approx(0.0)
    timed = TrainConfig(lr=1.0, budget=100.0, schedule="linear", min_lr_ratio=0.0)
    assert learning_rate(timed, 5, 25.0) == pytest.approx(0.75)


# ------------------------------------------------------------------------- a generic task
class RegressionBatches:
    """Endless random regression batches from a private, resumable generator."""

    def __init__(self, seed: int = 0):
        self.generator = torch.Generator().manual_seed(seed)
        self.weight = torch.randn(4, 1, generator=self.generator)

    def __next__(self):
        x = torch.randn(16, 4, generator=self.generator)
        return x, x @ self.weight

    def state_dict(self):
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state):
        self.generator.set_state(state["generator"])


def regression_loss(model, batch):
    x, y = batch
    loss = nn.functional.mse_loss(model(x), y)
    return LossOutput(loss, x.size(0), loss.item())


def make_regression_trainer(out_dir, **overrides):
    seed_everything(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.2), nn.Linear(16, 1))  # dropout: RNG must resume too
    config = TrainConfig(**{"lr": 0.01, "max_steps": 40, "log_interval": 1, "progress": False, **overrides})
    evaluation_data = RegressionBatches(seed=1)
    x, y = next(evaluation_data)
    evaluate = lambda m: {"loss": nn.functional.mse_loss(m(x), y).item(), "tokens": 16}  # noqa: E731
    return Trainer(model, RegressionBatches(), regression_loss, config, evaluate=evaluate, out_dir=out_dir)


def test_trainer_is_generic_and_learns(tmp_path):
    result = make_regression_trainer(tmp_path, max_steps=150, eval_interval=50).fit()
    records = read_log(tmp_path / "metrics.jsonl")
    train_losses = [r["loss"] for r in records if r["split"] == "train"]
    assert train_losses[-1] < 0.2 * train_losses[0]
    assert [r["step"] for r in records if r["split"] == "validation"] == [50, 100, 150]
    assert result["finished"] and (tmp_path / "best.pt").is_file() and (tmp_path / "latest.pt").is_file()


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_resume_gives_the_uninterrupted_loss_curve(tmp_path, optimizer):
    whole = make_regression_trainer(tmp_path / "whole", optimizer=optimizer, momentum=0.9)
    whole.fit()
    first = make_regression_trainer(tmp_path / "split", optimizer=optimizer, momentum=0.9)
    first.fit(until_step=17)
    torch.manual_seed(12345)  # disturb the global RNG: resume must restore it
    second = make_regression_trainer(tmp_path / "split", optimizer=optimizer, momentum=0.9)
    second.resume(tmp_path / "split" / "latest.pt")
    second.fit()
    curve = lambda folder: [r["loss"] for r in read_log(folder / "metrics.jsonl") if r["split"] == "train"]  # noqa: E731
    assert len(curve(tmp_path / "split")) == 40
    assert curve(tmp_path / "split") == curve(tmp_path / "whole")
    for a, b in zip(whole.model.parameters(), second.model.parameters()):
        assert torch.equal(a, b)


class CrashingBatches(RegressionBatches):
    """Raises KeyboardInterrupt when batch number `crash_at` is requested (a killed run)."""

    def __init__(self, crash_at: int):
        super().__init__()
        self.crash_at, self.served = crash_at, 0

    def __next__(self):
        self.served += 1
        if self.served == self.crash_at:
            raise KeyboardInterrupt
        return super().__next__()


def test_a_killed_run_resumes_from_its_last_evaluation(tmp_path):
    whole = make_regression_trainer(tmp_path / "whole")
    whole.fit()
    crashed = make_regression_trainer(tmp_path / "crash", eval_interval=10)
    crashed.batches = CrashingBatches(crash_at=14)
    with pytest.raises(KeyboardInterrupt):
        crashed.fit()
    resumed = make_regression_trainer(tmp_path / "crash", eval_interval=10)
    resumed.resume(tmp_path / "crash" / "latest.pt")
    assert resumed.step == 10  # written by the step-10 evaluation
    resumed.fit()
    for a, b in zip(whole.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_ntasgd_switches_to_averaging_when_validation_stalls(tmp_path):
    trainer = make_regression_trainer(tmp_path, optimizer="ntasgd", nonmono=2, eval_interval=5, max_steps=40)
    scripted = iter([1.0, 0.9, 0.8, 0.85, 0.95, 0.7, 0.6, 0.5, 0.4])  # stalls at the 5th evaluation
    seen_weights = []

    def evaluate(model):
        seen_weights.append(model[0].weight.detach().clone())
        return {"loss": next(scripted), "tokens": 1}

    trainer.evaluate_fn = evaluate
    trainer.fit()
    switched_at = [r["step"] for r in trainer.history].index(25)
    assert trainer.averaging and isinstance(trainer.optimizer, torch.optim.ASGD)
    assert switched_at == 4
    average = trainer.optimizer.state[trainer.model[0].weight]["ax"]
    assert torch.equal(seen_weights[-1], average)  # evaluation ran on the averaged weights
    assert not torch.equal(trainer.model[0].weight, average)


def test_the_weight_average_is_a_moving_average_whose_decay_rises_to_its_setting():
    from lstmlab.optimization import WeightAverage

    weight = nn.Parameter(torch.zeros(3))
    average = WeightAverage([weight], decay=0.5)
    expected = torch.zeros(3)
    for t, value in enumerate([1.0, 2.0, 4.0, 8.0, 16.0]):
        weight.data.fill_(value)
        average.update()
        decay = min(0.5, (1 + t) / (10 + t))  # 0.1, 0.18..., then 0.5 from the 9th update on
        expected = decay * expected + (1 - decay) * value
        assert torch.allclose(average.averages[0], expected)
    assert average.updates == 5
    with pytest.raises(ValueError, match=r"ema_decay: expected a decay in \(0, 1\).* got 1.5"):
        WeightAverage([weight], 1.5)


def test_with_ema_decay_evaluation_and_best_pt_use_the_average_and_training_the_weights(tmp_path):
    trainer = make_regression_trainer(tmp_path, ema_decay=0.9, eval_interval=10, max_steps=30)
    seen, trained = [], []

    def evaluate(model):
        seen.append(model[0].weight.detach().clone())
        return {"loss": -float(len(seen)), "tokens": 1}  # each evaluation better: best.pt at the last

    trainer.evaluate_fn = evaluate
    trainer.fit()
    average = trainer.weight_average.averages[0]
    assert torch.equal(seen[-1], average)  # evaluated on the average ...
    assert not torch.equal(trainer.model[0].weight, average)  # ... and the weights were put back
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    latest = torch.load(tmp_path / "latest.pt", weights_only=True)
    assert torch.equal(best["model"]["0.weight"], average)
    assert torch.equal(latest["model"]["0.weight"], trainer.model[0].weight)
    trained.append(trainer.model[0].weight.detach().clone())
    plain = make_regression_trainer(tmp_path / "plain", eval_interval=10, max_steps=30)
    plain.fit()
    assert torch.equal(plain.model[0].weight, trained[0])  # the average never feeds back into training
    with pytest.raises(ValueError, match="NT-ASGD averages the weights itself"):
        make_regression_trainer(tmp_path / "x", ema_decay=0.9, optimizer="ntasgd")


def test_a_run_with_a_weight_average_resumes_exactly(tmp_path):
    whole = make_regression_trainer(tmp_path / "whole", ema_decay=0.95)
    whole.fit()
    first = make_regression_trainer(tmp_path / "split", ema_decay=0.95)
    first.fit(until_step=17)
    second = make_regression_trainer(tmp_path / "split", ema_decay=0.95)
    second.resume(tmp_path / "split" / "latest.pt")
    second.fit()
    assert second.weight_average.updates == whole.weight_average.updates == 40
    for a, b in zip(whole.weight_average.averages, second.weight_average.averages):
        assert torch.equal(a, b)
    older = make_regression_trainer(tmp_path / "older", max_steps=5)  # saved without an average
    older.fit()
    switched_on = make_regression_trainer(tmp_path / "older", ema_decay=0.95, max_steps=8)
    switched_on.resume(tmp_path / "older" / "latest.pt")
    assert switched_on.weight_average.updates == 0
    assert torch.equal(switched_on.weight_average.averages[0], older.model[0].weight)  # starts from the weights


def test_resume_rejects_damaged_checkpoints(tmp_path):
    trainer = make_regression_trainer(tmp_path, max_steps=3)
    trainer.fit()
    data = (tmp_path / "latest.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated, corrupt"):
        make_regression_trainer(tmp_path).resume(tmp_path / "truncated.pt")
    torch.save({"model": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        make_regression_trainer(tmp_path).resume(tmp_path / "foreign.pt")


@pytest.mark.parametrize("direction", ["lower", "higher"])
def test_any_metric_is_logged_and_chooses_best_pt(tmp_path, direction):
    trainer = make_regression_trainer(tmp_path, eval_interval=10, max_steps=40, best_metric="score",
                                      best_direction=direction, log_format="csv")
    scores = iter([0.3, 0.9, 0.1, 0.5])

    def evaluate(model):
        return {"loss": 1.0, "score": next(scores), "tokens": 16}

    trainer.evaluate_fn = evaluate
    trainer.fit()
    validation = [r for r in read_log(tmp_path / "metrics.csv") if r["split"] == "validation"]
    assert [float(r["score"]) for r in validation] == [0.3, 0.9, 0.1, 0.5]
    assert all(r["validation_tokens"] == "16" for r in validation)
    best = torch.load(tmp_path / "best.pt", weights_only=True)["trainer"]
    assert best["step"] == (20 if direction == "higher" else 30)
    assert best["best_value"] == (0.9 if direction == "higher" else 0.1)


def test_an_unknown_best_metric_is_a_clear_error(tmp_path):
    trainer = make_regression_trainer(tmp_path, best_metric="bleu")
    with pytest.raises(ValueError, match="best_metric 'bleu' is not among the evaluation's metrics"):
        trainer.fit()


def test_stop_when_ends_training_at_that_evaluation(tmp_path):
    trainer = make_regression_trainer(tmp_path, eval_interval=5, max_steps=40)
    trainer.stop_when = lambda record: record["step"] >= 15
    result = trainer.fit()
    assert trainer.step == 15 and trainer.stopped_early and result["finished"]
    assert [r["step"] for r in trainer.history] == [5, 10, 15]


def test_a_budget_is_required():
    with pytest.raises(ValueError, match="budget"):
        Trainer(nn.Linear(1, 1), RegressionBatches(), regression_loss, TrainConfig())
