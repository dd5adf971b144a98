"""Whole models with lstmlab modules inside survive `torch.save(model)` / `torch.load(path)`.

Since torch 2.6, `torch.load` defaults to ``weights_only=True``: its unpickler rebuilds
tensors, containers and plain values, and only the classes on its allow-list. Code that
saves a whole model (``torch.save(model, f)``, as pytorch/examples' word_language_model
does) would fail on the first lstmlab class it meets (``Unsupported global: GLOBAL
lstmlab.nn.LSTM``). Importing lstmlab puts its module classes, and every non-builtin type
their attributes hold, on that list (`register`), so such a file loads without executing
arbitrary code.

Kept deliberately small: these classes' state is tensors, numbers, strings, tuples, lists
and the frozen dataclass `CellSpec` (engine caches such as the packed step weights live
outside the module, in a weak dictionary, and are never pickled). A class that adds state
of another type must add that type to `SAFE_TYPES`, and `tests/test_serialization.py`
fails until it does.

What stays the user's part: their own model class and torch.nn's classes around the LSTM
(torch does not allow-list ``nn.Linear`` or ``nn.Embedding`` either), e.g.
``torch.serialization.add_safe_globals([MyModel, nn.Linear, nn.Embedding])``.
"""

from __future__ import annotations

import torch


def safe_types() -> list[type]:
    """lstmlab's classes that a pickled model may hold: the modules and their config types."""
    from .cell import CellSpec
    from .models.acoustic import AcousticModel, AcousticModelConfig
    from .models.lm import LanguageModel, LMModelConfig
    from .models.locked_dropout import LockedDropout
    from .models.locked_layers import LayerByLayer
    from .models.longlag import LongLagModel, ModelConfig
    from .models.seq2seq import Seq2Seq, Seq2SeqConfig
    from .nn import LSTM, LSTMCell

    return [LSTM, LSTMCell, CellSpec, LanguageModel, LMModelConfig, LockedDropout, LayerByLayer,
            AcousticModel, AcousticModelConfig, Seq2Seq, Seq2SeqConfig, LongLagModel, ModelConfig]


def register() -> None:
    """Allow-list `safe_types()` for ``torch.load(..., weights_only=True)`` (done on import)."""
    torch.serialization.add_safe_globals(safe_types())
