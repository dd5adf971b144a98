"""Speech from a second synthesiser, Debian's `flite` (CMU Flite 2.2): speech the speech
recipe never trains on, to measure how a recogniser trained on espeak-ng transfers.

Flite's voices are built differently from espeak-ng's formant synthesis: ``kal`` and
``kal16`` are diphone voices (concatenated recorded speech, 8 and 16 kHz), ``awb`` (Scottish
English), ``rms`` and ``slt`` are statistical parametric voices (clustergen) trained on
recordings of three people. ``awb_time`` speaks only clock times and is left out.

The recipe's test set never trains on flite (`lstmlab.recipes.speech.other_speech`).
Training may speak a fraction of its utterances with flite (``--flite_voices P``), with the
`TRAINING_VOICES` only: ``slt``, the one female voice, stays held out, with a random
speaking rate (``duration_stretch``) and mean pitch (``int_f0_target_mean``, which ``kal``,
``kal16`` and ``awb`` honour and ``rms`` ignores).

Install it with ``apt-get install flite`` (``make flite`` does that).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lstmlab.data.synthesiser import find_program, speak_to_wav

VOICES = ("kal", "kal16", "awb", "rms", "slt")
TRAINING_VOICES = ("kal", "kal16", "awb", "rms")  # slt stays held out


class FliteError(RuntimeError):
    """flite is missing or failed."""


@dataclass(frozen=True)
class Voice:
    voice: str  # one of VOICES
    stretch: float = 1.0  # duration_stretch: > 1 speaks slower
    f0: int | None = None  # int_f0_target_mean in Hz; None: the voice's own

    @property
    def name(self) -> str:
        return f"flite-{self.voice}"


def flite_binary() -> str:
    """The flite program, or FliteError saying how to install it."""
    return find_program("flite", FliteError, "flite is not installed (it speaks the held-out synthesiser set and "
                        "the training utterances of --flite_voices): run `make flite` (or `apt-get install flite`), "
                        "or train on espeak-ng alone with --flite_voices 0")


def synthesize(text: str, voice: Voice, path: Path) -> Path:
    """Speak `text` with the flite `voice` into the WAV file `path` (16 kHz mono; 8 kHz
    for ``kal``)."""
    if voice.voice not in VOICES:
        raise ValueError(f"voice: expected a flite voice, one of {', '.join(VOICES)}; got {voice.voice!r}")
    if not voice.stretch > 0:
        raise ValueError(f"stretch: expected a duration factor > 0, got {voice.stretch}")
    settings = ["--setf", f"duration_stretch={voice.stretch}"]
    if voice.f0 is not None:
        settings += ["--setf", f"int_f0_target_mean={voice.f0}"]
    return speak_to_wav([flite_binary(), "-voice", voice.voice, *settings, "-t", text, "-o", str(path)], path,
                        FliteError, text, voice.voice)
