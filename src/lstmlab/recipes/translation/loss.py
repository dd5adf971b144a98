"""The translation loss: label-smoothed cross-entropy, and the teacher-forced validation loss."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lstmlab.models.seq2seq import Seq2Seq
from lstmlab.recipes.translation.batches import Specials, length_batches, make_batch
from lstmlab.train import LossOutput

EncodedPairs = list[tuple[list[int], list[int]]]


class TranslationLoss:
    """Label-smoothed cross-entropy on the target tokens (padding ignored); the data loss
    logged is the plain cross-entropy, in nats per target token."""

    def __init__(self, pad: int, smoothing: float):
        self.pad, self.smoothing = pad, smoothing

    def __call__(self, model: nn.Module, batch: Any) -> LossOutput:
        logits = model(batch.source, batch.lengths, batch.target_in)  # (B, T, V)
        logits, targets = logits.reshape(-1, logits.shape[-1]), batch.target_out.reshape(-1)
        # torch's fused cross-entropy: one softmax, no (N, V) intermediates kept for backward
        loss = F.cross_entropy(logits, targets, ignore_index=self.pad, label_smoothing=self.smoothing,
                               reduction="sum")
        tokens = int((targets != self.pad).sum())
        if self.smoothing:
            with torch.no_grad():
                nll = F.cross_entropy(logits, targets, ignore_index=self.pad, reduction="sum").item()
        else:
            nll = loss.item()
        return LossOutput(loss / tokens, tokens, nll / tokens)


@torch.no_grad()
def teacher_forced_loss(model: Seq2Seq, pairs: EncodedPairs, specials: Specials, batch_tokens: int = 4000) -> float:
    """Mean nats per target token (with EOS) of `pairs` under teacher forcing."""
    lengths = [(len(s), len(t)) for s, t in pairs]
    order = sorted(range(len(pairs)), key=lambda i: lengths[i])
    total, tokens = 0.0, 0
    for indices in length_batches(lengths, batch_tokens, order):
        batch = make_batch([pairs[i] for i in indices], specials)
        logits = model(batch.source, batch.lengths, batch.target_in)
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.target_out.reshape(-1),
                                       ignore_index=specials.pad, reduction="sum"))
        tokens += batch.tokens
    return total / max(1, tokens)
