"""The translation recipe's configuration: data, model (`Seq2SeqConfig`) and training.

The defaults are the bundled English → Spanish Bible verses (King James → Reina-Valera
1909; test books Luke and Acts, validation Mark), a joint BPE vocabulary, a
bidirectional LSTM encoder and an LSTM decoder with Luong `general` attention, and
best.pt chosen by validation BLEU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lstmlab.models.seq2seq import Seq2SeqConfig
from lstmlab.train import TrainConfig


@dataclass
class TranslationDataConfig:
    """Which parallel text, how it is tokenised, batched and decoded."""

    path: str | None = None  # TSV of source<TAB>target lines; None = the bundled KJV -> Reina-Valera verses
    source: str | None = None  # or: a source-language file of lines ...
    target: str | None = None  # ... aligned with this target-language file
    vocab_size: int = 8000  # joint sentencepiece BPE vocabulary (trained on the training split only)
    max_train_words: int = 60  # leave out training pairs with a side longer than this (words); 0 = keep all
    batch_tokens: int = 3000  # target tokens per training batch (sentences of similar length together)
    eval_sentences: int = 300  # validation sentences translated (greedy) for BLEU while training; 0 = all
    beam: int = 5  # beam width of `lstmlab evaluate` and `lstmlab translate`
    length_penalty: float = 1.0  # beam search: score = log p / length ** length_penalty
    max_length_ratio: float = 1.5  # outputs stop at ratio * source tokens + 5
    max_source_tokens: int = 400  # longer inputs are cut to this many tokens when translating


def _train_defaults() -> TrainConfig:
    return TrainConfig(lr=2e-3, warmup_steps=200, best_metric="bleu", best_direction="higher",
                       eval_interval_seconds=120.0, log_interval=20)


@dataclass
class TranslationConfig:
    """Everything `lstmlab train translation` needs."""

    data: TranslationDataConfig = field(default_factory=TranslationDataConfig)
    model: Seq2SeqConfig = field(default_factory=Seq2SeqConfig)
    train: TrainConfig = field(default_factory=_train_defaults)
