"""Language modelling on the shared trainer: data, loss, evaluation, run.

`train_language_model(config, out_dir)` is what `lstmlab train lm` and `lstmlab demo`
call: it loads and tokenises the corpus, builds the model, and hands batches, a loss
function and an evaluation function to `lstmlab.train.Trainer`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lstmlab.checkpoint import RunInfo
from lstmlab.data.batching import BPTTBatches, LMBatch, evaluation_windows, make_streams
from lstmlab.data.text import load_splits
from lstmlab.data.tokenizers import train_tokenizer
from lstmlab.models import count_parameters
from lstmlab.models.activation_regularization import (
    activation_regularization,
    temporal_activation_regularization,
)
from lstmlab.models.lm import LanguageModel
from lstmlab.recipes.lm.config import LMConfig
from lstmlab.recipes.base import refuse_existing_run
from lstmlab.reproducibility import seed_everything
from lstmlab.distributed import init_distributed
from lstmlab.train import LossOutput, Trainer

RECIPE_NAME = "lm"


def detach_state(state: Any) -> Any:
    """Cut the graph at the window boundary (truncated BPTT), keeping the values."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return tuple(detach_state(part) for part in state)


class LanguageModelLoss:
    """Cross-entropy on next tokens plus AR/TAR, carrying the hidden state across windows."""

    def __init__(self, ar_alpha: float = 0.0, tar_beta: float = 0.0):
        self.ar_alpha, self.tar_beta = ar_alpha, tar_beta
        self.state: Any = None

    def __call__(self, model: nn.Module, batch: LMBatch) -> LossOutput:
        if batch.starts_epoch:
            self.state = None
        logits, state, raw_output, dropped_output = model(batch.inputs, self.state, return_hidden=True)
        self.state = detach_state(state)
        data_loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), batch.targets.reshape(-1))
        loss = (data_loss + activation_regularization(dropped_output, self.ar_alpha)
                + temporal_activation_regularization(raw_output, self.tar_beta))
        return LossOutput(loss, batch.tokens, data_loss.item())

    def state_dict(self) -> dict[str, Any]:
        state = self.state
        return {"state": None if state is None else list(state) if isinstance(state, tuple) else [state]}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        parts = saved["state"]
        self.state = None if parts is None else tuple(parts) if len(parts) == 2 else parts[0]


@torch.no_grad()
def evaluate_tokens(model: LanguageModel, ids: list[int], batch_size: int, bptt: int,
                    max_tokens: int = 0) -> dict[str, float]:
    """Mean nats per token of `model` on `ids` (hidden state carried across windows)."""
    if max_tokens:
        ids = ids[:max_tokens]
    streams = make_streams(ids, min(batch_size, max(1, len(ids) // 2)))
    was_training = model.training
    model.eval()
    total_nats, total_tokens, state = 0.0, 0, None
    for window in evaluation_windows(streams, bptt):
        logits, state = model(window.inputs, state)
        total_nats += F.cross_entropy(logits.reshape(-1, logits.size(-1)), window.targets.reshape(-1),
                                      reduction="sum").item()
        total_tokens += window.tokens
    model.train(was_training)
    return {"loss": total_nats / total_tokens, "tokens": total_tokens}


@dataclass
class PreparedData:
    """A tokenised corpus ready for training."""

    tokenizer: Any
    train_ids: list[int]
    validation_ids: list[int]
    test_ids: list[int]
    description: str
    unit: str  # "char" (report bits/char) or "token" (report perplexity)


def prepare_data(config: LMConfig) -> PreparedData:
    """Load the corpus, train the tokeniser on the training split, encode every split."""
    splits = load_splits(config.data.path)
    tokenizer = train_tokenizer(config.data.tokenizer, splits.train, config.data.vocab_size)
    return PreparedData(tokenizer, tokenizer.encode(splits.train), tokenizer.encode(splits.validation),
                        tokenizer.encode(splits.test), splits.description,
                        "char" if config.data.tokenizer == "char" else "token")


def build_trainer(config: LMConfig, data: PreparedData, out_dir: str | Path | None) -> Trainer:
    """Seed, build the model and the batches, and wrap them in a Trainer."""
    rank, world_size = init_distributed()
    seed_everything(config.train.seed)
    model = LanguageModel(config.model, data.tokenizer.vocab_size)
    if world_size > 1:  # same initial weights everywhere, but each process its own dropout masks
        seed_everything(config.train.seed + rank)
    if config.data.batch_size % world_size:
        raise ValueError(f"batch_size {config.data.batch_size} must divide evenly over {world_size} processes")
    streams = make_streams(data.train_ids, config.data.batch_size, config.data.bptt + 1)
    batches = BPTTBatches(streams, config.data.bptt, variable_length=config.data.variable_bptt,
                          seed=config.train.seed, columns=slice(rank, None, world_size))
    data_config = config.data

    def evaluate(model: nn.Module) -> dict[str, float]:
        return evaluate_tokens(model, data.validation_ids, data_config.eval_batch_size,
                               data_config.bptt, data_config.eval_tokens)

    run = RunInfo(RECIPE_NAME, dataclasses.asdict(config), {"tokenizer": data.tokenizer.to_dict()},
                  {"corpus": data.description, "unit": data.unit,
                   "parameters": count_parameters(model)})
    return Trainer(model, batches, LanguageModelLoss(config.model.ar_alpha, config.model.tar_beta),
                   config.train, evaluate=evaluate, out_dir=out_dir, run=run, unit=data.unit)


def train_language_model(config: LMConfig, out_dir: str | Path | None, *, resume: bool = False,
                         data: PreparedData | None = None, until_step: int | None = None) -> dict[str, Any]:
    """Train (or resume) and return the final validation record, with "parameters"."""
    refuse_existing_run(out_dir, resume)
    data = data or prepare_data(config)
    trainer = build_trainer(config, data, out_dir)
    if resume:
        trainer.resume(Path(out_dir) / "latest.pt")
    if trainer.is_main:
        print(f"corpus: {data.description}; {len(data.train_ids):,} training tokens, "
              f"vocabulary {data.tokenizer.vocab_size}; model: {trainer.run.metadata['parameters']:,} parameters, "
              f"cell {config.model.cell} (hidden {trainer.model.hidden_size})", flush=True)
    result = trainer.fit(until_step=until_step)
    result["parameters"] = trainer.run.metadata["parameters"]
    result["trainer"] = trainer
    return result


def nats_to_report(nats: float, unit: str) -> str:
    if unit == "char":
        return f"{nats:.4f} nats/char = {nats / math.log(2):.4f} bits/char"
    return f"{nats:.4f} nats/token, perplexity {math.exp(min(nats, 50)):.2f}"
