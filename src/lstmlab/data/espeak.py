"""Speech synthesised by Debian's `espeak-ng`: voices, held-out voices, one utterance to WAV.

A *voice* here is an English accent (``en-us``, ``en-gb-scotland``, ...) with an optional
variant (``+m3``, ``+f2``, ``+klatt``, ... about 100 of them), a speed (words per minute),
a pitch (0-99) and a gap between words. Validation and test use **variants never used in
training** (`VALIDATION_VARIANTS`, `TEST_VARIANTS`), under every accent, so the recogniser
is scored on voices it never heard.

espeak-ng writes 22.05 kHz mono WAV with ``-w`` (its ``--stdout`` header carries a bogus
frame count, so a file is used). Install it with ``apt-get install espeak-ng``
(``make espeak`` does that).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# English accents of espeak-ng 1.51 (the mbrola voices need extra packages and are left out).
ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029")
# Variants held out by name (fixed, so the split is the same everywhere). The rest train.
VALIDATION_VARIANTS = ("f4", "m6", "klatt2", "john", "linda", "norbert")
TEST_VARIANTS = ("f2", "m4", "klatt3", "Andy", "belinda", "iven2", "steph2", "max", "travis", "zac")
# Variants too far from speech to learn from (whispers, croaks and robots) stay out of every split.
EXCLUDED_VARIANTS = ("whisper", "whisperf", "croak", "Demonic", "UniRobot", "anikaRobot", "Tweaky",
                     "robosoft", "robosoft2", "robosoft3", "robosoft4", "robosoft5", "robosoft6",
                     "robosoft7", "robosoft8", "kaukovalta")


class EspeakError(RuntimeError):
    """espeak-ng is missing or failed."""


@dataclass(frozen=True)
class Voice:
    accent: str  # one of ACCENTS
    variant: str | None  # a variant name, or None for the accent's own voice
    speed: int  # words per minute (espeak -s)
    pitch: int  # 0-99 (espeak -p)
    gap: int = 0  # extra pause between words, in 10 ms units (espeak -g)

    @property
    def name(self) -> str:
        return self.accent + (f"+{self.variant}" if self.variant else "")


def espeak_binary() -> str:
    """The espeak-ng program, or EspeakError saying how to install it."""
    found = shutil.which("espeak-ng")
    if found is None:
        raise EspeakError("the speech recipe synthesises its training speech with espeak-ng, which is not "
                          "installed: run `make espeak` (or `apt-get install espeak-ng`), or train on your "
                          "own recordings with --data FOLDER_OR_MANIFEST")
    return found


@functools.lru_cache(maxsize=1)
def espeak_version() -> str:
    result = subprocess.run([espeak_binary(), "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip()


@functools.lru_cache(maxsize=1)
def installed_variants() -> tuple[str, ...]:
    """The variant names espeak-ng has (``espeak-ng --voices=variant``), sorted."""
    result = subprocess.run([espeak_binary(), "--voices=variant"], capture_output=True, text=True, check=False)
    names = []
    for line in result.stdout.splitlines()[1:]:  # columns: Pty Language Age/Gender VoiceName File ...
        fields = line.split()
        if len(fields) >= 5 and fields[4].startswith("!v/"):
            names.append(fields[4][3:])
    if not names:
        raise EspeakError(f"espeak-ng lists no voice variants (output: {result.stdout[:200]!r} {result.stderr[:200]!r})")
    return tuple(sorted(set(names)))


def variants_of(split: str) -> tuple[str | None, ...]:
    """The variants a split speaks with: held-out names for validation/test, the others
    (and the accents' own voices, None) for training."""
    installed = set(installed_variants())
    if split in ("validation", "test"):
        wanted = VALIDATION_VARIANTS if split == "validation" else TEST_VARIANTS
        missing = [name for name in wanted if name not in installed]
        if missing:
            raise EspeakError(f"this espeak-ng ({espeak_version()}) lacks the held-out variants {missing}")
        return wanted
    held_out = set(VALIDATION_VARIANTS + TEST_VARIANTS + EXCLUDED_VARIANTS)
    return (None, *sorted(name for name in installed if name not in held_out))


def synthesize(text: str, voice: Voice, path: Path) -> Path:
    """Speak `text` with `voice` into the WAV file `path` (22.05 kHz mono)."""
    command = [espeak_binary(), "-v", voice.name, "-s", str(voice.speed), "-p", str(voice.pitch),
               "-g", str(voice.gap), "-w", str(path), "--", text]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not path.is_file() or path.stat().st_size <= 44:
        raise EspeakError(f"espeak-ng failed on {text[:60]!r} with voice {voice.name} "
                          f"(exit {result.returncode}): {result.stderr.strip()[:300]}")
    return path
