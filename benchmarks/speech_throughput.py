"""Training throughput of the speech recipe against a plain torch.nn.LSTM CTC loop.

Both train the same network (the recipe's: per-utterance normalisation, frames stacked
×3, 3-layer bidirectional LSTM 320, the recipe's dropout, linear, CTC over 28
characters + blank; AdamW, clipping 1.0) on the same batches of synthesised speech (the
recipe's `UtteranceBatches` with the recipe's augmentation):

- **recipe**: `lstmlab.train.Trainer` driving `lstmlab.models.acoustic.AcousticModel`
  (`lstmlab.LSTM` on its fused engine, packed), as `lstmlab train speech` runs it;
- **baseline**: the same network written by hand around `torch.nn.LSTM` (packed, as a
  user would write it for utterances of different lengths);
- **recipe, layer_norm**: the recipe's default cell, layer-normalised (torch.nn.LSTM has
  no such cell, so this row is what layer norm costs, not a like-for-like comparison);
- **bfloat16 rows**: the baseline and the layer-normalised recipe with the training forward
  under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (the recipe's ``--precision
  bfloat16``; torch.nn.LSTM then runs oneDNN's bfloat16 RNN, lstmlab's fused engine its
  GEMMs over all steps): fast on CPUs with bfloat16 instructions, emulated elsewhere.

Rounds are interleaved after a warm-up; we report medians of audio seconds per second
and the median of the per-round ratios.

    .venv/bin/python benchmarks/speech_throughput.py [--rounds 5] [--steps 6] [--hours 0.5]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstmlab.config import apply_overrides
from lstmlab.models.acoustic import AcousticModel
from lstmlab.recipes.speech.batches import UtteranceBatches
from lstmlab.recipes.speech.config import SpeechConfig
from lstmlab.recipes.speech.corpus import FeatureSet, synthetic_splits
from lstmlab.recipes.speech.task import N_LABELS, augment_options, ctc_loss
from lstmlab.train import Trainer, autocast
from ratio_table import interleaved_rates, write_ratio_table  # benchmarks/ratio_table.py (the script's folder is on sys.path)

RESULTS = Path(__file__).parent / "results" / "speech_throughput.md"


class PlainAcousticModel(nn.Module):
    """The baseline network: what one writes around torch.nn.LSTM without lstmlab."""

    def __init__(self, n_mels: int = 80, stack: int = 3, hidden: int = 320, layers: int = 3, dropout: float = 0.0):
        super().__init__()
        self.stack = stack
        self.lstm = nn.LSTM(n_mels * stack, hidden, layers, batch_first=True, bidirectional=True, dropout=dropout)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(2 * hidden, N_LABELS)

    def forward(self, features, lengths, mask):
        valid = (torch.arange(features.shape[1])[None, :] < lengths[:, None]).unsqueeze(-1)
        count = lengths[:, None, None].float()
        mean = (features * valid).sum(1, keepdim=True) / count
        std = ((((features - mean) * valid) ** 2).sum(1, keepdim=True) / count).sqrt().clamp_min(1e-5)
        x = (features - mean) / std * valid
        if mask is not None:  # SpecAugment's mask; None when the recipe has it off
            x = x * mask
        k, (b, t, f) = self.stack, x.shape
        x = F.pad(x, (0, 0, 0, -(-t // k) * k - t)).reshape(b, -1, k * f)
        out_lengths = (lengths + k - 1) // k
        packed = pack_padded_sequence(x, out_lengths, batch_first=True, enforce_sorted=False)
        output, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=x.shape[1])
        return self.output(self.dropout(output)).float().log_softmax(-1), out_lengths


class PlainLoop:
    def __init__(self, model: nn.Module, batches: UtteranceBatches, precision: str = "float32"):
        self.model, self.batches, self.precision = model, batches, precision
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def run(self, steps: int) -> float:
        seconds = 0.0
        for _ in range(steps):
            batch = next(self.batches)
            with autocast(self.model, self.precision):
                loss = ctc_loss(self.model, batch).loss
            self.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            seconds += batch.seconds
        return seconds


class RecipeLoop:
    def __init__(self, config: SpeechConfig, batches: UtteranceBatches):
        model = AcousticModel(config.model, config.features.n_mels, N_LABELS)
        self.batches = batches
        self.trainer = Trainer(model, batches, ctc_loss, config.train)

    def run(self, steps: int) -> float:
        before = self.batches.audio_seconds
        self.trainer.fit(until_step=self.trainer.step + steps)
        return self.batches.audio_seconds - before


def make_runners(train: FeatureSet, overrides: dict | None = None) -> dict:
    """The five runners, each on its own `UtteranceBatches` over `train` with the recipe's
    augmentation. `overrides`: recipe options for all of them (e.g. spec_augment)."""
    common = {"max_steps": 10**9, "progress": False, "warmup_steps": 0, **(overrides or {})}
    plain = apply_overrides(SpeechConfig(), {**common, "variants": ""})
    layer_norm = apply_overrides(SpeechConfig(), common)
    layer_norm_bf16 = apply_overrides(SpeechConfig(), {**common, "precision": "bfloat16"})
    augment, frames = augment_options(plain), plain.data.batch_frames
    batches = lambda: UtteranceBatches(train, frames, 0, augment)  # noqa: E731  (each runner its own)
    torch.manual_seed(0)
    variants = layer_norm.model.variants
    return {"baseline": PlainLoop(PlainAcousticModel(dropout=plain.model.dropout), batches()),
            "recipe": RecipeLoop(plain, batches()),
            f"recipe, {variants} (the default)": RecipeLoop(layer_norm, batches()),
            "baseline, bfloat16 autocast": PlainLoop(PlainAcousticModel(dropout=plain.model.dropout), batches(),
                                                     "bfloat16"),
            f"recipe, {variants}, --precision bfloat16": RecipeLoop(layer_norm_bf16, batches())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=6, help="training steps per round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--hours", type=float, default=0.5, help="synthesised speech to draw batches from")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = SpeechConfig()  # the recipe's data and features; make_runners builds each runner's model config
    splits = synthetic_splits(args.hours, config.data.validation_utterances, config.data.test_utterances,
                              config.train.seed, config.features, generated_voices=0.0,
                              flite_voices=0.0)  # espeak-ng only: batches to time, not a recipe to train
    rates, ratios = interleaved_rates(make_runners(splits.train), args.rounds, args.steps, args.warmup, "audio s/s")
    data = config.data
    model = (f"Model: per-utterance normalisation, frames stacked x3, BiLSTM 3 x 320, dropout {config.model.dropout}, "
             f"linear, CTC over {N_LABELS} labels; batches of ~{data.batch_frames} padded frames with the recipe's "
             f"augmentation (frequency warp {data.freq_warp}, SpecAugment {'on' if data.spec_augment else 'off'}; the recipe's "
             "UtteranceBatches, every runner the same); AdamW, clip 1.0. Baseline: torch.nn.LSTM, packed. recipe: the "
             "same network on lstmlab.LSTM (plain cell). The recipe's default cell is layer-normalised, which "
             "torch.nn.LSTM has no counterpart of: its row shows what layer norm costs. The bfloat16 rows run the "
             "training forward under torch.autocast(cpu, bfloat16) (the recipe's --precision bfloat16).")
    command = (f".venv/bin/python benchmarks/speech_throughput.py --rounds {args.rounds} --steps {args.steps}"
               + (f" --threads {args.threads}" if args.threads else ""))
    print(write_ratio_table(RESULTS, "Speech training throughput: recipe vs a plain torch.nn.LSTM CTC loop",
                            model, command, "audio seconds/s", rates, ratios))


if __name__ == "__main__":
    main()
