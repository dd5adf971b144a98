"""lstmlab: LSTM networks, opened up.

Public API: `LSTM`, `LSTMCell` (drop-ins for torch.nn.LSTM / LSTMCell with variants
and a trace of every gate), `Stream` (real-time one-step inference), `Trace`,
`LayerTrace`, `engines`, and `load` (a trained run of any recipe, ready to use).
"""

from . import engines, serialization
from .cell import GATES, CellSpec
from .nn import LSTM, LSTMCell
from .stream import Stream
from .trace import LayerTrace, Trace

__version__ = "0.1.0"

serialization.register()  # whole models holding lstmlab modules load with torch.load's weights_only default


def load(path):
    """A trained run (run folder or checkpoint file) of any recipe: see `lstmlab.runs`."""
    from .runs import load as load_run  # imported on use: the recipes import lstmlab

    return load_run(path)


__all__ = ["LSTM", "LSTMCell", "Stream", "Trace", "LayerTrace", "CellSpec", "GATES", "engines", "load", "__version__"]
