"""The language-model recipe's configuration: typed sections for data, model and training.

The model section, `LMModelConfig`, lives with the model (`lstmlab.models.lm`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lstmlab.config import choice
from lstmlab.models.lm import LMModelConfig
from lstmlab.train import TrainConfig


@dataclass
class LMDataConfig:
    """Which text, how it is tokenised and batched."""

    path: str | None = None  # UTF-8 file or folder; None = the bundled Shakespeare plays
    tokenizer: str = choice("char", ("char", "bpe"))  # characters, or sentencepiece BPE
    vocab_size: int = 2000  # BPE vocabulary size (ignored for characters)
    batch_size: int = 64  # parallel streams per step (split across torchrun processes)
    bptt: int = 100  # truncated-BPTT window length in tokens
    variable_bptt: bool = False  # draw each window's length around bptt (AWD-LSTM)
    eval_batch_size: int = 16  # parallel streams when evaluating
    eval_tokens: int = 0  # evaluate during training on at most this many validation tokens; 0 = all


@dataclass
class LMConfig:
    """Everything `lstmlab train lm` needs."""


    data: LMDataConfig = field(default_factory=LMDataConfig)
    model: LMModelConfig = field(default_factory=LMModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
