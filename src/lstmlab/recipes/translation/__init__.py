"""The translation recipe: attention encoder-decoder on `lstmlab.LSTM`, beam search, BLEU.

`lstmlab train translation`, `lstmlab translate RUN`, `lstmlab evaluate RUN`,
`lstmlab inspect RUN --text ...`; `lstmlab.load(RUN).translate([...])`.
"""

from lstmlab.recipes.translation.recipe import TranslationRecipe

RECIPE = TranslationRecipe()

__all__ = ["RECIPE", "TranslationRecipe"]
