"""The speech recipe: BiLSTM-CTC on `lstmlab.LSTM`, prefix beam search with an lstmlab LM.

`lstmlab train speech`, `lstmlab transcribe RUN FILE.wav`, `lstmlab evaluate RUN [--lm LM]`,
`lstmlab inspect RUN --audio FILE.wav`; `lstmlab.load(RUN).transcribe(wave, rate)`.
"""

from lstmlab.recipes.speech.recipe import SpeechRecipe

RECIPE = SpeechRecipe()

__all__ = ["RECIPE", "SpeechRecipe"]
