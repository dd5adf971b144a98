"""Batching for language models: parallel streams and truncated BPTT windows.

The token sequence is cut into B equal streams laid side by side, time-major (N, B),
as in Zaremba et al. and AWD-LSTM: column b continues where it left off in the next
batch, so the hidden state can be carried across batches. Each batch is a window of
T rows; with `variable_length` the window length is drawn per batch (AWD-LSTM: the
base length, halved with probability 0.05, plus Gaussian jitter of std 5), which stops
the model from seeing the same window boundaries every epoch.

`BPTTBatches` is resumable: its `state_dict()` holds the position, the epoch and its
own random generator, so a resumed run draws the same windows as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch


@dataclass
class LMBatch:
    """One window: inputs and next-token targets, both (T, B) int64, time-major."""

    inputs: torch.Tensor
    targets: torch.Tensor
    starts_epoch: bool  # True for the first window of an epoch: the carried state resets

    @property
    def tokens(self) -> int:
        return self.targets.numel()


def make_streams(ids: list[int] | torch.Tensor, batch_size: int, min_length: int = 2) -> torch.Tensor:
    """Cut `ids` into `batch_size` equal streams: (N, B) int64; the tail that does not fit is dropped."""
    ids = torch.as_tensor(ids, dtype=torch.long)
    rows = ids.numel() // batch_size
    if rows < min_length:
        raise ValueError(f"corpus too small: {ids.numel()} tokens make {rows} rows for batch size "
                         f"{batch_size}, but sequence length {min_length - 1} needs at least "
                         f"{min_length}; use more text or a smaller batch_size/bptt")
    return ids[: rows * batch_size].view(batch_size, rows).t().contiguous()


class BPTTBatches:
    """Endless iterator of `LMBatch` windows over (N, B) streams, wrapping at the end.

    `columns` selects this process's streams in data-parallel training (rank::world).
    """

    def __init__(self, streams: torch.Tensor, bptt: int, *, variable_length: bool = False,
                 seed: int = 0, columns: slice | None = None):
        if streams.size(0) < bptt + 1:
            raise ValueError(f"corpus too small: {streams.size(0)} rows per stream, sequence "
                             f"length {bptt} needs at least {bptt + 1}")
        self.streams = streams if columns is None else streams[:, columns]
        self.bptt = bptt
        self.variable_length = variable_length
        self.position = 0
        self.epoch = 0
        self.generator = torch.Generator().manual_seed(seed)

    def _window_length(self) -> int:
        if not self.variable_length:
            return self.bptt
        halve = torch.rand((), generator=self.generator).item() < 0.05
        base = self.bptt / 2 if halve else self.bptt
        jitter = torch.randn((), generator=self.generator).item() * 5
        return max(5, min(int(base + jitter), self.bptt + 20))

    def __iter__(self) -> "BPTTBatches":
        return self

    def __next__(self) -> LMBatch:
        starts_epoch = self.position == 0
        length = min(self._window_length(), self.streams.size(0) - 1 - self.position)
        window = self.streams[self.position : self.position + length + 1]  # (T+1, B)
        self.position += length
        if self.position >= self.streams.size(0) - 1:  # too little left for a target: wrap
            self.position = 0
            self.epoch += 1
        return LMBatch(window[:-1], window[1:], starts_epoch)

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.position, "epoch": self.epoch,
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.position = int(state["position"])
        self.epoch = int(state["epoch"])
        self.generator.set_state(state["generator"])


def evaluation_windows(streams: torch.Tensor, bptt: int) -> list[LMBatch]:
    """Every fixed-length window of (N, B) streams once, in order (for evaluation)."""
    windows = []
    for start in range(0, streams.size(0) - 1, bptt):
        window = streams[start : start + bptt + 1]
        if window.size(0) > 1:
            windows.append(LMBatch(window[:-1], window[1:], start == 0))
    return windows


def length_batches(lengths: Sequence[tuple[int, int]], batch_tokens: int, order: Sequence[int]) -> list[list[int]]:
    """Indices (in `order`, already sorted by length) cut into batches whose padded size
    (items x (longest of an item's lengths + 1)) stays within batch_tokens (at least one
    item each). lengths[i] is a tuple: (source, target) lengths of a pair, (frames,) of an utterance."""
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in order:
        width = max(lengths[index]) + 1
        if current and max(longest, width) * (len(current) + 1) > batch_tokens:
            batches.append(current)
            current, longest = [], 0
        current.append(index)
        longest = max(longest, width)
    if current:
        batches.append(current)
    return batches


def spread_sample(count: int, wanted: int) -> list[int]:
    """`wanted` indices spread evenly over range(count) (all when wanted is 0 or >= count)."""
    if not wanted or wanted >= count:
        return list(range(count))
    return [round(i * (count - 1) / (wanted - 1)) if wanted > 1 else 0 for i in range(wanted)]
