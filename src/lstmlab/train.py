"""The training loop shared by every recipe: small, generic, resumable.

A recipe hands the `Trainer` four things and keeps everything application-specific:

- ``model``: an ``nn.Module``;
- ``batches``: an endless iterator of batches with ``state_dict()`` / ``load_state_dict()``
  (its position is part of the checkpoint);
- ``loss_fn(model, batch) -> LossOutput``: the objective to minimise, how many tokens it
  covered, and the data loss in mean nats per token for the log. If it carries state
  across batches (an LM's hidden state) it may define ``state_dict`` / ``load_state_dict``;
- ``evaluate(model) -> {"loss": ..., "bleu": ..., "tokens": n, ...}`` (optional): any
  metrics. Every one is logged; ``config.best_metric`` and ``config.best_direction``
  choose which evaluation writes ``best.pt`` (``loss`` lower, ``bleu`` higher, ...).

The trainer owns the optimizer and schedule (`lstmlab.optimization`), gradient
clipping, an optional moving average of the weights that evaluation and best.pt use
(``ema_decay``), evaluation at intervals, an optional early stop (``stop_when(record)``), a
progress bar with the recipe's main metric, the metrics log and checkpoints in the one
schema of `lstmlab.checkpoint` (with the recipe's `RunInfo`).

Checkpoints hold the model, optimizer, RNG states (torch, python, numpy), data position
and carried state, so ``resume`` continues exactly: a run stopped at step k and resumed
draws the same batches and dropout masks as an uninterrupted run with the same seed.

Data parallel: started under ``torchrun``, the trainer joins a gloo process group, wraps
the model in DistributedDataParallel and lets only rank 0 print, log and save.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn

from lstmlab.checkpoint import RUN_FORMAT, CheckpointError, RunInfo, load_checkpoint, save_checkpoint, upgrade
from lstmlab.distributed import agreed, init_distributed, mean_across_ranks
from lstmlab.metrics import MetricsLog, loss_summary
from lstmlab.optimization import (  # noqa: F401  (learning_rate: part of this module's API)
    WeightAverage, asgd_averages, averaging_optimizer, learning_rate, make_optimizer, validation_stalled,
    weights_replaced,
)
from lstmlab.reproducibility import rng_state, seed_everything, set_rng_state  # noqa: F401
from lstmlab.stopping import StopOnSignal, TrainingInterrupted
from lstmlab.train_config import TrainConfig, autocast  # noqa: F401  (part of this module's API)


@dataclass
class LossOutput:
    """What a recipe's loss function returns for one batch."""

    loss: torch.Tensor  # scalar objective to minimise (data loss + regularisers)
    tokens: int  # tokens (targets) in this batch on this process
    data_loss: float  # mean nats per token of the data term alone (logged)


def _main_metric(unit: str) -> str:
    return {"char": "bits_per_char", "token": "perplexity"}.get(unit, "loss")


class Trainer:
    """Runs the loop; see the module docstring. Use `fit()`, then read `history`.

    unit: what a LossOutput's tokens count ("char": bits/char are logged, "token":
    perplexity, anything else: the loss alone). main_metric: the record field the
    progress bar shows (default from the unit). stop_when: called with each validation
    record; True ends training there (a long-lag run that has succeeded).
    """

    def __init__(self, model: nn.Module, batches: Any, loss_fn: Callable[[nn.Module, Any], LossOutput],
                 config: TrainConfig, *, evaluate: Callable[[nn.Module], dict[str, Any]] | None = None,
                 out_dir: str | Path | None = None, run: RunInfo | None = None, unit: str = "token",
                 main_metric: str | None = None, stop_when: Callable[[dict[str, Any]], bool] | None = None,
                 description: str | None = None):
        if not config.max_steps and not config.budget:
            raise ValueError("set a step budget (max_steps) or a time budget (budget seconds)")
        self.model, self.batches, self.loss_fn, self.config = model, batches, loss_fn, config
        self.evaluate_fn, self.unit, self.stop_when = evaluate, unit, stop_when
        self.run = run or RunInfo(recipe="", config=None)
        self.main_metric, self.description = main_metric or _main_metric(unit), description
        if config.threads:
            torch.set_num_threads(config.threads)
        self.rank, self.world_size = init_distributed()
        self.is_main = self.rank == 0
        self.train_model: nn.Module = model
        if self.world_size > 1:
            self.train_model = nn.parallel.DistributedDataParallel(model)
        self.optimizer = make_optimizer(config, self._trainable())
        self.averaging = False  # NT-ASGD has switched to averaged SGD
        if config.ema_decay and config.optimizer == "ntasgd":
            raise ValueError("ema_decay: NT-ASGD averages the weights itself; use ema_decay 0 with it, "
                             "or another optimizer")
        self.weight_average = WeightAverage(self._trainable(), config.ema_decay) if config.ema_decay else None
        self.step, self.tokens_seen, self.elapsed = 0, 0, 0.0
        self.best_value: float | None = None
        self.stopped_early = False
        self.history: list[dict[str, Any]] = []  # evaluation records
        self.out_dir = Path(out_dir) if out_dir else None
        self.log = None
        if self.out_dir and self.is_main:
            self.log = MetricsLog(self.out_dir / f"metrics.{config.log_format}")

    def _trainable(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    # ----------------------------------------------------------------- the loop
    def fit(self, until_step: int | None = None) -> dict[str, Any]:
        """Train until the step or time budget is spent, `stop_when` says so, or `until_step`
        (to stop early and resume later). Saves ``latest.pt`` (and ``best.pt``) when there
        is an out_dir. Returns the last evaluation record (or {}), with "finished".
        On SIGINT / SIGTERM: finishes the step, saves latest.pt, raises TrainingInterrupted."""
        with StopOnSignal() as stop:
            return self._fit(until_step, stop)

    def _progress_bar(self) -> Any:
        """Steps, or seconds of training against the budget, beside the wall-clock time."""
        from tqdm import tqdm

        config = self.config
        what = "steps" if config.max_steps else "s of training"
        return tqdm(total=config.max_steps or int(config.budget), initial=self._bar_position(),
                    disable=not (config.progress and self.is_main), dynamic_ncols=True,
                    leave=self.description is None, desc=self.description,
                    bar_format="{desc}{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} " + what
                               + " [wall {elapsed}, about {remaining} left{postfix}]")

    def _fit(self, until_step: int | None, stop: StopOnSignal) -> dict[str, Any]:
        config = self.config
        bar = self._progress_bar()
        window_loss, window_tokens, window_start, window_elapsed = 0.0, 0, self.tokens_seen, self.elapsed
        last_eval_elapsed = self.elapsed
        self.model.train()
        while not (self._budget_spent() or self.stopped_early) and (until_step is None or self.step < until_step):
            if agreed(stop.received is not None, self.world_size):
                bar.close()
                raise TrainingInterrupted(stop.received or signal.SIGTERM, self.step, self.save("latest.pt"))
            started = time.perf_counter()
            lr = learning_rate(config, self.step, self.elapsed)
            output = self._train_step(next(self.batches), lr)
            self.step += 1
            self.tokens_seen += output.tokens * self.world_size
            self.elapsed += time.perf_counter() - started
            window_loss += output.data_loss * output.tokens
            window_tokens += output.tokens
            if self.step % config.log_interval == 0:
                rate = (self.tokens_seen - window_start) / max(self.elapsed - window_elapsed, 1e-9)
                loss = mean_across_ranks(window_loss / window_tokens, self.world_size)
                record = self._record("train", {"loss": loss}, lr=lr, rate=rate)
                bar.set_postfix(self._progress_fields(record))
                window_loss, window_tokens, window_start, window_elapsed = 0.0, 0, self.tokens_seen, self.elapsed
            bar.update(self._bar_position() - bar.n)
            if self._evaluation_due(last_eval_elapsed):
                self.evaluate()
                last_eval_elapsed = self.elapsed
                self.model.train()
        bar.close()
        finished = self._budget_spent() or self.stopped_early
        if self.evaluate_fn and (not self.history or self.history[-1]["step"] != self.step):
            self.evaluate()
        self.save("latest.pt")
        result = dict(self.history[-1]) if self.history else {}
        result["finished"] = finished
        return result

    def _progress_fields(self, record: dict[str, Any]) -> dict[str, str]:
        """What the bar shows: the training loss and rate, and the main metric (from the
        last validation when training does not measure it, e.g. BLEU)."""
        shown = {k: f"{v:.3g}" for k, v in record.items() if k in ("loss", self.main_metric, "tokens_per_second")}
        if self.main_metric not in record and self.history and self.main_metric in self.history[-1]:
            shown[f"validation {self.main_metric}"] = f"{self.history[-1][self.main_metric]:.3g}"
        return shown

    def _train_step(self, batch: Any, lr: float) -> LossOutput:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with autocast(self.model, self.config.precision):
            output = self.loss_fn(self.train_model, batch)
        self.optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        if self.weight_average is not None:
            self.weight_average.update()
        return output

    def _budget_spent(self) -> bool:
        spent = bool(self.config.max_steps and self.step >= self.config.max_steps)
        spent = spent or bool(self.config.budget and self.elapsed >= self.config.budget)
        return agreed(spent, self.world_size)  # every rank must stop at the same step

    def _evaluation_due(self, last_eval_elapsed: float) -> bool:
        if self.evaluate_fn is None or self._budget_spent():
            return False  # the final evaluation happens after the loop
        by_steps = self.config.eval_interval and self.step % self.config.eval_interval == 0
        by_time = bool(self.config.eval_interval_seconds) and (
            self.elapsed - last_eval_elapsed >= self.config.eval_interval_seconds)
        if self.config.eval_interval_seconds:  # agree on the time-based decision
            by_time = agreed(by_time, self.world_size)
        return bool(by_steps or by_time)

    def _bar_position(self) -> int:
        return self.step if self.config.max_steps else min(int(self.elapsed), int(self.config.budget))

    def _record(self, split: str, metrics: dict[str, Any], lr: float | None = None,
                rate: float | None = None) -> dict[str, Any]:
        """One log record: the step, the metrics (loss with bits/char or perplexity), progress."""
        metrics = dict(metrics)
        if "loss" in metrics:
            metrics.update(loss_summary(float(metrics["loss"]), self.unit))
        if "tokens" in metrics:  # the evaluation's own size, beside the training tokens seen
            metrics[f"{split}_tokens"] = metrics.pop("tokens")
        record = {"step": self.step, "split": split, **metrics, "lr": lr, "tokens": self.tokens_seen,
                  "tokens_per_second": rate, "elapsed_seconds": round(self.elapsed, 3)}
        record = {k: v for k, v in record.items() if v is not None}
        if self.log:
            self.log.write(record)
        return record

    # ----------------------------------------------------------------- evaluation
    def _evaluated_weights(self) -> list[tuple[nn.Parameter, torch.Tensor]]:
        """What evaluation and best.pt put in place of the weights: the moving average
        (``ema_decay``), ASGD's average once NT-ASGD averages, or nothing."""
        if self.weight_average is not None:
            return self.weight_average.replacements()
        return asgd_averages(self.model, self.optimizer) if self.averaging else []

    def evaluate(self) -> dict[str, Any]:
        """Run the evaluate function (on the averaged weights, `_evaluated_weights`), log,
        keep ``best.pt``, decide the NT-ASGD switch and the early stop, save ``latest.pt``."""
        with weights_replaced(self._evaluated_weights()):
            self.model.eval()
            with torch.no_grad():
                result = self.evaluate_fn(self.model)
        record = self._record("validation", result)
        self.history.append(record)
        if self._improves(record):
            self.best_value = float(record[self.config.best_metric])
            with weights_replaced(self._evaluated_weights()):
                self.save("best.pt")
        self._maybe_start_averaging()
        if self.stop_when is not None and self.stop_when(record):
            self.stopped_early = True
        self.save("latest.pt")  # an interrupted run loses at most one evaluation interval
        return record

    def _improves(self, record: dict[str, Any]) -> bool:
        name = self.config.best_metric
        if name not in record:
            raise ValueError(f"best_metric {name!r} is not among the evaluation's metrics "
                             f"({', '.join(sorted(record))}); set best_metric to one of them")
        value = float(record[name])
        if math.isnan(value):
            return False
        if self.best_value is None:
            return True
        return value < self.best_value if self.config.best_direction == "lower" else value > self.best_value

    def _maybe_start_averaging(self) -> None:
        """NT-ASGD: switch SGD to averaged SGD when validation stopped improving."""
        losses = [record["loss"] for record in self.history]
        if self.config.optimizer == "ntasgd" and not self.averaging and validation_stalled(losses, self.config.nonmono):
            self._switch_to_averaging()
            if self.is_main:
                print(f"NT-ASGD: validation stalled at step {self.step}; averaging weights from now on")

    def _switch_to_averaging(self) -> None:
        self.averaging = True
        self.optimizer = averaging_optimizer(self.config, self._trainable())

    # ----------------------------------------------------------------- checkpoints
    def _process_state(self) -> dict[str, Any]:
        """What differs between data-parallel processes: RNG, data position, carried state."""
        state = {"rng": rng_state(), "batches": self.batches.state_dict()}
        if hasattr(self.loss_fn, "state_dict"):
            state["loss_fn"] = self.loss_fn.state_dict()
        return state

    def state_dict(self, per_process: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The checkpoint: the run schema of `lstmlab.checkpoint` with the training state."""
        state = {
            "format": RUN_FORMAT, "recipe": self.run.recipe, "config": self.run.config,
            "components": self.run.components, "metadata": self.run.metadata,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "averaging": self.averaging,
            "weight_average": None if self.weight_average is None else self.weight_average.state_dict(),
            "trainer": {"step": self.step, "tokens_seen": self.tokens_seen, "elapsed": self.elapsed,
                        "world_size": self.world_size, "best_value": self.best_value,
                        "stopped_early": self.stopped_early, "history": self.history},
            "train_config": dataclasses.asdict(self.config), **self._process_state(),
        }
        if per_process is not None:
            state["per_process"] = per_process
        return state

    def leave_process_group(self) -> None:
        """End torchrun's process group after training (nothing without one); every rank calls it.

        The DDP wrapper goes first, while the group still holds its own reference: DDP's C++
        reducer is freed with the GIL held, and if it dropped the group's last reference there,
        the group would wait for gloo's worker threads while one of them waits for the GIL to
        free a finished collective's tensors (a hang at exit, seen on 2 cores).
        """
        if not dist.is_initialized():
            return
        self.train_model = self.model
        gc.collect()  # the reducer is gone before the group is
        dist.barrier()  # no rank tears down while another still talks to it
        dist.destroy_process_group()

    def save(self, name: str) -> Path | None:
        """Write the full training state to out_dir/name (atomic). Every process must call
        it: under torchrun each one's RNG, data position and carried state are gathered,
        and rank 0 writes."""
        per_process = None
        if self.world_size > 1:
            per_process = [None] * self.world_size
            dist.all_gather_object(per_process, self._process_state())
        if not (self.out_dir and self.is_main):
            return None
        return save_checkpoint(self.state_dict(per_process), self.out_dir / name)

    def resume(self, path: str | Path) -> None:
        """Restore everything `save` wrote; the next `fit()` continues exactly."""
        state = load_checkpoint(path)
        if self.is_main and "trainer" in state:
            print(f"resuming from step {state['trainer']['step']} of {path}", flush=True)
        if "optimizer" not in state or "trainer" not in state:
            raise CheckpointError(f"{path} is not a training checkpoint (format {state.get('format')!r}, "
                                  f"expected {RUN_FORMAT!r} with the training state)")
        state = upgrade(state, path) if self.run.recipe else state
        if self.run.recipe and state.get("recipe") != self.run.recipe:
            raise CheckpointError(f"{path} is a {state.get('recipe')!r} run; it cannot resume a "
                                  f"{self.run.recipe!r} run")
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as error:
            raise CheckpointError(f"{path}: its weights do not fit this model (was the config changed "
                                  f"since the run started?): {str(error).splitlines()[0]}") from error
        if state["averaging"]:
            self._switch_to_averaging()
        self.optimizer.load_state_dict(state["optimizer"])
        self._restore_weight_average(state.get("weight_average"), path)
        self._restore_trainer(state["trainer"])
        saved_processes = state.get("per_process") or [state]
        if len(saved_processes) != self.world_size:
            raise CheckpointError(f"{path} was written by {len(saved_processes)} process(es); resume it "
                                  f"with the same number (this run has {self.world_size})")
        own = saved_processes[self.rank]
        self.batches.load_state_dict(own["batches"])
        if "loss_fn" in own and hasattr(self.loss_fn, "load_state_dict"):
            self.loss_fn.load_state_dict(own["loss_fn"])
        set_rng_state(own["rng"])

    def _restore_weight_average(self, saved: dict[str, Any] | None, path: str | Path) -> None:
        """The moving average as saved; a run saved without one starts it from the weights it resumes."""
        if self.weight_average is None:
            return
        if saved is None:
            self.weight_average = WeightAverage(self._trainable(), self.config.ema_decay)
            return
        try:
            self.weight_average.load_state_dict(saved)
        except ValueError as error:
            raise CheckpointError(f"{path}: {error}") from error

    def _restore_trainer(self, trainer: dict[str, Any]) -> None:
        self.step, self.tokens_seen, self.elapsed = trainer["step"], trainer["tokens_seen"], trainer["elapsed"]
        self.best_value = trainer.get("best_value", trainer.get("best_loss"))
        if self.best_value is not None and math.isinf(self.best_value):
            self.best_value = None  # the first layout started its best loss at +inf
        self.stopped_early = trainer.get("stopped_early", False)
        self.history = list(trainer["history"])
