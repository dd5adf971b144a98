"""Plain `nn.Module`s built on `lstmlab.LSTM`: no data loading, no training code.

- `lm`: embedding -> LSTM stack -> softmax language model (AWD-LSTM regularisers:
  `embedding_dropout`, `locked_dropout`, `locked_layers`, `activation_regularization`);
- `longlag`: one recurrent layer + read-out, LSTM / GRU / tanh RNN of matched size.
"""

from torch import nn


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of `module` (every tensor, trainable or not)."""
    return sum(parameter.numel() for parameter in module.parameters())
