"""Audio in and out, and a user's speech data.

    read_audio(path)            -> (N,) float32 in [-1, 1], mono, at 16 kHz
    resample(wave, from, to)    -> (..., ≈ N·to/from) float32, polyphase (anti-aliased)
    write_wav(path, wave)       -> 16-bit PCM WAV, written atomically
    read_speech_manifest(path)  -> [(audio file, transcript)]

`read_audio` reads whatever libsndfile reads (WAV, FLAC, OGG, ...) through soundfile,
averages the channels and resamples with `scipy.signal.resample_poly`. A user's speech
is either a folder of ``name.wav`` + ``name.txt`` pairs (``.flac`` and ``.ogg`` too) or a
TSV (``path<TAB>transcript``) / CSV (``path,transcript``) manifest, whose relative paths
are relative to the manifest's folder. Every problem is an `AudioError` naming the file
(and the line) and saying what was expected and what was found.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

SAMPLE_RATE = 16000
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
HEADERS = (("path", "transcript"), ("audio", "text"))  # a first row naming the columns, skipped
FORMATS = "a format libsndfile reads: WAV, FLAC, OGG"


class AudioError(ValueError):
    """Unreadable audio or speech data; the message names the file."""


def _check_rate(rate: int, name: str) -> int:
    if isinstance(rate, bool) or int(rate) != rate or rate <= 0:
        raise ValueError(f"{name}: expected a positive whole number of samples per second, got {rate!r}")
    return int(rate)


def resample(wave: Tensor, from_rate: int, to_rate: int) -> Tensor:
    """(..., N) at from_rate -> (..., ceil(N·to/from)) at to_rate, float32, a new tensor.

    Polyphase filtering (up/down by the rates over their gcd) low-passes before it
    decimates, so nothing above the new Nyquist frequency folds back into the band."""
    from_rate, to_rate = _check_rate(from_rate, "from_rate"), _check_rate(to_rate, "to_rate")
    wave = torch.as_tensor(wave).detach()
    if from_rate == to_rate:
        return wave.to(torch.float32, copy=True)
    from scipy.signal import resample_poly  # scipy is slow to import; only resampling needs it

    common = math.gcd(from_rate, to_rate)
    # float64 through the filter: its long sums lose nothing, the result goes back to float32
    out = resample_poly(wave.cpu().numpy().astype(np.float64), to_rate // common, from_rate // common, axis=-1)
    return torch.from_numpy(out.astype(np.float32))


def read_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> Tensor:
    """(N,) float32 in [-1, 1]: the file's channels averaged, resampled to `sample_rate`."""
    import soundfile

    sample_rate = _check_rate(sample_rate, "sample_rate")
    path = Path(path)
    if path.is_dir():
        raise AudioError(f"{path}: expected an audio file ({FORMATS}), found a folder")
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file (expected {FORMATS})")
    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, TypeError, ValueError) as error:  # LibsndfileError is a RuntimeError; raw needs a rate
        raise AudioError(f"{path}: not readable as audio (expected {FORMATS}; soundfile: {error})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: empty audio (expected at least one sample, found 0)")
    bad = int(data.size - np.isfinite(data).sum())
    if bad:  # float WAVs can hold them; they would turn every feature into NaN
        raise AudioError(f"{path}: expected finite samples, found {bad} NaN or infinite")
    mono = torch.from_numpy(data.mean(axis=1, dtype=np.float64).astype(np.float32))
    # float files may exceed full scale, and resampling rings slightly past it at clipped peaks
    return resample(mono, rate, sample_rate).clamp_(-1.0, 1.0)


def write_wav(path: str | os.PathLike, wave: Tensor, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write (N,) samples in [-1, 1] as 16-bit PCM WAV; returns the path.

    The samples go to a temporary file beside `path`, renamed over it once complete, so a
    reader (or a crash) never meets half a file."""
    import soundfile

    sample_rate = _check_rate(sample_rate, "sample_rate")
    path = Path(path)
    samples = torch.as_tensor(wave).detach().to(torch.float32).cpu()
    if samples.dim() != 1:
        raise ValueError(f"{path}: expected a mono wave (N,), got shape {tuple(samples.shape)}")
    if not torch.isfinite(samples).all():
        raise ValueError(f"{path}: expected finite samples, the wave holds NaN or infinite values")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        soundfile.write(temporary, samples.clamp(-1.0, 1.0).numpy(), sample_rate, subtype="PCM_16", format="WAV")
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a WAV is an ordinary file
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def read_speech_manifest(path: str | os.PathLike) -> list[tuple[Path, str]]:
    """[(audio file, transcript)] from a folder of audio + .txt pairs or a TSV/CSV manifest."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: does not exist (expected a folder of name.wav + name.txt pairs, "
                         "or a TSV/CSV manifest of audio path and transcript)")
    items = _folder_items(path) if path.is_dir() else _manifest_items(path)
    if not items:
        found = "no audio files (.wav, .flac, .ogg)" if path.is_dir() else "no lines of audio path and transcript"
        raise AudioError(f"{path}: no utterances (expected at least one, found {found})")
    return items


def _transcript(text: str) -> str:
    return " ".join(text.split())  # stripped, newlines (and runs of blanks) to single spaces


def _folder_items(folder: Path) -> list[tuple[Path, str]]:
    audio = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    missing = [p.name for p in audio if not p.with_suffix(".txt").is_file()]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise AudioError(f"{folder}: expected a transcript name.txt beside each audio file, found none for "
                         f"{len(missing)}: {', '.join(missing[:5])}{more}")
    items = []
    for file in audio:
        text_file = file.with_suffix(".txt")
        try:
            transcript = _transcript(text_file.read_text(encoding="utf-8"))
        except UnicodeDecodeError as error:
            raise AudioError(f"{text_file}: expected UTF-8 text, found byte {error.object[error.start]:#04x} "
                             f"at {error.start}") from None
        if not transcript:
            raise AudioError(f"{text_file}: empty transcript (expected the words spoken in {file.name})")
        items.append((file, transcript))
    return items


def _delimiter(manifest: Path, lines: list[str]) -> str:
    suffix = manifest.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "," if suffix == ".csv" else "\t"
    # another name (manifest.txt, ...): a tab on the first data line says TSV, else CSV
    first = next((line for line in lines if line.strip() and not line.lstrip().startswith("#")), "")
    return "\t" if "\t" in first or "," not in first else ","


def _manifest_items(manifest: Path) -> list[tuple[Path, str]]:
    try:
        lines = manifest.read_text(encoding="utf-8-sig").splitlines()  # -sig: spreadsheets write a BOM
    except UnicodeDecodeError as error:
        raise AudioError(f"{manifest}: expected a UTF-8 TSV/CSV manifest, found byte "
                         f"{error.object[error.start]:#04x} at {error.start} (an audio file?)") from None
    delimiter = _delimiter(manifest, lines)
    shape = "audio path<TAB>transcript" if delimiter == "\t" else "audio path,transcript"
    items, first = [], True
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if delimiter == "\t":  # split at the first tab: a transcript keeps its quotes and any later tabs
            row = line.split("\t", 1)
        else:  # one line at a time, so that the line number in a message is the file's line
            row = next(csv.reader([line]))
            row = [row[0], ",".join(row[1:])] if len(row) > 1 else row
        if len(row) < 2:
            raise AudioError(f"{manifest}, line {number}: expected {shape}, found {line[:80]!r}")
        audio, transcript = row[0].strip(), _transcript(row[1])
        if first and (audio.lower(), transcript.lower()) in HEADERS:
            first = False
            continue
        first = False
        if not audio:
            raise AudioError(f"{manifest}, line {number}: expected {shape}, found an empty audio path")
        file = Path(audio).expanduser()
        file = file if file.is_absolute() else manifest.parent / file
        if not file.is_file():
            raise AudioError(f"{manifest}, line {number}: audio file {file} does not exist")
        if not transcript:
            raise AudioError(f"{manifest}, line {number}: empty transcript for {audio} "
                             "(expected the words spoken)")
        items.append((file, transcript))
    return items
