"""The training loop shared by every task: small, generic, resumable.

A task hands the `Trainer` four things and keeps everything task-specific to itself:

- ``model``: an ``nn.Module``;
- ``batches``: an endless iterator of batches with ``state_dict()`` / ``load_state_dict()``
  (its position is part of the checkpoint);
- ``loss_fn(model, batch) -> LossOutput``: the objective to minimise, how many tokens it
  covered, and the data loss in mean nats per token for the log. If it carries state
  across batches (an LM's hidden state) it may define ``state_dict`` / ``load_state_dict``;
- ``evaluate(model) -> {"loss": mean nats per token, "tokens": n, ...}`` (optional).

The trainer owns the optimizer (AdamW, SGD, or SGD switching to averaged SGD, NT-ASGD of
Merity et al. 2017), gradient clipping, the LR schedule (warm-up, then constant, linear
or cosine decay over the step or time budget), evaluation at intervals, a progress bar
(loss, bits/char or perplexity, tokens/s), the metrics log and checkpoints.

Checkpoints hold the model, optimizer, RNG states (torch, python, numpy), data position
and carried state, so ``resume`` continues exactly: a run stopped at step k and resumed
draws the same batches and dropout masks as an uninterrupted run with the same seed.

Data parallel: started under ``torchrun``, the trainer joins a gloo process group, wraps
the model in DistributedDataParallel and lets only rank 0 print, log and save.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from lstmlab.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from lstmlab.config import choice
from lstmlab.metrics import MetricsLog, loss_summary

CHECKPOINT_FORMAT = "lstmlab.train/1"
LOG_FIELDS = ["step", "split", "loss", "bits_per_char", "perplexity", "lr", "tokens",
              "tokens_per_second", "elapsed_seconds"]


@dataclass
class TrainConfig:
    """How to optimise (shared by every task)."""

    optimizer: str = choice("adamw", ("adamw", "sgd", "ntasgd"))  # ntasgd: SGD, then averaged SGD
    lr: float = 3e-3  # peak learning rate
    weight_decay: float = 0.0  # decoupled for AdamW, L2 for SGD
    momentum: float = 0.0  # SGD only
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    schedule: str = choice("cosine", ("constant", "linear", "cosine"))  # decay after warm-up
    warmup_steps: int = 0  # linear warm-up from 0 to lr
    min_lr_ratio: float = 0.05  # the decayed LR ends at lr * min_lr_ratio
    max_steps: int = 0  # step budget; 0 = none (then budget must be set)
    budget: float = 0.0  # time budget in seconds of training (evaluation excluded); 0 = none
    eval_interval: int = 0  # evaluate every this many steps; 0 = only at the end
    eval_interval_seconds: float = 0.0  # ... or every this many seconds; 0 = off
    log_interval: int = 25  # steps between training log records
    nonmono: int = 5  # NT-ASGD: switch to averaging when validation has not improved for this many evaluations
    seed: int = 1234  # seeds torch, python and numpy
    threads: int = 0  # torch intra-op threads; 0 = torch's default (1 is faster on a busy machine)
    log_format: str = choice("jsonl", ("jsonl", "csv"))  # metrics.jsonl or metrics.csv in the run folder
    progress: bool = True  # show a progress bar


@dataclass
class LossOutput:
    """What a task's loss function returns for one batch."""

    loss: torch.Tensor  # scalar objective to minimise (data loss + regularisers)
    tokens: int  # tokens (targets) in this batch on this process
    data_loss: float  # mean nats per token of the data term alone (logged)


def seed_everything(seed: int) -> None:
    """Seed torch, python and numpy (call before building the model)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The RNG states of torch, python and numpy as tensors and plain types."""
    version, internal, gauss = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": [version, list(internal), gauss],
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached]}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))


def init_distributed() -> tuple[int, int]:
    """Join the gloo process group when started by torchrun; returns (rank, world_size)."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and not dist.is_initialized():
        dist.init_process_group("gloo")
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def make_optimizer(config: TrainConfig, parameters: list[nn.Parameter]) -> torch.optim.Optimizer:
    if config.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay)


def learning_rate(config: TrainConfig, step: int, elapsed: float) -> float:
    """LR after `step` steps and `elapsed` seconds: warm-up, then decay over the budget."""
    if config.warmup_steps and step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = 0.0
    if config.max_steps:
        progress = max(progress, (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps))
    if config.budget:
        progress = max(progress, elapsed / config.budget)
    progress = min(progress, 1.0)
    if config.schedule == "constant":
        return config.lr
    if config.schedule == "linear":
        shape = 1.0 - progress
    else:
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    return config.lr * (config.min_lr_ratio + (1.0 - config.min_lr_ratio) * shape)


class Trainer:
    """Runs the loop; see the module docstring. Use `fit()`, then read `history`."""

    def __init__(self, model: nn.Module, batches: Any, loss_fn: Callable[[nn.Module, Any], LossOutput],
                 config: TrainConfig, *, evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
                 out_dir: str | Path | None = None, metadata: dict[str, Any] | None = None,
                 unit: str = "token"):
        if not config.max_steps and not config.budget:
            raise ValueError("set a step budget (max_steps) or a time budget (budget seconds)")
        self.model, self.batches, self.loss_fn, self.config = model, batches, loss_fn, config
        self.evaluate_fn, self.metadata, self.unit = evaluate, metadata or {}, unit
        if config.threads:
            torch.set_num_threads(config.threads)
        self.rank, self.world_size = init_distributed()
        self.is_main = self.rank == 0
        self.train_model: nn.Module = model
        if self.world_size > 1:
            self.train_model = nn.parallel.DistributedDataParallel(model)
        self.optimizer = make_optimizer(config, [p for p in model.parameters() if p.requires_grad])
        self.averaging = False  # NT-ASGD has switched to averaged SGD
        self.step, self.tokens_seen, self.elapsed = 0, 0, 0.0
        self.best_loss = math.inf
        self.history: list[dict[str, Any]] = []  # evaluation records
        self.out_dir = Path(out_dir) if out_dir else None
        self.log = None
        if self.out_dir and self.is_main:
            self.log = MetricsLog(self.out_dir / f"metrics.{config.log_format}", fields=LOG_FIELDS)

    # ----------------------------------------------------------------- the loop
    def fit(self, until_step: int | None = None) -> dict[str, Any]:
        """Train until the step or time budget is spent (or `until_step`, to stop early and
        resume later). Saves ``latest.pt`` (and ``best.pt``) when there is an out_dir.
        Returns the last evaluation record (or {} without an evaluate function)."""
        from tqdm import tqdm

        config = self.config
        bar = tqdm(total=config.max_steps or int(config.budget), initial=self._bar_position(),
                   unit="step" if config.max_steps else "s", disable=not (config.progress and self.is_main),
                   dynamic_ncols=True, leave=True)
        window_loss, window_tokens, window_start, window_elapsed = 0.0, 0, self.tokens_seen, self.elapsed
        last_eval_elapsed = self.elapsed
        self.model.train()
        while not self._budget_spent() and (until_step is None or self.step < until_step):
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
                record = self._record("train", self._mean_across_ranks(window_loss / window_tokens), lr, rate)
                bar.set_postfix({k: f"{v:.3g}" for k, v in record.items()
                                 if k in ("loss", "bits_per_char", "perplexity", "tokens_per_second")})
                window_loss, window_tokens, window_start, window_elapsed = 0.0, 0, self.tokens_seen, self.elapsed
            bar.update(self._bar_position() - bar.n)
            if self._evaluation_due(last_eval_elapsed):
                self.evaluate()
                last_eval_elapsed = self.elapsed
                self.model.train()
        bar.close()
        finished = self._budget_spent()
        if self.evaluate_fn and (not self.history or self.history[-1]["step"] != self.step):
            self.evaluate()
        self.save("latest.pt")
        result = dict(self.history[-1]) if self.history else {}
        result["finished"] = finished
        return result

    def _train_step(self, batch: Any, lr: float) -> LossOutput:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        output = self.loss_fn(self.train_model, batch)
        self.optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        return output

    def _budget_spent(self) -> bool:
        spent = bool(self.config.max_steps and self.step >= self.config.max_steps)
        spent = spent or bool(self.config.budget and self.elapsed >= self.config.budget)
        if self.world_size > 1:  # every rank must stop at the same step
            flag = torch.tensor([float(spent)])
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            spent = bool(flag.item())
        return spent

    def _evaluation_due(self, last_eval_elapsed: float) -> bool:
        if self.evaluate_fn is None or self._budget_spent():
            return False  # the final evaluation happens after the loop
        by_steps = self.config.eval_interval and self.step % self.config.eval_interval == 0
        by_time = self.config.eval_interval_seconds and (
            self.elapsed - last_eval_elapsed >= self.config.eval_interval_seconds)
        if self.world_size > 1 and self.config.eval_interval_seconds:  # agree on the time-based decision
            flag = torch.tensor([float(bool(by_time))])
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            by_time = bool(flag.item())
        return bool(by_steps or by_time)

    def _bar_position(self) -> int:
        return self.step if self.config.max_steps else min(int(self.elapsed), int(self.config.budget))

    def _mean_across_ranks(self, value: float) -> float:
        if self.world_size == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)
        return tensor.item() / self.world_size

    def _record(self, split: str, loss: float, lr: float | None, rate: float | None,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
        record = {"step": self.step, "split": split, **loss_summary(loss, self.unit), "lr": lr,
                  "tokens": self.tokens_seen, "tokens_per_second": rate,
                  "elapsed_seconds": round(self.elapsed, 3), **(extra or {})}
        record = {k: v for k, v in record.items() if v is not None}
        if self.log:
            self.log.write(record)
        return record

    # ----------------------------------------------------------------- evaluation
    def evaluate(self) -> dict[str, Any]:
        """Run the evaluate function (on averaged weights once NT-ASGD averages), log,
        keep ``best.pt``, decide the NT-ASGD switch, and save ``latest.pt``."""
        with self._averaged_weights():
            self.model.eval()
            with torch.no_grad():
                result = self.evaluate_fn(self.model)
        record = self._record("validation", float(result["loss"]), None, None)
        self.history.append(record)
        if record["loss"] < self.best_loss:
            self.best_loss = record["loss"]
            with self._averaged_weights():
                self.save("best.pt")
        self._maybe_start_averaging()
        self.save("latest.pt")  # an interrupted run loses at most one evaluation interval
        return record

    def _maybe_start_averaging(self) -> None:
        """NT-ASGD: switch SGD to averaged SGD when validation stopped improving."""
        losses = [record["loss"] for record in self.history]
        nonmono = self.config.nonmono
        if (self.config.optimizer == "ntasgd" and not self.averaging and len(losses) > nonmono
                and losses[-1] > min(losses[:-nonmono])):
            self._switch_to_averaging()
            if self.is_main:
                print(f"NT-ASGD: validation stalled at step {self.step}; averaging weights from now on")

    def _switch_to_averaging(self) -> None:
        self.averaging = True
        self.optimizer = torch.optim.ASGD([p for p in self.model.parameters() if p.requires_grad],
                                          lr=self.config.lr, t0=0, lambd=0.0,
                                          weight_decay=self.config.weight_decay)

    class _Swap:
        def __init__(self, trainer: "Trainer"):
            self.trainer, self.saved = trainer, []

        def __enter__(self) -> None:
            if not self.trainer.averaging:
                return
            for p in self.trainer.model.parameters():
                average = self.trainer.optimizer.state.get(p, {}).get("ax")
                if average is not None:
                    self.saved.append((p, p.detach().clone()))
                    p.data.copy_(average)

        def __exit__(self, *exc: Any) -> None:
            for p, value in self.saved:
                p.data.copy_(value)

    def _averaged_weights(self) -> "Trainer._Swap":
        return Trainer._Swap(self)

    # ----------------------------------------------------------------- checkpoints
    def _process_state(self) -> dict[str, Any]:
        """What differs between data-parallel processes: RNG, data position, carried state."""
        state = {"rng": rng_state(), "batches": self.batches.state_dict()}
        if hasattr(self.loss_fn, "state_dict"):
            state["loss_fn"] = self.loss_fn.state_dict()
        return state

    def state_dict(self, per_process: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        state = {
            "format": CHECKPOINT_FORMAT, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "averaging": self.averaging,
            "trainer": {"step": self.step, "tokens_seen": self.tokens_seen, "elapsed": self.elapsed,
                        "world_size": self.world_size,
                        "best_loss": self.best_loss, "history": self.history},
            "train_config": dataclasses.asdict(self.config), "metadata": self.metadata,
            **self._process_state(),
        }
        if per_process is not None:
            state["per_process"] = per_process
        return state

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
        if state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path} is not a training checkpoint (format {state.get('format')!r}, "
                                  f"expected {CHECKPOINT_FORMAT!r})")
        self.model.load_state_dict(state["model"])
        if state["averaging"]:
            self._switch_to_averaging()
        self.optimizer.load_state_dict(state["optimizer"])
        trainer = state["trainer"]
        self.step, self.tokens_seen, self.elapsed = trainer["step"], trainer["tokens_seen"], trainer["elapsed"]
        self.best_loss, self.history = trainer["best_loss"], list(trainer["history"])
        saved_processes = state.get("per_process") or [state]
        if len(saved_processes) != self.world_size:
            raise CheckpointError(f"{path} was written by {len(saved_processes)} process(es); resume it "
                                  f"with the same number (this run has {self.world_size})")
        own = saved_processes[self.rank]
        self.batches.load_state_dict(own["batches"])
        if "loss_fn" in own and hasattr(self.loss_fn, "load_state_dict"):
            self.loss_fn.load_state_dict(own["loss_fn"])
        set_rng_state(own["rng"])
