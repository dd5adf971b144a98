"""Translation on the shared trainer: data, tokeniser, loss, evaluation (loss + BLEU), run.

`train_translation(config, out_dir)` is what `lstmlab train translation` calls: it
loads the parallel text (`lstmlab.data.parallel`), trains a joint sentencepiece BPE on
the training pairs only, builds `Seq2Seq` and hands `PairBatches`, the label-smoothed
loss and the BLEU evaluation to `lstmlab.train.Trainer` (best.pt = best validation BLEU).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from torch import nn

from lstmlab.checkpoint import RunInfo
from lstmlab.data.batching import spread_sample
from lstmlab.data.parallel import ParallelSplits, load_parallel_splits, read_parallel, user_splits
from lstmlab.data.tokenizers import BPETokenizer
from lstmlab.metrics import translation_scores
from lstmlab.models import count_parameters
from lstmlab.models.seq2seq import Seq2Seq
from lstmlab.recipes.translation.batches import PairBatches, Specials
from lstmlab.recipes.translation.loss import TranslationLoss, teacher_forced_loss
from lstmlab.recipes.translation.config import TranslationConfig
from lstmlab.recipes.translation.translator import DecodeOptions, decode_ids
from lstmlab.recipes.base import refuse_existing_run
from lstmlab.reproducibility import seed_everything
from lstmlab.distributed import init_distributed
from lstmlab.train import Trainer

RECIPE_NAME = "translation"
EncodedPairs = list[tuple[list[int], list[int]]]


def load_splits(config: TranslationConfig) -> ParallelSplits:
    """The configured parallel text, split: the bundled verses, a TSV, or two aligned files."""
    data = config.data
    if (data.source is None) != (data.target is None):
        raise ValueError("give both --source and --target (aligned files of lines), or neither")
    if data.source is not None:
        if data.path is not None:
            raise ValueError("give either --data (a TSV file) or --source and --target, not both")
        pairs = read_parallel(source=data.source, target=data.target)
        return user_splits(pairs, seed=config.train.seed)
    return load_parallel_splits(data.path, seed=config.train.seed)  # training pairs are filtered in train_pairs


def train_pairs(splits: ParallelSplits, max_words: int) -> list[tuple[str, str]]:
    """The training pairs, without those with a side longer than max_words (0 = all)."""
    if not max_words:
        return list(splits.train)
    return [(s, t) for s, t in splits.train if len(s.split()) <= max_words and len(t.split()) <= max_words]


def encode_pairs(tokenizer: Any, pairs: Sequence[tuple[str, str]]) -> EncodedPairs:
    return [(tokenizer.encode(source), tokenizer.encode(target)) for source, target in pairs]


def score_translations(model: Seq2Seq, tokenizer: Any, pairs: Sequence[tuple[str, str]], options: DecodeOptions,
                       encoded: EncodedPairs | None = None) -> dict[str, Any]:
    """BLEU and chrF (sacrebleu) of the model's translations of `pairs` against their targets."""
    encoded = encoded if encoded is not None else encode_pairs(tokenizer, pairs)
    found = decode_ids(model, [source for source, _ in encoded], Specials.of(tokenizer), options)
    hypotheses = [tokenizer.decode(h.tokens) for h in found]
    scores = translation_scores(hypotheses, [target for _, target in pairs])
    scores["hypotheses"] = hypotheses
    return scores


@dataclass
class PreparedData:
    tokenizer: BPETokenizer
    splits: ParallelSplits
    train: EncodedPairs
    validation: EncodedPairs


def prepare_data(config: TranslationConfig) -> PreparedData:
    """Split, train the joint BPE on the training pairs alone, encode train and validation."""
    splits = load_splits(config)
    kept = train_pairs(splits, config.data.max_train_words)
    if not kept:
        raise ValueError(f"no training pair has both sides within max_train_words={config.data.max_train_words} "
                         "words; raise it (0 keeps all)")
    joint = "\n".join(side for pair in kept for side in pair)
    tokenizer = BPETokenizer.train(joint, vocab_size=config.data.vocab_size)
    return PreparedData(tokenizer, splits, encode_pairs(tokenizer, kept), encode_pairs(tokenizer, splits.validation))


def build_trainer(config: TranslationConfig, data: PreparedData, out_dir: str | Path | None) -> Trainer:
    """Seed, build the model and batches, and wrap them in a Trainer."""
    rank, world_size = init_distributed()
    seed_everything(config.train.seed)
    specials = Specials.of(data.tokenizer)
    model = Seq2Seq(config.model, data.tokenizer.vocab_size + 1, specials.pad)
    if world_size > 1:  # same initial weights everywhere, each process its own dropout masks
        seed_everything(config.train.seed + rank)
    batches = PairBatches(data.train, specials, config.data.batch_tokens, config.train.seed,
                          shard=slice(rank, None, world_size))
    options = DecodeOptions(beam=1, max_length_ratio=config.data.max_length_ratio,
                            max_source_tokens=config.data.max_source_tokens)
    sample = spread_sample(len(data.validation), config.data.eval_sentences)
    bleu_pairs = [data.splits.validation[i] for i in sample]
    bleu_encoded = [data.validation[i] for i in sample]

    def evaluate(model: nn.Module) -> dict[str, Any]:
        scores = score_translations(model, data.tokenizer, bleu_pairs, options, bleu_encoded)
        return {"loss": teacher_forced_loss(model, data.validation, specials), "bleu": scores["bleu"],
                "chrf": scores["chrf"], "tokens": sum(len(t) + 1 for _, t in data.validation),
                "bleu_sentences": len(bleu_pairs)}

    metadata = {"corpus": data.splits.description, "parameters": count_parameters(model),
                "pairs": {"train": len(data.train), "validation": len(data.splits.validation),
                          "test": len(data.splits.test)}}
    run = RunInfo(RECIPE_NAME, dataclasses.asdict(config), {"tokenizer": data.tokenizer.to_dict()}, metadata)
    return Trainer(model, batches, TranslationLoss(specials.pad, config.model.label_smoothing), config.train,
                   evaluate=evaluate, out_dir=out_dir, run=run, unit="token", main_metric="bleu")


def train_translation(config: TranslationConfig, out_dir: str | Path | None, *, resume: bool = False,
                      until_step: int | None = None) -> dict[str, Any]:
    """Train (or resume) and return the final validation record, with the trainer."""
    refuse_existing_run(out_dir, resume)
    data = prepare_data(config)
    trainer = build_trainer(config, data, out_dir)
    if resume:
        trainer.resume(Path(out_dir) / "latest.pt")
    if trainer.is_main:
        m = trainer.model
        print(f"corpus: {data.splits.description}; {len(data.train):,} training pairs "
              f"({sum(len(t) + 1 for _, t in data.train):,} target tokens, {trainer.batches.batches_per_epoch:,} "
              f"batches per epoch), joint BPE vocabulary {data.tokenizer.vocab_size}; model: "
              f"{trainer.run.metadata['parameters']:,} parameters, {config.model.cell} encoder "
              f"{'2 × ' if config.model.bidirectional else ''}{m.encoder_hidden}, decoder {m.decoder_hidden}, "
              f"attention {config.model.attention}", flush=True)
    result = trainer.fit(until_step=until_step)
    result["trainer"] = trainer
    return result
