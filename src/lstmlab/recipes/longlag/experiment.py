"""Train LSTM, GRU and tanh RNN on the long-time-lag tasks and judge them by the paper's criteria.

Hochreiter & Schmidhuber (1997, section 5) trained with online gradient descent, one
sequence at a time, and stopped when a sliding window of recent training sequences was
all right. We differ, on purpose, to fit a CPU budget:

* Adam with minibatches (`batch_size` sequences per update) and gradient-norm clipping,
  on the shared trainer (`lstmlab.train.Trainer`, which stops a run at its first success);
* the LSTM is the modern one (with forget gate, torch's layout; forget-gate bias
  initialised to `forget_bias`), not the 1997 cell without forget gate;
* success is judged every `eval_interval` updates on a *held-out* set (fresh sequences
  from a seed the training data never uses; 2a: both sequences; Reber: the 256
  training + 256 test strings), by the task's per-sequence criterion;
* "sequences seen until success" counts training sequences up to the evaluation that
  first found success (resolution eval_interval × batch_size);
* training stops at success, after `max_steps` updates, or after `budget` training seconds.

A run is reproducible from its seed: the seed fixes the model's initial weights, the
training stream and the held-out set (the time cap is a safety net that can make a
slower machine stop earlier; results say when it fired).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from lstmlab.checkpoint import RunInfo
from lstmlab.models.longlag import LongLagModel, ModelConfig, count_parameters
from lstmlab.train import LossOutput, Trainer, TrainConfig

from .task_base import LongLagTask

RECIPE_NAME = "longlag"


@dataclass
class RunResult:
    """The outcome of one (task, model, seed) run; plain data for the JSON file."""

    task: str  # task label, e.g. "adding-T100"
    lag: int  # the task's size parameter (x-axis of the plots)
    model: str  # "lstm", "gru" or "rnn"
    seed: int
    hidden_size: int
    parameters: int
    success: bool
    steps: int  # updates made
    sequences_seen: int  # training sequences seen in total
    sequences_to_success: int | None  # training sequences until the first successful check
    final_loss: float  # held-out loss at the end (MSE or cross-entropy)
    final_wrong_fraction: float  # held-out fraction of wrong sequences at the end
    eval_size: int  # number of held-out sequences
    wall_seconds: float
    stopped_by: str  # "success", "max_steps" or "max_seconds"
    history: list = field(default_factory=list)  # [sequences_seen, loss, wrong_fraction] per check


def evaluate(model: LongLagModel, task: LongLagTask, batch, chunk: int = 1024) -> tuple[float, float]:
    """(held-out loss, fraction wrong) of `model` on `batch`, in chunks to bound memory."""
    losses, wrong, count = [], 0, batch.batch_size
    with torch.no_grad():
        for start in range(0, count, chunk):
            part = _slice_batch(batch, start, min(start + chunk, count))
            outputs = model(part.inputs)
            losses.append(float(task.loss(outputs, part)) * part.batch_size)
            wrong += int(task.wrong(outputs, part).sum())
    return sum(losses) / count, wrong / count


def _slice_batch(batch, start: int, stop: int):
    """Sequences start … stop − 1 of a batch, trimmed to their own longest length."""
    lengths = batch.lengths[start:stop]
    steps = int(lengths.max())
    per_step = batch.mask is not None
    return type(batch)(
        batch.inputs[:steps, start:stop],
        lengths,
        batch.targets[:steps, start:stop] if per_step else batch.targets[start:stop],
        batch.mask[:steps, start:stop] if per_step else None,
    )


def longlag_train_config(**changes) -> TrainConfig:
    """The shared trainer's settings for a long-lag run: Adam (AdamW without decay) at a
    constant 1e-2, clipping at norm 1, 3000 updates or 120 s, a success check every 100."""
    defaults = dict(optimizer="adamw", lr=1e-2, schedule="constant", grad_clip=1.0, max_steps=3000,
                    budget=120.0, eval_interval=100, log_interval=100, best_metric="wrong_fraction",
                    best_direction="lower", seed=0, progress=False)
    return replace(TrainConfig(**defaults), **changes)


class TaskBatches:
    """Endless training batches of a task from a private generator (its state resumes)."""

    def __init__(self, task: LongLagTask, batch_size: int, seed: int):
        self.task, self.batch_size = task, batch_size
        self.generator = torch.Generator().manual_seed(1_000_003 * seed + 17)

    def __next__(self):
        return self.task.sample(self.batch_size, self.generator)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def held_out_batch(task: LongLagTask, eval_size: int, seed: int):
    """The held-out sequences of a run: a seed stream the training data never uses."""
    return task.evaluation_batch(eval_size, torch.Generator().manual_seed(1_000_003 * seed + 99_991))


def run_info(task: LongLagTask, config: ModelConfig, job: dict | None) -> RunInfo:
    """What a long-lag run folder records: the job, and the task and model to rebuild."""
    return RunInfo(RECIPE_NAME, job, {"task": task.config(), "model": asdict(config)},
                   {"task": task.label, "criterion": task.criterion, "parameters": count_parameters(LongLagModel(config))})


def train_one(task: LongLagTask, config: ModelConfig, seed: int, train: TrainConfig, *, batch_size: int = 32,
              eval_size: int = 2560, out_dir: str | Path | None = None, run: RunInfo | None = None,
              description: str | None = None) -> tuple[RunResult, LongLagModel]:
    """Train one model on one task from one seed on the shared trainer, until success or a cap.

    `train.max_steps` caps the updates, `train.budget` the training seconds; a success
    check runs every `train.eval_interval` updates on `eval_size` held-out sequences.
    With `out_dir`, the run folder (best.pt, latest.pt, metrics.jsonl) is written there.
    """
    torch.manual_seed(seed)  # initial weights
    model = LongLagModel(config)
    run = run or run_info(task, config, None)
    held_out = held_out_batch(task, eval_size, seed)

    def loss_fn(model: LongLagModel, batch) -> LossOutput:
        loss = task.loss(model(batch.inputs), batch)
        return LossOutput(loss, batch.batch_size, loss.item())

    def evaluate_fn(model: LongLagModel) -> dict:
        loss, wrong_fraction = evaluate(model, task, held_out)
        return {"loss": loss, "wrong_fraction": wrong_fraction, "tokens": held_out.batch_size}

    trainer = Trainer(model, TaskBatches(task, batch_size, seed), loss_fn, train, evaluate=evaluate_fn,
                      out_dir=out_dir, run=run, unit="sequence", main_metric="wrong_fraction",
                      stop_when=lambda record: task.is_success(record["wrong_fraction"], record["loss"]),
                      description=description)
    start = time.perf_counter()
    last = trainer.fit()
    history = [[r["step"] * batch_size, r["loss"], r["wrong_fraction"]] for r in trainer.history]
    stopped_by = "success" if trainer.stopped_early else "max_steps" if trainer.step >= train.max_steps else "max_seconds"
    result = RunResult(
        task=task.label, lag=task.lag, model=config.kind, seed=seed, hidden_size=config.hidden_size,
        parameters=count_parameters(model), success=trainer.stopped_early, steps=trainer.step,
        sequences_seen=trainer.step * batch_size,
        sequences_to_success=trainer.step * batch_size if trainer.stopped_early else None,
        final_loss=last["loss"], final_wrong_fraction=last["wrong_fraction"], eval_size=held_out.batch_size,
        wall_seconds=time.perf_counter() - start, stopped_by=stopped_by, history=history,
    )
    return result, model.eval()


@dataclass
class Experiment:
    """One task configuration trained with several models and seeds."""

    task: LongLagTask  # the task (with its length)
    lstm_hidden: int  # LSTM hidden size; GRU and RNN get matched parameter counts
    train: TrainConfig  # the shared trainer's optimisation and stopping (see longlag_train_config)
    seeds: int = 3  # seeds 0 … seeds − 1
    batch_size: int = 32  # sequences per update
    eval_size: int = 2560  # held-out sequences per success check (the paper's test sets have 2560)
    initialisation: dict | None = None  # overrides {"lstm_options": ..., "chrono": ...} of the run for this task


@dataclass
class Summary:
    """Per (task, model): the numbers of the results table."""

    task: str
    lag: int
    model: str
    hidden_size: int
    parameters: int
    successes: int
    seeds: int
    median_final_loss: float
    median_final_wrong_fraction: float
    median_sequences_to_success: float | None  # over the successful seeds only
    median_wall_seconds: float
    total_wall_seconds: float
    baseline_loss: float | None


def summarise(results: list[RunResult], task: LongLagTask) -> list[Summary]:
    summaries = []
    for model in dict.fromkeys(r.model for r in results):
        runs = [r for r in results if r.model == model]
        successes = [r.sequences_to_success for r in runs if r.success]
        summaries.append(Summary(
            task=task.label, lag=task.lag, model=model, hidden_size=runs[0].hidden_size,
            parameters=runs[0].parameters, successes=len(successes), seeds=len(runs),
            median_final_loss=statistics.median(r.final_loss for r in runs),
            median_final_wrong_fraction=statistics.median(r.final_wrong_fraction for r in runs),
            median_sequences_to_success=statistics.median(successes) if successes else None,
            median_wall_seconds=statistics.median(r.wall_seconds for r in runs),
            total_wall_seconds=sum(r.wall_seconds for r in runs),
            baseline_loss=task.baseline_loss(),
        ))
    return summaries
