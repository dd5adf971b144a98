"""The music recipe's configuration: which chorales, how they are batched, the model, training."""

from __future__ import annotations

from dataclasses import dataclass, field

from lstmlab.models.music import MusicModelConfig
from lstmlab.train import TrainConfig


@dataclass
class MusicDataConfig:
    """Bach's chorales (music21) as eighth-note piano rolls."""

    batch_size: int = 16  # chorales per step
    window: int = 0  # train on random windows of this many frames (each starts from silence); 0 = whole chorales
    limit: int = 0  # use at most this many chorales per split (the first by name); 0 = all
    eval_batch_size: int = 64  # chorales per evaluation batch


@dataclass
class MusicConfig:
    """Everything `lstmlab train music` needs."""

    data: MusicDataConfig = field(default_factory=MusicDataConfig)
    model: MusicModelConfig = field(default_factory=MusicModelConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=3e-3, eval_interval=200))
