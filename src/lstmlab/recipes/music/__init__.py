"""Polyphonic music: Bach's chorales from music21 as piano rolls, frame-level NLL.

- `config`: `MusicConfig`; `task`: batches, loss, evaluation and the trainer wiring;
  `recipe`: the hooks of the registry. The data is `lstmlab.data.chorales`, the model
  `lstmlab.models.music`.
"""

from lstmlab.recipes.music.recipe import MusicRecipe

RECIPE = MusicRecipe()
