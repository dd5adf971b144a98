"""Plain `nn.Module`s built on `lstmlab.LSTM`: no data loading, no training code.

- `lm`: embedding -> LSTM stack -> softmax language model (AWD-LSTM regularisers:
  `embedding_dropout`, `locked_dropout`, `locked_layers`, `activation_regularization`);
- `longlag`: one recurrent layer + read-out, LSTM / GRU / tanh RNN of matched size.
"""
