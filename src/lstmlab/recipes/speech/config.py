"""The speech recipe's configuration: data, features, model (`AcousticModelConfig`), training.

Defaults: 12 hours of espeak-ng speech (held-out voices and plays for validation and
test), 80 log-mel bands every 10 ms, a 3-layer bidirectional layer-normalised LSTM
(``variants="layer_norm"``, Ba et al. 2016) over frames stacked ×3, CTC over 28
characters, a random frequency warp (VTLP) of each training utterance, best.pt chosen
by validation CER, and half of the training utterances spoken by generated voice
variants (``generated_voices=0.5``: the held-out voice furthest from the installed ones,
``zac``, went from CER 0.148 to 0.069 and 0.076 at 30 minutes in two runs), and 30 % of
them spoken by a second synthesiser, flite (``flite_voices=0.3``: recorded speech went from
CER 0.600 to 0.421 and a held-out flite voice from 0.583 to 0.348, while the held-out
espeak-ng voices went from 0.055 to 0.075; ``--flite_voices 0`` for espeak-ng alone). Layer norm is
the recipe's default because it lowered the test CER with beam + LM from 0.105 to 0.070
at 30 minutes (results/speech.md); the library's
`AcousticModelConfig` keeps the plain cell, and ``--cell gru`` needs ``--variants ''``
(torch's GRU has no layer norm). Dropout and SpecAugment are options, off by default:
with them a 30-minute run never fit its own training set, and without them it did
better on the held-out voices (results/speech.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lstmlab.models.acoustic import AcousticModelConfig
from lstmlab.recipes.speech.corpus import check_voice_fraction
from lstmlab.recipes.speech.features import FeatureConfig
from lstmlab.train import TrainConfig


@dataclass
class SpeechDataConfig:
    """Which speech, how it is batched, augmented and decoded."""

    path: str | None = None  # folder of name.wav + name.txt, or a TSV/CSV manifest; None = synthesised speech
    hours: float = 12.0  # synthesised training speech (cached; a larger value adds utterances)
    generated_voices: float = 0.5  # fraction of synthesised training utterances spoken by a random generated espeak variant
    flite_voices: float = 0.3  # fraction of synthesised training utterances spoken by flite instead (needs `make flite`)
    validation_utterances: int = 200  # synthesised, held-out voices and plays
    test_utterances: int = 400  # synthesised, other held-out voices, held-out plays
    jobs: int = 2  # processes synthesising speech
    batch_frames: int = 3500  # padded feature frames per batch (100 per second of audio)
    shortest_first_epochs: int = 0  # SortaGrad: the first this many epochs take batches shortest first
    spec_augment: bool = False  # SpecAugment masks on training batches (off: at CPU budgets the model underfits)
    freq_masks: int = 2  # SpecAugment: bands masked per utterance ...
    freq_width: int = 15  # ... each up to this many of the 80 bands
    time_masks: int = 2  # SpecAugment: time spans masked per utterance ...
    time_width_ratio: float = 0.05  # ... each up to this fraction of the utterance
    freq_warp: float = 0.2  # VTLP: each training utterance's frequencies scaled by a random factor in [1-w, 1+w]; 0 = off
    time_stretch: float = 0.0  # each training utterance's tempo scaled by a random factor in [1-s, 1+s] per epoch; 0 = off
    eval_utterances: int = 200  # validation utterances decoded (greedy) for CER while training; 0 = all
    # decoding, chosen on the validation voices by benchmarks/speech_fusion.py (results/speech_fusion.md)
    beam: int = 16  # prefix beam width of `lstmlab evaluate`, and of `lstmlab transcribe --lm`
    lm_weight: float = 0.8  # shallow fusion weight of a character LM (--lm RUN)
    word_bonus: float = 0.5  # added per word when decoding with an LM
    oov_penalty: float = -4.0  # with --lexicon FILE: added once per word outside the lexicon (-inf: lexicon words only)

    def check_augmentation(self) -> None:
        """ValueError naming the setting when an augmentation setting is out of range (before
        any speech is synthesised or any step is taken)."""
        if not 0 <= self.freq_warp < 1:
            raise ValueError(f"freq_warp: expected a warp in [0, 1) (frequencies scaled by a factor in "
                             f"[1 - w, 1 + w]; 0 = off), got {self.freq_warp}")
        check_voice_fraction("generated_voices", self.generated_voices)
        check_voice_fraction("flite_voices", self.flite_voices)
        if not 0 <= self.time_stretch < 1:
            raise ValueError(f"time_stretch: expected a stretch in [0, 1) (tempo scaled by a factor in "
                             f"[1 - s, 1 + s]; 0 = off), got {self.time_stretch}")
        if not 0 <= self.time_width_ratio < 1:
            raise ValueError(f"time_width_ratio: expected a fraction of the utterance in [0, 1), got {self.time_width_ratio}")
        for name in ("freq_masks", "freq_width", "time_masks", "shortest_first_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected a count >= 0, got {getattr(self, name)}")


def _model_defaults() -> AcousticModelConfig:
    return AcousticModelConfig(variants="layer_norm")


def _train_defaults() -> TrainConfig:
    return TrainConfig(lr=4e-3, warmup_steps=100, best_metric="cer", best_direction="lower",
                       eval_interval_seconds=120.0, log_interval=20)


@dataclass
class SpeechConfig:
    """Everything `lstmlab train speech` needs."""

    data: SpeechDataConfig = field(default_factory=SpeechDataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: AcousticModelConfig = field(default_factory=_model_defaults)
    train: TrainConfig = field(default_factory=_train_defaults)


# Fields whose default changed after runs were saved without them: such a run had the old value.
_BEFORE_THE_FIELD = {"data": {"generated_voices": 0.0, "flite_voices": 0.0}}


def saved_config(values: dict) -> SpeechConfig:
    """The SpeechConfig a checkpoint saved (`dataclasses.asdict`), with the values of its
    time for the fields it predates: a run saved before generated or flite voices trained
    without them, and resuming or evaluating it must not switch them on."""
    from lstmlab.config import from_dict

    values = {section: dict(fields) if isinstance(fields, dict) else fields for section, fields in values.items()}
    for section, defaults in _BEFORE_THE_FIELD.items():
        for name, value in defaults.items():
            values.setdefault(section, {}).setdefault(name, value)
    return from_dict(SpeechConfig, values)
