"""Plain `nn.Module`s built on `lstmlab.LSTM`: no data loading, no training code.

- `lm`: embedding -> LSTM stack -> softmax language model (AWD-LSTM regularisers:
  `embedding_dropout`, `locked_dropout`, `locked_layers`, `activation_regularization`);
- `longlag`: one recurrent layer + read-out, LSTM / GRU / tanh RNN of matched size;
- `seq2seq`: attention encoder-decoder for translation (Luong et al. 2015);
- `recurrent`: the LSTM / GRU / RNN stack they are built from (LSTM options checked).
"""

from torch import nn


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of `module` (every tensor, trainable or not)."""
    return sum(parameter.numel() for parameter in module.parameters())
