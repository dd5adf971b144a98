"""Speech recognition on the shared trainer: data, CTC loss, evaluation (CER/WER), run.

`train_speech(config, out_dir)` is what `lstmlab train speech` calls: it builds (or reads
from the cache) the speech, builds `AcousticModel` (with the training set's feature
statistics for global normalisation) and hands `UtteranceBatches`, the CTC loss and the
CER evaluation to `lstmlab.train.Trainer` (best.pt = lowest validation CER).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmlab.checkpoint import RunInfo
from lstmlab.data.batching import length_batches, spread_sample
from lstmlab.data.speech_text import ALPHABET, SPACE, decode_labels
from lstmlab.metrics import speech_scores
from lstmlab.models import count_parameters
from lstmlab.models.acoustic import AcousticModel, check_config
from lstmlab.recipes.speech.batches import AugmentOptions, SpeechBatch, UtteranceBatches, make_batch
from lstmlab.recipes.speech.config import SpeechConfig
from lstmlab.recipes.speech.corpus import FeatureSet, SpeechSplits, synthetic_splits, user_features, user_splits
from lstmlab.recipes.speech.decoding import BeamOptions, beam_decode, greedy_decode
from lstmlab.recipes.base import refuse_existing_run
from lstmlab.reproducibility import seed_everything
from lstmlab.distributed import init_distributed
from lstmlab.train import LossOutput, Trainer

RECIPE_NAME = "speech"
N_LABELS = len(ALPHABET) + 1  # the characters and the CTC blank (0)


def load_splits(config: SpeechConfig) -> SpeechSplits:
    """The configured speech, split: synthesised (default) or the user's folder/manifest (90/5/5)."""
    data = config.data
    if data.path is not None:
        return user_splits(user_features(data.path, config.features), seed=config.train.seed)
    return synthetic_splits(data.hours, data.validation_utterances, data.test_utterances, config.train.seed,
                            config.features, jobs=data.jobs, generated_voices=data.generated_voices,
                            flite_voices=data.flite_voices)


def feature_statistics(data: FeatureSet) -> tuple[Tensor, Tensor]:
    """Per-band mean and standard deviation over every training frame (float64 sums)."""
    total = torch.zeros(data.features.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for start in range(0, len(data.features), 200_000):
        chunk = data.features[start:start + 200_000].double()
        total += chunk.sum(0)
        squares += (chunk ** 2).sum(0)
    count = len(data.features)
    mean = total / count
    return mean.float(), (squares / count - mean ** 2).clamp_min(0).sqrt().float()


def ctc_loss(model: nn.Module, batch: SpeechBatch) -> LossOutput:
    """CTC (blank 0) in mean nats per target character."""
    log_probs, out_lengths = model(batch.features, batch.lengths, batch.mask)
    loss = F.ctc_loss(log_probs.transpose(0, 1), batch.targets, out_lengths, batch.target_lengths,
                      blank=0, reduction="sum", zero_infinity=True) / max(1, batch.tokens)
    return LossOutput(loss, batch.tokens, loss.item())


def evaluation_batches(data: FeatureSet, batch_frames: int) -> list[list[int]]:
    lengths = [(int(n),) for n in data.lengths]
    return length_batches(lengths, batch_frames, sorted(range(len(data)), key=lambda i: lengths[i]))


Decoder = Callable[[Tensor, Tensor], list[list[int]]]  # (log_probs (B, T, V), lengths) -> labels per row


def greedy(log_probs: Tensor, lengths: Tensor) -> list[list[int]]:
    return greedy_decode(log_probs, lengths)


def beam_decoder(options: BeamOptions, lm: Any = None, lexicon: Any = None) -> Decoder:
    return lambda log_probs, lengths: beam_decode(log_probs, lengths, SPACE, options, lm, lexicon)


Posteriors = tuple[list[int], SpeechBatch, Tensor, Tensor]  # indices, batch, log_probs (B, T', V), out_lengths (B,)


@torch.no_grad()
def posteriors(model: AcousticModel, data: FeatureSet, batch_frames: int = 12000) -> Iterator[Posteriors]:
    """The model's CTC log-posteriors, one evaluation batch at a time (in eval mode; the
    model's mode is restored when the iteration ends)."""
    was_training = model.training
    model.eval()
    try:
        for indices in evaluation_batches(data, batch_frames):
            batch = make_batch(data, indices)
            log_probs, out_lengths = model(batch.features, batch.lengths)
            yield indices, batch, log_probs, out_lengths
    finally:
        model.train(was_training)


def decode_posteriors(batches: Iterable[Posteriors], count: int, decoders: dict[str, Decoder]) -> dict[str, list[str]]:
    """Each decoder's transcript of each of `count` utterances (in the data's order)."""
    found: dict[str, list[str]] = {name: [""] * count for name in decoders}
    for indices, _, log_probs, out_lengths in batches:
        for name, decode in decoders.items():
            for index, labels in zip(indices, decode(log_probs, out_lengths)):
                found[name][index] = decode_labels(labels)
    return found


def transcribe_set(model: AcousticModel, data: FeatureSet, decoders: dict[str, Decoder],
                   batch_frames: int = 12000) -> dict[str, Any]:
    """Transcripts of every utterance by each decoder, and the CTC loss (nats/char)."""
    totals = {"nats": 0.0, "chars": 0}

    def with_loss(batches: Iterable[Posteriors]) -> Iterator[Posteriors]:
        for indices, batch, log_probs, out_lengths in batches:
            totals["nats"] += F.ctc_loss(log_probs.transpose(0, 1), batch.targets, out_lengths, batch.target_lengths,
                                         blank=0, reduction="sum", zero_infinity=True).item()
            totals["chars"] += batch.tokens
            yield indices, batch, log_probs, out_lengths

    found = decode_posteriors(with_loss(posteriors(model, data, batch_frames)), len(data), decoders)
    return {"transcripts": found, "loss": totals["nats"] / max(1, totals["chars"]), "chars": totals["chars"]}


def score_set(model: AcousticModel, data: FeatureSet, decoders: dict[str, Decoder],
              batch_frames: int = 12000) -> dict[str, Any]:
    """{"<decoder>": {"wer", "cer"}, "loss", "transcripts"} on `data`."""
    result = transcribe_set(model, data, decoders, batch_frames)
    scores = {name: speech_scores(found, data.texts) for name, found in result["transcripts"].items()}
    return {**scores, "loss": result["loss"], "chars": result["chars"], "transcripts": result["transcripts"]}


def augment_options(config: SpeechConfig) -> AugmentOptions | None:
    """The training batches' augmentation (SpecAugment masks, frequency warp, time stretch); None = none."""
    data = config.data
    if not (data.spec_augment or data.freq_warp > 0 or data.time_stretch > 0):
        return None
    masks = (data.freq_masks, data.time_masks) if data.spec_augment else (0, 0)
    return AugmentOptions(freq_masks=masks[0], freq_width=data.freq_width, time_masks=masks[1],
                          time_width_ratio=data.time_width_ratio, freq_warp=data.freq_warp,
                          time_stretch=data.time_stretch, features=config.features)


def build_trainer(config: SpeechConfig, splits: SpeechSplits, out_dir: str | Path | None) -> Trainer:
    rank, world_size = init_distributed()
    seed_everything(config.train.seed)
    model = AcousticModel(config.model, config.features.n_mels, N_LABELS)
    model.set_statistics(*feature_statistics(splits.train))
    if world_size > 1:
        seed_everything(config.train.seed + rank)
    data = config.data
    batches = UtteranceBatches(splits.train, data.batch_frames, config.train.seed, augment_options(config),
                               shard=slice(rank, None, world_size), shortest_first_epochs=data.shortest_first_epochs)
    validation = splits.validation.take(spread_sample(len(splits.validation), data.eval_utterances))

    def evaluate(model: nn.Module) -> dict[str, Any]:
        scores = score_set(model, validation, {"greedy": greedy}, data.batch_frames)
        return {"loss": scores["loss"], "cer": scores["greedy"]["cer"], "wer": scores["greedy"]["wer"],
                "tokens": scores["chars"], "utterances": len(validation)}

    metadata = {"corpus": splits.description, "parameters": count_parameters(model),
                "hours": {"train": splits.train.hours, "validation": splits.validation.hours,
                          "test": splits.test.hours},
                "utterances": {"train": len(splits.train), "validation": len(splits.validation),
                               "test": len(splits.test)}}
    run = RunInfo(RECIPE_NAME, dataclasses.asdict(config), {"alphabet": ALPHABET}, metadata)
    return Trainer(model, batches, ctc_loss, config.train, evaluate=evaluate, out_dir=out_dir, run=run,
                   unit="char", main_metric="cer")


def train_speech(config: SpeechConfig, out_dir: str | Path | None, *, resume: bool = False,
                 until_step: int | None = None) -> dict[str, Any]:
    """Train (or resume) and return the final validation record, with the trainer."""
    refuse_existing_run(out_dir, resume)
    config.data.check_augmentation()
    check_config(config.model)
    splits = load_splits(config)
    trainer = build_trainer(config, splits, out_dir)
    if resume:
        trainer.resume(Path(out_dir) / "latest.pt")
    if trainer.is_main:
        m = config.model
        print(f"corpus: {splits.description}; {trainer.batches.batches_per_epoch:,} batches per epoch; model: "
              f"{trainer.run.metadata['parameters']:,} parameters, {m.num_layers} × "
              f"{'bidirectional ' if m.bidirectional else ''}{m.cell} {trainer.model.hidden_size}"
              f"{f' ({m.variants})' if m.variants else ''}"
              f"{f' (projection {m.proj_size})' if m.proj_size else ''}, frames stacked ×{m.stack}", flush=True)
    result = trainer.fit(until_step=until_step)
    result["trainer"] = trainer
    return result
