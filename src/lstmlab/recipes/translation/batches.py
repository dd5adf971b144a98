"""Sentence pairs as padded batches: ids, the special tokens, and the training order.

Every source ends with EOS (so even an empty line has one token to encode); the target
input starts with BOS and the target output ends with EOS. The padding id is one past
the tokeniser's vocabulary (the model's vocabulary is one larger; padding is never a
target and never predicted).

`PairBatches` is the endless, resumable training iterator the shared trainer wants:
each epoch shuffles the pairs with (seed, epoch), groups them by source length (every
source in a batch has the same length, so the bidirectional encoder runs unpacked on
torch's fused kernel: a packed batch runs a step-by-step CPU loop several times slower),
sorts each group by target length, cuts batches of about ``batch_tokens`` padded
target tokens, and shuffles the batches. Its position is (epoch, batch), so a resumed
run draws the same batches.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor

from lstmlab.data.batching import length_batches


@dataclass(frozen=True)
class Specials:
    """The ids that are not text: begin / end of sentence and padding."""

    bos: int
    eos: int
    pad: int

    @classmethod
    def of(cls, tokenizer: Any) -> "Specials":
        processor = tokenizer.processor  # sentencepiece: <unk> 0, <s> 1, </s> 2
        return cls(processor.bos_id(), processor.eos_id(), tokenizer.vocab_size)


@dataclass
class PairBatch:
    """A padded batch, batch-first."""

    source: Tensor  # (B, S) int64, source ids + EOS, padded
    lengths: Tensor  # (B,) int64, source lengths with the EOS
    target_in: Tensor  # (B, T) BOS + target ids, padded
    target_out: Tensor  # (B, T) target ids + EOS, padded
    tokens: int  # target tokens (with EOS) in the batch

    @property
    def size(self) -> int:
        return self.source.shape[0]


def pad(rows: Sequence[Sequence[int]], value: int) -> Tensor:
    width = max(len(row) for row in rows)
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, :len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def source_batch(sources: Sequence[Sequence[int]], specials: Specials) -> tuple[Tensor, Tensor]:
    """Source id lists (without EOS) -> (source (B, S), lengths (B,))."""
    rows = [list(ids) + [specials.eos] for ids in sources]
    return pad(rows, specials.pad), torch.tensor([len(row) for row in rows], dtype=torch.long)


def make_batch(pairs: Sequence[tuple[Sequence[int], Sequence[int]]], specials: Specials) -> PairBatch:
    """(source ids, target ids) pairs -> PairBatch."""
    source, lengths = source_batch([s for s, _ in pairs], specials)
    target_in = pad([[specials.bos] + list(t) for _, t in pairs], specials.pad)
    target_out = pad([list(t) + [specials.eos] for _, t in pairs], specials.pad)
    return PairBatch(source, lengths, target_in, target_out, sum(len(t) + 1 for _, t in pairs))


class PairBatches:
    """Endless training batches over encoded pairs (see the module docstring)."""

    def __init__(self, pairs: Sequence[tuple[list[int], list[int]]], specials: Specials, batch_tokens: int,
                 seed: int, shard: slice = slice(None)):
        if not pairs:
            raise ValueError("no training pairs to batch")
        self.pairs, self.specials, self.batch_tokens, self.seed = pairs, specials, batch_tokens, seed
        self.shard = shard  # data parallel: this process's part of each batch
        self.lengths = [(len(s), len(t)) for s, t in pairs]
        self.epoch, self.position = 0, 0
        self._order = self._epoch_batches(0)

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        shuffler = random.Random(self.seed * 1_000_003 + epoch)
        indices = list(range(len(self.pairs)))
        shuffler.shuffle(indices)
        # Sorting is stable: pairs of equal lengths stay in this epoch's random order.
        indices.sort(key=lambda i: self.lengths[i])
        batches: list[list[int]] = []
        for _, group in itertools.groupby(indices, key=lambda i: self.lengths[i][0]):
            batches += length_batches(self.lengths, self.batch_tokens, list(group))
        shuffler.shuffle(batches)
        return batches

    @property
    def batches_per_epoch(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[PairBatch]:
        return self

    def __next__(self) -> PairBatch:
        if self.position >= len(self._order):
            self.epoch, self.position = self.epoch + 1, 0
            self._order = self._epoch_batches(self.epoch)
        indices = self._order[self.position][self.shard] or self._order[self.position][:1]
        self.position += 1
        return make_batch([self.pairs[i] for i in indices], self.specials)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._epoch_batches(self.epoch)
