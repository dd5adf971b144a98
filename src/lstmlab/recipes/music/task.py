"""The music recipe's data, loss and evaluation on the shared trainer.

A chorale of T frames is scored frame by frame: the model sees a silent frame, then
frames 0 … T-2, and gives the probability of each key in frames 0 … T-1. The loss is the
negative log-likelihood in nats per frame (the sum over the 88 keys of the Bernoulli
NLL, averaged over real frames; padding is masked), as Boulanger-Lewandowski et al. 2012.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lstmlab.checkpoint import RunInfo
from lstmlab.data.chorales import Chorales, load_chorales
from lstmlab.models import count_parameters
from lstmlab.models.music import PianoRollModel
from lstmlab.recipes.base import refuse_existing_run
from lstmlab.recipes.music.config import MusicConfig
from lstmlab.reproducibility import seed_everything
from lstmlab.train import LossOutput, Trainer

RECIPE_NAME = "music"


@dataclasses.dataclass
class RollBatch:
    """Padded, time-major: inputs and targets (T, B, 88) float32, mask (T, B) bool."""

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor

    @property
    def frames(self) -> int:
        return int(self.mask.sum())


def make_batch(rolls: list[np.ndarray]) -> RollBatch:
    """Pad chorales to the longest; inputs are the targets shifted one frame right."""
    steps = max(len(roll) for roll in rolls)
    targets = torch.zeros(steps, len(rolls), rolls[0].shape[1])
    mask = torch.zeros(steps, len(rolls), dtype=torch.bool)
    for column, roll in enumerate(rolls):
        targets[:len(roll), column] = torch.from_numpy(roll.astype(np.float32))
        mask[:len(roll), column] = True
    inputs = torch.cat((torch.zeros_like(targets[:1]), targets[:-1]), dim=0)
    return RollBatch(inputs, targets, mask)


class ChoraleBatches:
    """Endless training batches: `batch_size` chorales drawn without replacement per epoch
    (a fresh permutation each epoch from a private generator, so resuming is exact).
    window > 0: each chorale is cut to a random window of that many frames (shorter
    chorales stay whole), which makes a step cheaper; the window's first frame is then
    predicted from silence, as a chorale's first frame is."""

    def __init__(self, rolls: list[np.ndarray], batch_size: int, seed: int, window: int = 0):
        if not rolls:
            raise ValueError("the music recipe has no training chorales")
        if window < 0:
            raise ValueError(f"data.window: expected 0 (whole chorales) or a number of frames, got {window}")
        self.rolls, self.batch_size, self.window = rolls, min(batch_size, len(rolls)), window
        self.generator = torch.Generator().manual_seed(seed)
        self.order: list[int] = []

    def __next__(self) -> RollBatch:
        if len(self.order) < self.batch_size:
            self.order = torch.randperm(len(self.rolls), generator=self.generator).tolist()
        chosen, self.order = self.order[:self.batch_size], self.order[self.batch_size:]
        return make_batch([self.cut(self.rolls[index]) for index in chosen])

    def cut(self, roll: np.ndarray) -> np.ndarray:
        if not self.window or len(roll) <= self.window:
            return roll
        start = int(torch.randint(len(roll) - self.window + 1, (1,), generator=self.generator))
        return roll[start:start + self.window]

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "order": list(self.order)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.order = list(state["order"])


def frame_nll(logits: torch.Tensor, batch: RollBatch) -> torch.Tensor:
    """Summed NLL over keys and real frames (nats), a scalar."""
    per_key = F.binary_cross_entropy_with_logits(logits, batch.targets, reduction="none")  # (T, B, 88)
    return (per_key.sum(-1) * batch.mask).sum()


def music_loss(model: PianoRollModel, batch: RollBatch) -> LossOutput:
    frames = batch.frames
    loss = frame_nll(model(batch.inputs), batch) / frames
    return LossOutput(loss, frames, loss.item())


@torch.no_grad()
def evaluate_rolls(model: PianoRollModel, rolls: list[np.ndarray], batch_size: int) -> dict[str, float]:
    """NLL per frame over every frame of `rolls` (longest first, in batches), and the count."""
    if not rolls:
        raise ValueError("nothing to evaluate: the split has no chorales")
    was_training = model.training
    model.eval()
    ordered = sorted(rolls, key=len, reverse=True)
    total, frames = 0.0, 0
    for start in range(0, len(ordered), batch_size):
        batch = make_batch(ordered[start:start + batch_size])
        total += float(frame_nll(model(batch.inputs), batch))
        frames += batch.frames
    model.train(was_training)
    return {"loss": total / frames, "tokens": frames, "chorales": len(rolls)}


def build_trainer(config: MusicConfig, data: Chorales, out_dir: str | Path | None) -> Trainer:
    seed_everything(config.train.seed)
    model = PianoRollModel(config.model)
    batches = ChoraleBatches(data.train, config.data.batch_size, config.train.seed, config.data.window)

    def evaluate(model: PianoRollModel) -> dict[str, float]:
        return evaluate_rolls(model, data.validation, config.data.eval_batch_size)

    run = RunInfo(RECIPE_NAME, dataclasses.asdict(config), {},
                  {"corpus": data.description, "parameters": count_parameters(model)})
    return Trainer(model, batches, music_loss, config.train, evaluate=evaluate, out_dir=out_dir, run=run,
                   unit="frame", main_metric="loss")


def train_music(config: MusicConfig, out_dir: str | Path | None, *, resume: bool = False,
                data: Chorales | None = None) -> dict[str, Any]:
    """Train (or resume) and return the last validation record, with "parameters" and "trainer"."""
    refuse_existing_run(out_dir, resume)
    data = data or load_chorales(config.data.limit or None, progress=config.train.progress)
    trainer = build_trainer(config, data, out_dir)
    if resume:
        trainer.resume(Path(out_dir) / "latest.pt")
    if trainer.is_main and config.train.progress:
        print(f"data: {data.description}; model: {trainer.run.metadata['parameters']:,} parameters, "
              f"cell {config.model.cell}{' ' + config.model.variant if config.model.variant else ''} "
              f"(hidden {config.model.hidden_size})", flush=True)
    result = trainer.fit()
    result["parameters"] = trainer.run.metadata["parameters"]
    result["trainer"] = trainer
    return result
