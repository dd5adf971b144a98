"""lstmlab: LSTM networks, opened up.

Public API: `LSTM`, `LSTMCell` (drop-ins for torch.nn.LSTM / LSTMCell with variants
and a trace of every gate), `Stream` (real-time one-step inference), `Trace`,
`LayerTrace`, and `engines`.
"""

from . import engines
from .cell import GATES, CellSpec
from .nn import LSTM, LSTMCell
from .stream import Stream
from .trace import LayerTrace, Trace

__version__ = "0.1.0"
__all__ = ["LSTM", "LSTMCell", "Stream", "Trace", "LayerTrace", "CellSpec", "GATES", "engines", "__version__"]
