"""Train LSTM, GRU and tanh RNN on the long-time-lag tasks and judge them by the paper's criteria.

Hochreiter & Schmidhuber (1997, section 5) trained with online gradient descent, one
sequence at a time, and stopped when a sliding window of recent training sequences was
all right. We differ, on purpose, to fit a CPU budget:

* Adam with minibatches (`batch_size` sequences per update) and gradient-norm clipping;
* the LSTM is the modern one (with forget gate, torch's layout; forget-gate bias
  initialised to `forget_bias`), not the 1997 cell without forget gate;
* success is judged every `eval_every` updates on a *held-out* set (fresh sequences
  from a seed the training data never uses; 2a: both sequences; Reber: the 256
  training + 256 test strings), by the task's per-sequence criterion;
* "sequences seen until success" counts training sequences up to the evaluation that
  first found success (resolution eval_every × batch_size);
* training stops at success, after `max_steps` updates, or after `max_seconds`.

A run is reproducible from its seed: the seed fixes the model's initial weights, the
training stream and the held-out set (the time cap is a safety net that can make a
slower machine stop earlier; results say when it fired).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field

import torch
from tqdm import tqdm

from .longlag_base import LongLagTask
from .longlag_models import LongLagModel, ModelConfig, count_parameters, model_configs


@dataclass
class TrainConfig:
    """How one run trains and when it stops."""

    batch_size: int = 32  # sequences per Adam update
    learning_rate: float = 1e-2  # Adam step size
    clip_norm: float = 1.0  # gradients are rescaled to at most this global norm
    max_steps: int = 3000  # update budget per run
    max_seconds: float = 120.0  # wall-clock safety cap per run
    eval_every: int = 100  # updates between success checks on the held-out set
    eval_size: int = 2560  # held-out sequences (the paper's test sets have 2560)


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
    model.eval()
    losses, wrong, count = [], 0, batch.batch_size
    with torch.no_grad():
        for start in range(0, count, chunk):
            part = _slice_batch(batch, start, min(start + chunk, count))
            outputs = model(part.inputs)
            losses.append(float(task.loss(outputs, part)) * part.batch_size)
            wrong += int(task.wrong(outputs, part).sum())
    model.train()
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


def train_one(task: LongLagTask, config: ModelConfig, seed: int, train: TrainConfig,
              progress: tqdm | None = None) -> tuple[RunResult, LongLagModel]:
    """Train one model on one task from one seed until success or a cap."""
    torch.manual_seed(seed)  # initial weights
    model = LongLagModel(config)
    data_stream = torch.Generator().manual_seed(1_000_003 * seed + 17)
    held_out = task.evaluation_batch(train.eval_size, torch.Generator().manual_seed(1_000_003 * seed + 99_991))
    optimizer = torch.optim.Adam(model.parameters(), lr=train.learning_rate)
    start, history, to_success, stopped_by = time.perf_counter(), [], None, "max_steps"
    loss, wrong_fraction, step = float("nan"), 1.0, 0
    for step in range(1, train.max_steps + 1):
        batch = task.sample(train.batch_size, data_stream)
        batch_loss = task.loss(model(batch.inputs), batch)
        optimizer.zero_grad(set_to_none=True)
        batch_loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train.clip_norm)
        optimizer.step()
        out_of_time = time.perf_counter() - start > train.max_seconds
        if step % train.eval_every == 0 or step == train.max_steps or out_of_time:
            loss, wrong_fraction = evaluate(model, task, held_out)
            history.append([step * train.batch_size, loss, wrong_fraction])
            if progress is not None:
                progress.set_postfix(step=step, loss=f"{loss:.4f}", wrong=f"{wrong_fraction:.3f}", refresh=False)
            if task.is_success(wrong_fraction, loss):
                to_success, stopped_by = step * train.batch_size, "success"
                break
            if out_of_time:
                stopped_by = "max_seconds"
                break
        if progress is not None:
            progress.update(1)
    result = RunResult(
        task=task.label, lag=task.lag, model=config.kind, seed=seed, hidden_size=config.hidden_size,
        parameters=count_parameters(model), success=to_success is not None, steps=step,
        sequences_seen=step * train.batch_size, sequences_to_success=to_success, final_loss=loss,
        final_wrong_fraction=wrong_fraction, eval_size=held_out.batch_size,
        wall_seconds=time.perf_counter() - start, stopped_by=stopped_by, history=history,
    )
    return result, model


@dataclass
class Experiment:
    """One task configuration trained with several models and seeds."""

    task: LongLagTask  # the task (with its length)
    lstm_hidden: int  # LSTM hidden size; GRU and RNN get matched parameter counts
    train: TrainConfig  # optimisation and stopping
    seeds: int = 3  # seeds 0 … seeds − 1
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
