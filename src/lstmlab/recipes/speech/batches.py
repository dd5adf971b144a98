"""Utterances as padded batches, and the resumable training order.

`UtteranceBatches` is the endless iterator the shared trainer wants. Each epoch shuffles
the utterances with (seed, epoch), sorts them by length (stable, so equal lengths keep
the random order), cuts batches of about ``batch_frames`` padded frames
(`lstmlab.data.batching.length_batches`) and shuffles the batches. Similar lengths
together keep the padding small; the model packs the batch, so padding is never read.
With ``shortest_first_epochs`` the first epochs keep their batches in order of length,
shortest first (SortaGrad, Amodei et al. 2016: CTC learns alignments on short utterances
sooner). Each batch carries a SpecAugment mask (Park et al. 2019) drawn from (seed, epoch, batch),
so a resumed run draws the same batches and the same masks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch
from torch import Tensor

from lstmlab.data.batching import length_batches
from lstmlab.data.speech_text import encode_transcript
from lstmlab.recipes.speech.corpus import FeatureSet
from lstmlab.recipes.speech.features import FeatureConfig, frequency_warp, spec_augment, time_stretch


@dataclass
class SpeechBatch:
    """A padded batch, batch-first."""

    features: Tensor  # (B, T, F) float32 log-mel frames, zero-padded
    lengths: Tensor  # (B,) int64 frames
    targets: Tensor  # (sum of target lengths,) int64 CTC labels 1..V-1, concatenated
    target_lengths: Tensor  # (B,) int64
    seconds: float = 0.0  # audio in the batch
    mask: Tensor | None = None  # (B, T, F) 1/0 SpecAugment mask, applied after normalisation

    @property
    def tokens(self) -> int:  # characters: the unit of the loss
        return int(self.target_lengths.sum())


@dataclass
class AugmentOptions:
    freq_masks: int = 2
    freq_width: int = 15
    time_masks: int = 2
    time_width_ratio: float = 0.05
    freq_warp: float = 0.0  # VTLP: each utterance's frequencies scaled by a factor in [1 - w, 1 + w]; 0 = off
    time_stretch: float = 0.0  # each utterance's tempo scaled by a factor in [1 - s, 1 + s]; 0 = off
    features: FeatureConfig = field(default_factory=FeatureConfig)  # the bands' frequencies, for the warp


def _factors(count: int, spread: float, generator: torch.Generator | None) -> list[float]:
    """`count` factors drawn uniformly from [1 - spread, 1 + spread]."""
    return (1 + spread * (2 * torch.rand(count, generator=generator, dtype=torch.float64) - 1)).tolist()


def make_batch(data: FeatureSet, indices: Sequence[int], labels: Sequence[list[int]] | None = None,
               augment: AugmentOptions | None = None, generator: torch.Generator | None = None) -> SpeechBatch:
    """Utterances `indices` of `data` -> SpeechBatch (with a SpecAugment mask, and each
    utterance frequency-warped when `augment.freq_warp` and time-stretched when
    `augment.time_stretch`, when `augment`)."""
    frames = [data.frames(i) for i in indices]
    if augment is not None and augment.freq_warp > 0:
        factors = _factors(len(frames), augment.freq_warp, generator)
        frames = [frequency_warp(f, a, augment.features) for f, a in zip(frames, factors)]
    if augment is not None and augment.time_stretch > 0:  # drawn after the warp: runs without it draw as before
        frames = [time_stretch(f, a) for f, a in zip(frames, _factors(len(frames), augment.time_stretch, generator))]
    lengths = torch.tensor([len(f) for f in frames], dtype=torch.long)
    features = torch.zeros(len(frames), int(lengths.max()), frames[0].shape[1])
    for row, f in enumerate(frames):
        features[row, :len(f)] = f
    targets = [labels[i] if labels is not None else encode_transcript(data.texts[i]) for i in indices]
    mask = None
    if augment is not None and (augment.freq_masks or augment.time_masks):  # no masks: no all-ones mask to multiply
        mask = torch.ones_like(features)
        for row, length in enumerate(lengths.tolist()):
            mask[row, :length] = spec_augment(mask[row, :length], generator, freq_masks=augment.freq_masks,
                                              freq_width=augment.freq_width, time_masks=augment.time_masks,
                                              time_width_ratio=augment.time_width_ratio)
    return SpeechBatch(features, lengths, torch.tensor([label for t in targets for label in t], dtype=torch.long),
                       torch.tensor([len(t) for t in targets], dtype=torch.long),
                       sum(data.seconds[i] for i in indices), mask)


class UtteranceBatches:
    """Endless training batches over a FeatureSet (see the module docstring)."""

    def __init__(self, data: FeatureSet, batch_frames: int, seed: int, augment: AugmentOptions | None = None,
                 shard: slice = slice(None), shortest_first_epochs: int = 0):
        if not len(data):
            raise ValueError("no training utterances to batch")
        self.data, self.batch_frames, self.seed, self.augment, self.shard = data, batch_frames, seed, augment, shard
        self.shortest_first_epochs = shortest_first_epochs
        self.labels = [encode_transcript(text) for text in data.texts]
        self.lengths = [(int(n),) for n in data.lengths]
        self.epoch, self.position = 0, 0
        self.audio_seconds = 0.0  # audio served by this iterator (not saved: for throughput counts)
        self._order = self._epoch_batches(0)

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        shuffler = random.Random(self.seed * 1_000_003 + epoch)
        indices = list(range(len(self.data)))
        shuffler.shuffle(indices)
        indices.sort(key=lambda i: self.lengths[i])
        batches = length_batches(self.lengths, self.batch_frames, indices)
        if epoch >= self.shortest_first_epochs:  # SortaGrad: the first epochs keep short-to-long order
            shuffler.shuffle(batches)
        return batches

    @property
    def batches_per_epoch(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[SpeechBatch]:
        return self

    def __next__(self) -> SpeechBatch:
        if self.position >= len(self._order):
            self.epoch, self.position = self.epoch + 1, 0
            self._order = self._epoch_batches(self.epoch)
        indices = self._order[self.position][self.shard] or self._order[self.position][:1]
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 100_003 + self.position)
        self.position += 1
        batch = make_batch(self.data, indices, self.labels, self.augment, generator)
        self.audio_seconds += batch.seconds
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._epoch_batches(self.epoch)
