"""The language-model configuration: typed sections for data, model and training."""

from __future__ import annotations

from dataclasses import dataclass, field

from lstmlab.config import choice
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
class LMModelConfig:
    """Embedding -> recurrent layers -> optional projection -> softmax, with AWD regularisers."""

    cell: str = choice("lstm", ("lstm", "gru", "rnn"))  # gru/rnn: baselines of matched size
    embedding_size: int = 128  # token embedding width E
    hidden_size: int = 256  # LSTM hidden width H (gru/rnn: chosen to match parameters if match_parameters)
    num_layers: int = 2  # stacked recurrent layers
    projection_size: int = 0  # linear layer H -> P before the softmax; 0 = none
    tie_weights: bool = False  # share the embedding and softmax weights (needs P or H == E)
    match_parameters: bool = True  # gru/rnn: pick hidden_size so the model has the LSTM's parameter count
    dropout_embedding: float = 0.0  # drop whole tokens from the embedding (AWD "dropoute")
    dropout_input: float = 0.0  # locked dropout on the embeddings
    dropout_between_layers: float = 0.0  # locked dropout between recurrent layers
    dropout_output: float = 0.0  # locked dropout on the top layer's output
    weight_drop: float = 0.0  # DropConnect on the recurrent weights W_hh (LSTM only)
    ar_alpha: float = 0.0  # activation regularisation weight
    tar_beta: float = 0.0  # temporal activation regularisation weight
    peephole: bool = False  # LSTM variant: peephole connections
    layer_norm: bool = False  # LSTM variant: layer normalisation
    coupled: bool = False  # LSTM variant: coupled input-forget gate
    forget_bias: float = 0.0  # LSTM: added to the forget-gate bias at initialisation
    zoneout: float = 0.0  # LSTM variant: zoneout probability
    engine: str = choice("auto", ("auto", "reference", "native"))  # lstmlab.LSTM engine


@dataclass
class LMConfig:
    """Everything `lstmlab train lm` needs."""

    data: LMDataConfig = field(default_factory=LMDataConfig)
    model: LMModelConfig = field(default_factory=LMModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
