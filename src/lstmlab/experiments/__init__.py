"""Experiments: the long-time-lag tasks of Hochreiter & Schmidhuber (1997) and modern standards."""
