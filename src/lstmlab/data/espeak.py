"""Speech synthesised by Debian's `espeak-ng`: voices, held-out voices, one utterance to WAV.

A *voice* here is an English accent (``en-us``, ``en-gb-scotland``, ...) with an optional
variant (``+m3``, ``+f2``, ``+klatt``, ... about 100 of them), a speed (words per minute),
a pitch (0-99) and a gap between words. Validation and test use **variants never used in
training** (`VALIDATION_VARIANTS`, `TEST_VARIANTS`), under every accent, so the recogniser
is scored on voices it never heard.

Training can also speak with *generated* variants (`generated_variant`): a random
variant file (formant frequencies, heights and widths, pitch range, flutter, roughness,
voicing, sometimes the Klatt synthesiser) drawn within the span of the installed training
variants' own settings. espeak-ng only reads variants from its data folder, so such a
voice is spoken through a private copy of that folder (links to the installed files plus
the one generated variant), made in a temporary folder and removed after the utterance.

espeak-ng writes 22.05 kHz mono WAV with ``-w`` (its ``--stdout`` header carries a bogus
frame count, so a file is used). Install it with ``apt-get install espeak-ng``
(``make espeak`` does that).
"""

from __future__ import annotations

import contextlib
import functools
import math
import random
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lstmlab.data.synthesiser import find_program, speak_to_wav

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
    definition: str | None = None  # a generated variant's file text (`generated_variant`); None: installed

    @property
    def name(self) -> str:
        return self.accent + (f"+{self.variant}" if self.variant else "")


GENERATED = "generated"  # the variant name of every generated voice


def generated_variant(rng: random.Random) -> str:
    """A random espeak-ng variant file (its text), within the span of the training variants.

    All formant frequencies are scaled together by a log-uniform factor in [0.75, 1.5]
    (the installed training variants set formants 1-2 between 75 % and 150 %), each then
    jittered by ±6 %; heights 70-130 %, widths 80-150 %. The pitch range follows the
    formant scale as in real voices (higher formants, higher voice), with its base 40-220
    Hz (training variants: 37-204) and its top 1.25-1.9 × the base. Flutter 0-8, roughness
    0-5 and voicing 70-130 % are the training variants' ranges; one voice in four uses the
    Klatt synthesiser (settings 1-6, as the klatt variants do).
    """
    scale = math.exp(rng.uniform(math.log(0.75), math.log(1.5)))
    base = min(220, max(40, round(105 * scale ** 2 * rng.uniform(0.75, 1.3))))
    lines = ["language variant", f"name {GENERATED}", f"pitch {base} {round(base * rng.uniform(1.25, 1.9))}"]
    lines += [f"formant {k} {round(100 * scale * rng.uniform(0.94, 1.06))} {rng.randint(70, 130)} "
              f"{rng.randint(80, 150)}" for k in range(9)]
    lines += [f"flutter {rng.randint(0, 8)}", f"roughness {rng.randint(0, 5)}", f"voicing {rng.randint(70, 130)}"]
    if rng.random() < 0.25:
        lines.append(f"klatt {rng.randint(1, 6)}")
    return "\n".join(lines) + "\n"


def espeak_binary() -> str:
    """The espeak-ng program, or EspeakError saying how to install it."""
    return find_program("espeak-ng", EspeakError, "the speech recipe synthesises its training speech with espeak-ng, "
                        "which is not installed: run `make espeak` (or `apt-get install espeak-ng`), or train on "
                        "your own recordings with --data FOLDER_OR_MANIFEST")


@functools.lru_cache(maxsize=1)
def espeak_version() -> str:
    result = subprocess.run([espeak_binary(), "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip()


@functools.lru_cache(maxsize=1)
def data_folder() -> Path:
    """The installed espeak-ng data folder (``espeak-ng --version`` says "Data at: ...")."""
    found = re.search(r"Data at:\s*(\S+)", espeak_version())
    if found is None or not Path(found.group(1)).is_dir():
        raise EspeakError(f"cannot find espeak-ng's data folder in its version line {espeak_version()!r}")
    return Path(found.group(1))


def _private_data(definition: str, folder: Path) -> Path:
    """A folder for ``espeak-ng --path``: ``espeak-ng-data`` linking every installed entry,
    with ``voices/!v`` holding only the generated variant (the accents stay linked)."""
    installed, data = data_folder(), folder / "espeak-ng-data"
    (data / "voices" / "!v").mkdir(parents=True)
    for entry in installed.iterdir():
        if entry.name != "voices":
            (data / entry.name).symlink_to(entry)
    for entry in (installed / "voices").iterdir():
        if entry.name != "!v":
            (data / "voices" / entry.name).symlink_to(entry)
    (data / "voices" / "!v" / GENERATED).write_text(definition)
    return folder


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
    """Speak `text` with `voice` into the WAV file `path` (22.05 kHz mono); a generated
    voice's variant goes through a private data folder, removed afterwards."""
    command = [espeak_binary(), "-v", voice.name, "-s", str(voice.speed), "-p", str(voice.pitch),
               "-g", str(voice.gap), "-w", str(path), "--", text]
    with contextlib.ExitStack() as stack:
        if voice.definition is not None:
            if voice.variant != GENERATED:
                raise ValueError(f"a generated voice's variant must be named {GENERATED!r}, got {voice.variant!r}")
            private = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lstmlab-espeak-")))
            command[1:1] = [f"--path={_private_data(voice.definition, private)}"]
        return speak_to_wav(command, path, EspeakError, text, voice.name)
