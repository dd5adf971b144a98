"""Speech from a third synthesiser, the Festival Speech Synthesis System (Debian's
``festival`` 2.5 and its English voices): speech the speech recipe never trains on.

Its voices, as `VOICES` names them:

* ``kal``: ``kal_diphone`` (festvox-kallpc16k), the same recorded speaker as flite's
  ``kal16``, with Festival's own text analysis, prosody and residual-LPC diphone joining;
* ``ked``: ``ked_diphone`` (festvox-kdlpc16k), an American male speaker that neither
  espeak-ng nor flite has;
* ``slt_hts``: ``cmu_us_slt_arctic_hts`` (festvox-us-slt-hts), the female speaker of
  flite's held-out ``slt`` through a different engine (HTS, 32 kHz, resampled on reading).

None of them ever trains: `lstmlab.recipes.speech.other_speech` speaks the recipe's test
sentences with them. Festival's ``text2wave`` runs one process per utterance. Install with
``apt-get install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts``
(``make festival`` does that).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lstmlab.data.synthesiser import find_program, speak_to_wav

VOICES = {"kal": "kal_diphone", "ked": "ked_diphone", "slt_hts": "cmu_us_slt_arctic_hts"}  # short name: Festival's
PACKAGES = "festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"


class FestivalError(RuntimeError):
    """Festival or one of its voices is missing, or it failed."""


@dataclass(frozen=True)
class Voice:
    voice: str  # one of VOICES
    stretch: float = 1.0  # Duration_Stretch: > 1 speaks slower (the HTS voice ignores it)

    @property
    def name(self) -> str:
        return f"festival-{self.voice}"


def festival_binary() -> str:
    """Festival's ``text2wave`` program, or FestivalError saying how to install it."""
    return find_program("text2wave", FestivalError, "festival is not installed (it speaks the held-out synthesiser "
                        f"set): run `make festival` (or `apt-get install {PACKAGES}`)")


def synthesize(text: str, voice: Voice, path: Path) -> Path:
    """Speak `text` with the Festival `voice` into the WAV file `path` (16 kHz mono;
    32 kHz for ``slt_hts``). A voice whose package is missing is a FestivalError naming it."""
    if voice.voice not in VOICES:
        raise ValueError(f"voice: expected a festival voice, one of {', '.join(VOICES)}; got {voice.voice!r}")
    if not voice.stretch > 0:
        raise ValueError(f"stretch: expected a duration factor > 0, got {voice.stretch}")
    path = Path(path)
    script = path.with_suffix(".txt")  # text2wave reads the text from a file: no shell, no quoting
    script.write_text(text + "\n", encoding="utf-8")
    try:
        return speak_to_wav([festival_binary(), "-eval", f"(voice_{VOICES[voice.voice]})",
                             "-eval", f"(Parameter.set 'Duration_Stretch {voice.stretch})", str(script),
                             "-o", str(path)], path, FestivalError, text, voice.voice)
    finally:
        script.unlink(missing_ok=True)
