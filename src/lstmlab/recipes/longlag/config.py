"""The long-lag recipe's configuration for `lstmlab train longlag` (one task, one model, one seed).

`lstmlab longlag` runs many such runs (suites, several models and seeds, in parallel);
both go through `experiment.train_one` on the shared trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lstmlab.config import choice
from lstmlab.models.longlag import MODEL_KINDS
from lstmlab.train import TrainConfig

from .experiment import longlag_train_config
from .task_registry import TASKS


@dataclass
class LongLagDataConfig:
    """Which task, at which length, and how many sequences per update and per check."""

    task: str = choice("adding", tuple(TASKS))  # a task of `lstmlab longlag --task`
    length: int = 0  # the task's lag or length (as --length); 0 = the task's default
    batch_size: int = 32  # sequences per update
    eval_size: int = 2560  # held-out sequences per success check


@dataclass
class ContenderConfig:
    """Which model: the LSTM (any variant), or a GRU / tanh RNN of the LSTM's parameter count."""

    kind: str = choice("lstm", MODEL_KINDS)  # lstm, gru or rnn
    hidden_size: int = 32  # the LSTM's hidden size; gru/rnn get a matched parameter count
    lstm_options: str = ""  # lstmlab.LSTM variants, e.g. "layer_norm,peephole,forget_bias=1"
    chrono: str = "auto"  # chrono init horizon (LSTM, GRU): auto (the task's longest sequence), none, or steps
    input_to_output: bool = False  # a linear input -> output shortcut (the 1997 nets had one)


@dataclass
class LongLagConfig:
    """Everything `lstmlab train longlag` needs (the train section's seed is the run's seed)."""

    data: LongLagDataConfig = field(default_factory=LongLagDataConfig)
    model: ContenderConfig = field(default_factory=ContenderConfig)
    train: TrainConfig = field(default_factory=lambda: longlag_train_config(progress=True))
