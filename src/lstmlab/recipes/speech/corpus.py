"""The speech recipe's data: utterances as cached log-mel features with their transcripts.

Synthetic (default): `synthetic_splits(config)` speaks Shakespeare sentences
(`lstmlab.data.speech_text`) with espeak-ng voices (`lstmlab.data.espeak`). Utterance i of
a split is fixed by (seed, split, i): its sentence, accent, variant, speed, pitch and
word gap, and for training its wave augmentation (noise, gain, channel, reverb). So the
set is reproducible, and ``--hours`` grows it: the first utterances stay, new shards are
added. Validation and test use held-out variants and held-out plays. With
``--generated_voices P``, a fraction P of the training utterances swap their installed
variant for a random generated one (`espeak.generated_variant`), everything else kept.
With ``--flite_voices P``, a fraction P of the training utterances are spoken by another
synthesiser instead, flite (`lstmlab.data.flite`), with one of its training voices at a
random rate and pitch; validation and test stay espeak-ng's held-out voices.

Each split is cached in ``$LSTMLAB_CACHE/speech/<key>/`` (default ``~/.cache/lstmlab``) as
shards of `SHARD_SIZE` utterances (``train-00000.pt``: float16 features (frames, 80),
lengths, texts, voices, seconds; written atomically, loaded without executing code) and
a readable ``train-00000.jsonl`` manifest. The key hashes the seed, the espeak-ng
version, the feature settings, `CORPUS_VERSION` and the generated-voice and flite fractions
when they are not 0.

User data: `user_features(path)` reads a folder of wav+txt or a TSV/CSV manifest
(`lstmlab.data.audio.read_speech_manifest`), any rate, mono or stereo.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import tempfile
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import torch
from torch import Tensor

from lstmlab.checkpoint import load_checkpoint, save_checkpoint
from lstmlab.data import espeak, flite
from lstmlab.data.audio import SAMPLE_RATE, read_audio
from lstmlab.data.cache import cache_folder
from lstmlab.data.shakespeare import shakespeare_splits
from lstmlab.data.speech_text import normalize_transcript, sentences
from lstmlab.recipes.speech.features import FeatureConfig, augment_wave, log_mel

CORPUS_VERSION = 2  # bump when the plan of an utterance or its processing changes
SHARD_SIZE = 500
AUGMENTED_FRACTION = 0.7  # training utterances with noise/gain/channel/reverb; the rest stay clean


@dataclass
class FeatureSet:
    """Utterances as one float16 feature matrix: utterance i is features[offsets[i]:offsets[i+1]]."""

    features: Tensor  # (total frames, F) float16
    lengths: Tensor  # (n,) int64 frames per utterance
    texts: list[str]  # normalised transcripts
    voices: list[str]  # voice name per utterance ("en-us+m3", or the file for user data)
    seconds: list[float]  # audio duration per utterance
    description: str = ""

    def __post_init__(self) -> None:
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), self.lengths.cumsum(0)])

    def __len__(self) -> int:
        return len(self.texts)

    def frames(self, index: int) -> Tensor:
        """(T, F) float32 features of utterance `index`."""
        return self.features[self.offsets[index]:self.offsets[index + 1]].float()

    @property
    def hours(self) -> float:
        return sum(self.seconds) / 3600

    def take(self, indices: list[int]) -> "FeatureSet":
        parts = [self.features[self.offsets[i]:self.offsets[i + 1]] for i in indices]
        return FeatureSet(torch.cat(parts) if parts else self.features[:0], self.lengths[indices],
                          [self.texts[i] for i in indices], [self.voices[i] for i in indices],
                          [self.seconds[i] for i in indices], self.description)

    @staticmethod
    def join(sets: list["FeatureSet"], description: str = "") -> "FeatureSet":
        return FeatureSet(torch.cat([s.features for s in sets]), torch.cat([s.lengths for s in sets]),
                          [t for s in sets for t in s.texts], [v for s in sets for v in s.voices],
                          [x for s in sets for x in s.seconds], description)


@dataclass
class SpeechSplits:
    train: FeatureSet
    validation: FeatureSet
    test: FeatureSet
    description: str


def cache_root() -> Path:
    return cache_folder("speech")


def synthetic_folder(seed: int, features: FeatureConfig, *, generated_voices: float = 0.0,
                     flite_voices: float = 0.0) -> Path:
    settings = {"version": CORPUS_VERSION, "seed": seed, "espeak": espeak.espeak_version(),
                "features": dataclasses.asdict(features)}
    if generated_voices:  # absent at 0, so the sets made before generated voices keep their folder
        settings["generated_voices"] = generated_voices
    if flite_voices:
        settings["flite_voices"] = flite_voices
    key = json.dumps(settings, sort_keys=True)
    return cache_root() / f"espeak-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def plan_utterance(split: str, index: int, seed: int, pool: list[str], variants: tuple, *,
                   generated_voices: float = 0.0, flite_voices: float = 0.0) -> tuple[str, espeak.Voice | flite.Voice]:
    """The sentence and voice of utterance `index` of `split` (a pure function of its
    arguments). With probability `generated_voices` the installed variant is replaced by a
    generated one; the sentence, accent, speed, pitch and gap are the same either way. Then,
    with probability `flite_voices`, the utterance is spoken by flite instead (a training
    voice at a random rate and mean pitch); the sentence stays."""
    rng = random.Random(f"{seed}/{split}/{index}")
    voice = espeak.Voice(accent=rng.choice(espeak.ACCENTS), variant=rng.choice(variants),
                         speed=rng.randint(125, 215), pitch=rng.randint(20, 80), gap=rng.choice((0, 0, 0, 1, 2)))
    if generated_voices and rng.random() < generated_voices:
        voice = dataclasses.replace(voice, variant=espeak.GENERATED, definition=espeak.generated_variant(rng))
    if flite_voices and rng.random() < flite_voices:
        voice = flite.Voice(rng.choice(flite.TRAINING_VOICES), stretch=round(rng.uniform(0.75, 1.35), 3),
                            f0=rng.randint(80, 230))
    return pool[index % len(pool)], voice


def _utterance_features(job: tuple) -> tuple[Tensor, float]:
    """Worker: synthesise, resample to 16 kHz, augment (training), log-mel as float16."""
    text, voice, augment_seed, features = job
    with tempfile.TemporaryDirectory(prefix="lstmlab-speech-") as folder:
        speak = flite.synthesize if isinstance(voice, flite.Voice) else espeak.synthesize
        wave = read_audio(speak(text, voice, Path(folder) / "utterance.wav"))
    if augment_seed is not None:
        wave = augment_wave(wave, torch.Generator().manual_seed(augment_seed), sample_rate=SAMPLE_RATE)
    return log_mel(wave, features).to(torch.float16), len(wave) / SAMPLE_RATE


def _build_shard(path: Path, split: str, start: int, count: int, seed: int, pool: list[str],
                 features: FeatureConfig, jobs: int, progress, *, generated_voices: float = 0.0,
                 flite_voices: float = 0.0) -> None:
    variants = espeak.variants_of(split)
    plans = [plan_utterance(split, i, seed, pool, variants, generated_voices=generated_voices, flite_voices=flite_voices)
             for i in range(start, start + count)]
    augment = [(seed * 1_000_003 + i) if split == "train" and random.Random(f"{seed}/aug/{i}").random()
               < AUGMENTED_FRACTION else None for i in range(start, start + count)]
    work = [(text, voice, a, features) for (text, voice), a in zip(plans, augment)]
    results = []
    if jobs > 1:
        # spawn, not fork: a forked child of a process whose OpenMP pool has run can hang
        with get_context("spawn").Pool(jobs, initializer=torch.set_num_threads, initargs=(1,)) as pool_:
            for result in pool_.imap(_utterance_features, work, chunksize=8):
                results.append(result)
                progress.update(1)
    else:
        for job in work:
            results.append(_utterance_features(job))
            progress.update(1)
    save_checkpoint({"features": torch.cat([r[0] for r in results]),
                     "lengths": torch.tensor([len(r[0]) for r in results]),
                     "texts": [text for text, _ in plans], "voices": [voice.name for _, voice in plans],
                     "seconds": [r[1] for r in results]}, path)
    manifest = "".join(json.dumps({"index": start + k, "text": text, "voice": voice.name} | _voice_settings(voice)
                                  | {"augmented": a is not None, "seconds": round(r[1], 3)}) + "\n"
                       for k, ((text, voice), a, r) in enumerate(zip(plans, augment, results)))
    path.with_suffix(".jsonl").write_text(manifest)


def _voice_settings(voice: espeak.Voice | flite.Voice) -> dict:
    """A voice's settings for the readable manifest."""
    if isinstance(voice, flite.Voice):
        return {"stretch": voice.stretch, "f0": voice.f0}
    return ({"speed": voice.speed, "pitch": voice.pitch, "gap": voice.gap}
            | ({"variant_file": voice.definition} if voice.definition else {}))


def _read_shard(path: Path, description: str) -> FeatureSet:
    state = load_checkpoint(path)
    return FeatureSet(state["features"], state["lengths"], state["texts"], state["voices"], state["seconds"],
                      description)


def _split_set(folder: Path, split: str, seconds: float | None, count: int | None, seed: int, pool: list[str],
               features: FeatureConfig, jobs: int, progress, *, generated_voices: float = 0.0,
               flite_voices: float = 0.0) -> FeatureSet:
    """The first utterances of `split` up to `seconds` of audio (or `count` utterances), building shards as needed."""
    sets, total, shard = [], 0.0, 0
    while (seconds is not None and total < seconds) or (count is not None and sum(map(len, sets)) < count):
        size = SHARD_SIZE if count is None else min(SHARD_SIZE, count - shard * SHARD_SIZE)
        path = folder / f"{split}-{shard:05d}{'' if count is None else f'-{size}'}.pt"
        if not path.is_file():
            _build_shard(path, split, shard * SHARD_SIZE, size, seed, pool, features, jobs, progress,
                         generated_voices=generated_voices, flite_voices=flite_voices)
        sets.append(_read_shard(path, split))
        total += sum(sets[-1].seconds)
        shard += 1
    joined = FeatureSet.join(sets, split)
    if seconds is not None:  # cut the last shard at the wanted duration
        cumulative = torch.tensor(joined.seconds).cumsum(0)
        keep = int((cumulative < seconds).sum()) + 1
        joined = joined.take(list(range(min(keep, len(joined)))))
    return joined


def sentence_pool(split: str, seed: int) -> list[str]:
    """The sentences that `split` speaks, in the order its utterances take them (shuffled by seed)."""
    pool = sentences(getattr(shakespeare_splits(), split))
    random.Random(f"{seed}/sentences/{split}").shuffle(pool)
    return pool


def check_voice_fraction(name: str, fraction: float) -> None:
    """ValueError unless `fraction` (of training utterances with generated or flite voices,
    the option `name`) is in [0, 1]."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"{name}: expected a fraction of the training utterances in [0, 1], got {fraction}")


def synthetic_splits(hours: float, validation_utterances: int, test_utterances: int, seed: int,
                     features: FeatureConfig, jobs: int = 2, *, generated_voices: float, flite_voices: float,
                     train_utterances: int = 0) -> SpeechSplits:
    """Training speech (`hours` of it, or its first `train_utterances` when given: a small
    corpus that does not synthesise a whole shard), validation and test speech,
    synthesised once and cached. `generated_voices`, `flite_voices`: the fractions of
    training utterances spoken by a generated variant and by flite (`plan_utterance`);
    required, because each pair of fractions is a different set (the recipe's are 0.5 and
    0.3, `SpeechDataConfig`), and a forgotten pair would synthesise hours of another one."""
    from tqdm import tqdm

    if hours <= 0 and train_utterances <= 0:
        raise ValueError(f"hours: expected a positive amount of training speech, got {hours}")
    pools = {split: sentence_pool(split, seed) for split in ("train", "validation", "test")}
    check_voice_fraction("generated_voices", generated_voices)
    check_voice_fraction("flite_voices", flite_voices)
    if flite_voices:
        flite.flite_binary()  # FliteError saying how to install it, before any speech is made
    folder = synthetic_folder(seed, features, generated_voices=generated_voices, flite_voices=flite_voices)
    folder.mkdir(parents=True, exist_ok=True)
    with tqdm(desc=f"synthesising speech into {folder}", unit="utt", leave=False, mininterval=2) as progress:
        train = _split_set(folder, "train", None if train_utterances > 0 else hours * 3600, train_utterances or None,
                           seed, pools["train"], features, jobs, progress, generated_voices=generated_voices,
                           flite_voices=flite_voices)
        validation = _split_set(folder, "validation", None, validation_utterances, seed, pools["validation"],
                                features, jobs, progress)
        test = _split_set(folder, "test", None, test_utterances, seed, pools["test"], features, jobs, progress)
    generated = f", {generated_voices:.0%} of utterances with generated variants" if generated_voices else ""
    generated += f", {flite_voices:.0%} spoken by flite" if flite_voices else ""
    description = (f"espeak-ng speech of Shakespeare sentences: {train.hours:.2f} h training "
                   f"({len(train):,} utterances, {len(espeak.variants_of('train'))} voice variants × "
                   f"{len(espeak.ACCENTS)} accents{generated}); validation {len(validation)} and test {len(test)} "
                   f"utterances with held-out variants and plays")
    return SpeechSplits(train, validation, test, description)


def user_features(path: str | Path, features: FeatureConfig) -> FeatureSet:
    """All utterances of a folder or manifest (`read_speech_manifest`) as features."""
    from tqdm import tqdm

    from lstmlab.data.audio import AudioError, read_speech_manifest

    items = read_speech_manifest(path)
    mels, texts, seconds = [], [], []
    for audio, transcript in tqdm(items, desc=f"reading {path}", unit="file", leave=False, mininterval=2):
        text = normalize_transcript(transcript)
        if not text:
            raise AudioError(f"{audio}: its transcript {transcript!r} has no letters left after normalising "
                             "to a-z, apostrophe and space")
        wave = read_audio(audio)
        mels.append(log_mel(wave, features).to(torch.float16))
        texts.append(text)
        seconds.append(len(wave) / SAMPLE_RATE)
    return FeatureSet(torch.cat(mels), torch.tensor([len(m) for m in mels]), texts, [str(a) for a, _ in items],
                      seconds, f"{len(items)} utterances from {path}")


def user_splits(data: FeatureSet, seed: int) -> SpeechSplits:
    """A user's utterances split 90/5/5 (at least one each for validation and test), shuffled by seed."""
    if len(data) < 3:
        raise ValueError(f"{data.description}: training needs at least 3 utterances (train, validation, test), "
                         f"got {len(data)}")
    order = list(range(len(data)))
    random.Random(seed).shuffle(order)
    held = max(1, len(data) // 20)
    return SpeechSplits(data.take(order[2 * held:]), data.take(order[:held]), data.take(order[held:2 * held]),
                        data.description + " (90/5/5 split)")
