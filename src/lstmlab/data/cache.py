"""Where lstmlab caches what it builds from data: ``$LSTMLAB_CACHE/<name>``, by default
``~/.cache/lstmlab/<name>`` (an empty LSTMLAB_CACHE counts as unset)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_folder(name: str) -> Path:
    """The cache folder of one kind of data ("speech", "translation", "music", ...)."""
    return Path(os.environ.get("LSTMLAB_CACHE") or Path.home() / ".cache" / "lstmlab") / name
