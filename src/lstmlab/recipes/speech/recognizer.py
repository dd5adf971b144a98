"""A loaded speech run: `lstmlab.load(RUN).transcribe(waveform, sample_rate)`.

    run = lstmlab.load("runs/speech")
    run.transcribe(wave, 16000)                     # greedy: one string
    run.transcribe(wave, 44100, beam=16, lm="runs/speech-lm", lm_weight=0.8, word_bonus=0.5)
    run.transcribe(wave, 16000, beam=16, lm="runs/speech-lm", lexicon="runs/speech/lm_text.txt")
    run.transcribe_file("hello.wav", beam=8)

The waveform is a 1-D tensor or array (mono) or (channels, samples) (mixed down); any
sample rate (resampled to 16 kHz).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lstmlab.data.audio import SAMPLE_RATE, AudioError, read_audio, resample
from lstmlab.data.speech_text import ALPHABET, SPACE, decode_labels, encode_transcript, normalize_transcript
from lstmlab.recipes.speech.decoding import BeamOptions, Lexicon, beam_decode, greedy_decode
from lstmlab.recipes.speech.features import log_mel
from lstmlab.runs import Run


@dataclass
class DecodeSettings:
    beam: int = 1  # 1 = greedy
    lm: Any = None  # an LM run folder, a loaded lm Run, or an LMFusion
    lm_weight: float = 0.8  # the recipe's defaults (SpeechDataConfig)
    word_bonus: float = 0.5
    lexicon: Any = None  # a text file whose words form the lexicon, or a Lexicon
    oov_penalty: float = -4.0

    @classmethod
    def for_run(cls, data: Any, beam: int = 1, lm: Any = None, lm_weight: float | None = None,
                word_bonus: float | None = None, lexicon: Any = None,
                oov_penalty: float | None = None) -> "DecodeSettings":
        """Settings with the weights not given (None) taken from a run's SpeechDataConfig."""
        return cls(beam, lm, data.lm_weight if lm_weight is None else lm_weight,
                   data.word_bonus if word_bonus is None else word_bonus, lexicon,
                   data.oov_penalty if oov_penalty is None else oov_penalty)

    def __post_init__(self) -> None:  # refused before any audio is read or any model runs
        if not self.oov_penalty <= 0:
            raise ValueError(f"--oov_penalty: expected oov_penalty <= 0 (a cost per word outside the lexicon; "
                             f"-inf = lexicon words only), got {self.oov_penalty}")

    @property
    def searches(self) -> bool:
        """Whether decoding is a prefix beam search: a beam, an LM or a lexicon was asked for."""
        return self.beam > 1 or self.lm is not None or self.lexicon is not None

    def beam_options(self, with_lm: bool, with_lexicon: bool) -> BeamOptions:
        """The prefix beam search's options: the LM's weights only with the LM, the penalty
        only with the lexicon."""
        return BeamOptions(beam=max(1, self.beam), lm_weight=self.lm_weight if with_lm else 0.0,
                           word_bonus=self.word_bonus if with_lm else 0.0,
                           oov_penalty=self.oov_penalty if with_lexicon else 0.0)


def load_fusion(lm: Any) -> Any:
    """An LMFusion from a run folder, a loaded `lm` Run or an LMFusion (None stays None)."""
    from lstmlab.recipes.speech.lm_fusion import LMFusion

    if lm is None or isinstance(lm, LMFusion):
        return lm
    if isinstance(lm, (str, Path)):
        path = Path(lm).resolve()
        if not path.exists():
            raise FileNotFoundError(f"--lm: no such language model run {lm}")
        stamp = max((p.stat().st_mtime_ns for p in (path.glob("*.pt") if path.is_dir() else [path])), default=0)
        return _fusion_of_path(str(path), stamp)
    return LMFusion(lm)


@functools.lru_cache(maxsize=4)
def _fusion_of_path(path: str, stamp: int) -> Any:
    """The LMFusion of an LM run on disk, loaded once per path and checkpoint time (`stamp`):
    `transcribe(..., lm="runs/lm")` called per utterance must not reload the model each time."""
    import lstmlab
    from lstmlab.recipes.speech.lm_fusion import LMFusion

    return LMFusion(lstmlab.load(path))


def load_lexicon(lexicon: Any) -> Lexicon | None:
    """A Lexicon from a text file (cached per path and modification time), or as given."""
    if lexicon is None or isinstance(lexicon, Lexicon):
        return lexicon
    path = Path(lexicon).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"--lexicon: expected a text file of words (e.g. a speech run's lm_text.txt), "
                                f"but {lexicon} {'is a folder' if path.is_dir() else 'does not exist'}")
    return _lexicon_of_path(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _lexicon_of_path(path: str, stamp: int) -> Lexicon:
    """The words of a text file, normalised to the recogniser's alphabet, as a Lexicon."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"--lexicon: {path} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    words = set(normalize_transcript(text).split())
    if not words:
        raise ValueError(f"--lexicon: {path} has no words in the alphabet {ALPHABET!r}")
    return Lexicon(encode_transcript(word) for word in sorted(words))


def decode(log_probs: Tensor, lengths: Tensor, settings: DecodeSettings) -> list[str]:
    """(B, T, V) posteriors -> transcripts, greedy or prefix beam search (with the LM and lexicon)."""
    if not settings.searches:
        return [decode_labels(labels) for labels in greedy_decode(log_probs, lengths)]
    fusion, lexicon = load_fusion(settings.lm), load_lexicon(settings.lexicon)
    options = settings.beam_options(fusion is not None, lexicon is not None)
    return [decode_labels(labels) for labels in beam_decode(log_probs, lengths, SPACE, options, fusion, lexicon)]


def as_mono(waveform: Any) -> Tensor:
    wave = torch.as_tensor(waveform, dtype=torch.float32)
    if wave.dim() == 2:
        wave = wave.mean(0 if wave.shape[0] <= 8 else 1)  # (channels, samples), or (samples, channels)
    if wave.dim() != 1 or wave.numel() == 0:
        raise AudioError(f"waveform: expected a non-empty 1-D (samples,) or 2-D (channels, samples) signal, "
                         f"got shape {tuple(wave.shape)}")
    return wave


class SpeechRun(Run):
    """A Run with transcription (see the module docstring)."""

    def features(self, waveform: Any, sample_rate: int) -> Tensor:
        """(frames, n_mels) log-mel features of a waveform at any rate."""
        wave = as_mono(waveform)
        if sample_rate != SAMPLE_RATE:
            wave = resample(wave, sample_rate, SAMPLE_RATE)
        return log_mel(wave, self.config.features)

    @torch.no_grad()
    def posteriors(self, waveform: Any, sample_rate: int) -> Tensor:
        """(T', V) CTC log-posteriors of one waveform."""
        features = self.features(waveform, sample_rate)
        log_probs, _ = self.model(features[None], torch.tensor([len(features)]))
        return log_probs[0]

    def transcribe(self, waveform: Any, sample_rate: int, *, beam: int = 1, lm: Any = None,
                   lm_weight: float | None = None, word_bonus: float | None = None, lexicon: Any = None,
                   oov_penalty: float | None = None) -> str:
        """The transcript: greedy (beam 1), or prefix beam search with an optional LM run and
        lexicon (a text file); weights not given are the run's."""
        log_probs = self.posteriors(waveform, sample_rate)
        settings = DecodeSettings.for_run(self.config.data, beam, lm, lm_weight, word_bonus, lexicon, oov_penalty)
        return decode(log_probs[None], torch.tensor([len(log_probs)]), settings)[0]

    def transcribe_file(self, path: str | Path, **options: Any) -> str:
        return self.transcribe(read_audio(path), SAMPLE_RATE, **options)
