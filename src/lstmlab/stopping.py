"""Stopping training cleanly on Ctrl-C (SIGINT) or SIGTERM.

The trainer runs its loop inside `StopOnSignal`: the first signal lets the current step
finish, then the trainer writes latest.pt (atomically) and raises `TrainingInterrupted`;
the command line prints how to resume and exits 130 (SIGINT) or 143 (SIGTERM).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any


class TrainingInterrupted(Exception):
    """Training stopped on SIGINT (Ctrl-C) or SIGTERM after finishing its step; latest.pt
    holds everything up to that step. `exit_code` is 128 + the signal (130, 143)."""

    def __init__(self, signal_number: int, step: int, checkpoint: Path | None):
        self.signal_number, self.step, self.checkpoint = signal_number, step, checkpoint
        self.exit_code = 128 + signal_number
        super().__init__(f"stopped by {signal.Signals(signal_number).name} at step {step}")


class StopOnSignal:
    """While active, the first SIGINT / SIGTERM only sets `received` (the loop then stops
    after its step and saves); the handlers are restored at once, so a second signal
    acts as usual (Ctrl-C raises KeyboardInterrupt; checkpoints are written atomically,
    so neither can leave a half-written file)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():  # signal handlers live there only
            self.previous = {number: signal.signal(number, self._handle) for number in self.SIGNALS}
        return self

    def _handle(self, number: int, frame: Any) -> None:
        self.received = number
        self._restore()

    def _restore(self) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)
        self.previous = {}

    def __exit__(self, *exc: Any) -> None:
        self._restore()
