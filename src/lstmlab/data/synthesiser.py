"""What the speech synthesisers (`espeak`, `flite`) share: finding the program, and running
it into a WAV file with an error that names the text, the voice and the program's own words."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def find_program(name: str, error: type[Exception], advice: str) -> str:
    """The path of the program `name`, or `error(advice)` when it is not installed."""
    found = shutil.which(name)
    if found is None:
        raise error(advice)
    return found


def speak_to_wav(command: list[str], path: Path, error: type[Exception], text: str, voice: str) -> Path:
    """Run a synthesiser `command` that writes the WAV file `path`; `error` naming the
    program, the text and the voice when it fails or writes no audio (a bare 44-byte header)."""
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not path.is_file() or path.stat().st_size <= 44:
        raise error(f"{Path(command[0]).name} failed on {text[:60]!r} with voice {voice} "
                    f"(exit {result.returncode}): {result.stderr.strip()[:300]}")
    return path
