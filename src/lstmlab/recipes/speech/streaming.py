"""Streaming recognition: audio in chunks, partial transcripts as it arrives.

    recognizer = StreamingRecognizer(lstmlab.load("runs/speech-uni"))
    for chunk in chunks:                 # float samples at any rate, e.g. 100 ms each
        partial = recognizer.accept(chunk, 16000)
    final = recognizer.finish()

Needs a unidirectional run with global normalisation (``--model.bidirectional false
--model.normalization global``): the reverse direction and per-utterance statistics both
need the whole utterance. Three incremental stages, each exact:

1. `StreamingFeatures`: log-mel frames as soon as their 25 ms window has arrived, with
   the start padded by reflection as `features.log_mel` does (center=True) and the end
   padded at `finish`. The frames are those of the whole-file call.
2. normalise, stack k frames, and run the LSTM one step per stack on `lstmlab.Stream`
   (the fused C++ step: the numbers of the sequence call up to the order of float sums);
3. the greedy transcript grows with each step; `finish` runs the prefix beam search (and
   the LM and lexicon) over all posteriors when a beam, an LM or a lexicon was asked for.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor

import lstmlab
from lstmlab.data.audio import SAMPLE_RATE, AudioError, resample
from lstmlab.data.speech_text import decode_labels
from lstmlab.recipes.speech.features import FeatureConfig, mel_filterbank
from lstmlab.recipes.speech.recognizer import DecodeSettings, as_mono, decode

LOG_FLOOR = 1e-6  # as features.log_mel


class StreamingFeatures:
    """Log-mel frames of a growing signal, identical to `log_mel` of the whole signal."""

    def __init__(self, config: FeatureConfig):
        self.config = config
        self.hop = round(config.hop_ms * config.sample_rate / 1000)
        self.win_length = round(config.window_ms * config.sample_rate / 1000)
        self.pad = config.n_fft // 2
        self.window = torch.hann_window(self.win_length, periodic=True)
        self.filterbank = mel_filterbank(config.n_fft // 2 + 1, config.f_min, config.f_max, config.n_mels,
                                         config.sample_rate)
        self.count = 0  # samples received
        self.samples = torch.zeros(0)  # the first samples, until there are enough to reflect the start
        self.buffer: Tensor | None = None  # the reflect-padded signal from the next frame's start on
        self.frames_done = 0

    def _frames(self, signal: Tensor, count: int) -> Tensor:
        """`count` frames from the start of `signal` (the buffer), which then drops their hops."""
        if count <= 0:
            return torch.zeros(0, self.config.n_mels)
        piece = signal[:(count - 1) * self.hop + self.config.n_fft]
        spectrum = torch.stft(piece, self.config.n_fft, self.hop, self.win_length, self.window, center=False,
                              return_complex=True)
        power = spectrum.abs() ** 2  # (n_fft/2 + 1, frames)
        self.frames_done += count
        self.buffer = signal[count * self.hop:]  # only what later frames read is kept: no growing copy
        return torch.log(power.T @ self.filterbank + LOG_FLOOR)

    def accept(self, samples: Tensor) -> Tensor:
        """New 16 kHz samples -> the frames completed by them (n, n_mels)."""
        self.count += len(samples)
        if self.buffer is None:
            self.samples = torch.cat([self.samples, samples])
            if len(self.samples) <= self.pad:
                return torch.zeros(0, self.config.n_mels)
            self.buffer = torch.cat([self.samples[1:self.pad + 1].flip(0), self.samples])
        else:
            self.buffer = torch.cat([self.buffer, samples])
        ready = (len(self.buffer) - self.config.n_fft) // self.hop + 1
        return self._frames(self.buffer, ready)

    def finish(self) -> Tensor:
        """The last frames (the end padded by reflection): 1 + N // hop frames in all."""
        if self.buffer is None:  # too short for reflection: log_mel pads with zeros
            signal = torch.nn.functional.pad(self.samples, (self.pad, self.pad))
        else:  # the buffer always ends with the last pad + 1 samples (more than n_fft - hop are kept)
            signal = torch.cat([self.buffer, self.buffer[-self.pad - 1:-1].flip(0)])
        return self._frames(signal, 1 + self.count // self.hop - self.frames_done)


class StreamingRecognizer:
    """Chunks in, partial transcripts out (see the module docstring)."""

    def __init__(self, run: Any, *, beam: int = 1, lm: Any = None, lm_weight: float | None = None,
                 word_bonus: float | None = None, lexicon: Any = None, oov_penalty: float | None = None):
        model = run.model
        if model.lstm is None or model.config.bidirectional:
            raise ValueError(f"{run.checkpoint}: streaming needs a unidirectional LSTM model (train with "
                             "--model.bidirectional false --model.normalization global); this one is "
                             f"{'bidirectional' if model.config.bidirectional else model.config.cell}")
        if model.config.normalization != "global":
            raise ValueError(f"{run.checkpoint}: streaming needs global feature normalisation (per-utterance "
                             "statistics need the whole utterance); train with --model.normalization global")
        self.model, self.config = model.eval(), run.config
        self.settings = DecodeSettings.for_run(run.config.data, beam, lm, lm_weight, word_bonus, lexicon, oov_penalty)
        self.features = StreamingFeatures(run.config.features)
        self.stream = lstmlab.Stream(model.lstm, batch_size=1)
        self.pending = torch.zeros(0, run.config.features.n_mels)  # normalised frames not yet stacked
        self.log_probs: list[Tensor] = []
        self.labels: list[int] = []
        self.previous = 0  # the last frame's greedy label (CTC merges repeats)
        self.audio_seconds = self.compute_seconds = 0.0

    @torch.no_grad()
    def _run_frames(self, frames: Tensor, final: bool = False) -> None:
        model, k = self.model, self.model.config.stack
        normalised = (frames - model.feature_mean) / model.feature_std
        self.pending = torch.cat([self.pending, normalised])
        whole = len(self.pending) // k * k
        if final and whole < len(self.pending):  # the model zero-pads the last stack
            extra = k - (len(self.pending) - whole)
            self.pending = torch.cat([self.pending, self.pending.new_zeros(extra, self.pending.shape[1])])
            whole = len(self.pending)
        for row in self.pending[:whole].reshape(-1, k * self.pending.shape[1]):
            log_probs = model.step_logits(self.stream(row[None]))[0]
            self.log_probs.append(log_probs)
            label = int(log_probs.argmax())
            if label != 0 and label != self.previous:
                self.labels.append(label)
            self.previous = label
        self.pending = self.pending[whole:]

    def accept(self, chunk: Any, sample_rate: int = SAMPLE_RATE) -> str:
        """New audio (1-D samples at `sample_rate`) -> the partial (greedy) transcript so far."""
        started = time.perf_counter()
        wave = as_mono(chunk)
        if sample_rate != SAMPLE_RATE:
            wave = resample(wave, sample_rate, SAMPLE_RATE)
        self.audio_seconds += len(wave) / SAMPLE_RATE
        self._run_frames(self.features.accept(wave))
        self.compute_seconds += time.perf_counter() - started
        return decode_labels(self.labels)

    def finish(self) -> str:
        """The end of the audio: the final transcript (beam search, LM and lexicon when asked for)."""
        started = time.perf_counter()
        if not self.features.count:
            raise AudioError("streaming: no audio arrived")
        self._run_frames(self.features.finish(), final=True)
        text = decode_labels(self.labels)
        if self.settings.searches:
            posteriors = torch.stack(self.log_probs)[None]
            text = decode(posteriors, torch.tensor([posteriors.shape[1]]), self.settings)[0]
        self.compute_seconds += time.perf_counter() - started
        return text

    @property
    def real_time_factor(self) -> float:
        return self.compute_seconds / max(1e-9, self.audio_seconds)


def audio_chunks(source: str, chunk_ms: float, raw_rate: int = SAMPLE_RATE) -> Iterator[tuple[Tensor, int]]:
    """(samples, rate) chunks of `chunk_ms` from a file, or from standard input ("-"):
    a WAV stream, or raw 16-bit little-endian mono PCM at raw_rate."""
    if chunk_ms <= 0:
        raise ValueError(f"--chunk-ms: expected a positive duration, got {chunk_ms}")
    if source != "-":
        import soundfile

        if not Path(source).is_file():
            raise AudioError(f"{source}: no such audio file")
        try:
            with soundfile.SoundFile(source) as audio:
                rate = audio.samplerate
                for block in audio.blocks(blocksize=max(1, int(rate * chunk_ms / 1000)), dtype="float32",
                                          always_2d=True):
                    yield torch.from_numpy(block.mean(1)), rate
        except RuntimeError as error:  # soundfile's LibsndfileError
            raise AudioError(f"{source}: not readable audio ({error})") from None
        return
    stdin = sys.stdin.buffer
    head = stdin.read(12)
    rate, channels = raw_rate, 1
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        while True:  # walk the chunks to "data", reading the format on the way
            header = stdin.read(8)
            if len(header) < 8:
                raise AudioError("standard input: a WAV stream without a data chunk")
            name, size = header[:4], int.from_bytes(header[4:], "little")
            if name == b"data":
                break
            body = stdin.read(size + (size & 1))
            if name == b"fmt ":
                if int.from_bytes(body[:2], "little") != 1 or int.from_bytes(body[14:16], "little") != 16:
                    raise AudioError("standard input: expected 16-bit PCM WAV (or raw s16le PCM)")
                channels, rate = int.from_bytes(body[2:4], "little"), int.from_bytes(body[4:8], "little")
        leftover = b""
    else:
        leftover = head
    frame_bytes = 2 * channels
    size = max(1, int(rate * chunk_ms / 1000)) * frame_bytes
    while True:
        data = leftover + stdin.read(size - len(leftover))
        leftover = b""
        if not data:
            return
        usable = len(data) // frame_bytes * frame_bytes
        samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0
        if usable:
            yield torch.from_numpy(samples.reshape(-1, channels).mean(1)), rate
        if len(data) < size:
            return
