"""Language modelling: character or subword LSTM language models (AWD-LSTM options).

- `config`: `LMConfig` (data, model, train sections); `task`: data, loss, evaluation and
  the trainer wiring; `generation`: sampling; `inspect`: the gate report;
  `recipe`: the hooks of the registry; `cli`: `lstmlab generate`; `demo`: `lstmlab demo`.
"""

from lstmlab.recipes.lm.recipe import LanguageModelRecipe

RECIPE = LanguageModelRecipe()
