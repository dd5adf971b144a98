"""The odyssey's tasks, each trained through the recipe it belongs to.

A task turns one trial (Greff's variant, its hyper-parameters, a seed, a step budget)
into a run of its recipe and returns the test metric (lower is better) with the
validation metric that selected it:

- ``lm``: character language model on the bundled Shakespeare (`lstmlab.recipes.lm`);
  metric: bits/char on the held-out test plays;
- ``adding``: the 1997 adding problem at T = 100 (`lstmlab.recipes.longlag`); metric:
  held-out MSE at the end (training stops at the paper's success criterion), with the
  training sequences until success;
- ``music``: Bach chorales as 88-key piano rolls (`lstmlab.recipes.music`); metric:
  negative log-likelihood per eighth-note frame on the test chorales;
- ``speech``: CTC speech recognition on espeak-ng speech (`lstmlab.recipes.speech`), a
  bidirectional LSTM as Greff's TIMIT networks; metric: greedy character error rate on
  the test voices (held-out voice variants and plays). A task's ``batch_size`` is
  feature frames per batch here; SpecAugment is off (Greff added none).

Every trial runs a fixed number of updates (`steps`), the same for every variant, so an
engine's speed cannot change a result; `max_seconds` is only a safety cap, and a trial
records when it fired. Hyper-parameters a task has no use for (dropout for the adding
problem's one-layer net without a read-out dropout) are recorded and ignored.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import multiprocessing
import time
from dataclasses import dataclass
from typing import Any, Callable

from lstmlab.models.recurrent import with_variant


@dataclass(frozen=True)
class TaskSize:
    """How big one trial of a task is."""

    steps: int  # updates per trial (equal for every variant)
    max_seconds: float  # safety cap on training time per trial
    hidden_sizes: tuple[int, ...]  # the random search draws the hidden size from these
    batch_size: int
    extra: tuple[tuple[str, Any], ...] = ()  # task-specific sizes (eval tokens, chorale limit, ...)

    def get(self, name: str, default: Any = None) -> Any:
        return dict(self.extra).get(name, default)


@dataclass(frozen=True)
class OdysseyTask:
    """A task of the study: its metric, its sizes per suite, and how to run one trial."""

    name: str
    metric: str  # what `run` returns as "test" (lower is better)
    unit: str
    chance: float  # the metric of a trivial guess: a trial that does worse (or diverges) counts as this
    summary: str
    sizes: dict[str, TaskSize]  # suite name -> size
    run: Callable[..., dict[str, Any]]
    prepare: Callable[[TaskSize], Any] | None = None  # builds the task's data cache once, before the trials


def lm_trial(variant: str, hyper: dict[str, Any], seed: int, size: TaskSize) -> dict[str, Any]:
    """A character LM on Shakespeare through the lm recipe; bits/char on the test plays."""
    from lstmlab.recipes.lm.config import LMConfig
    from lstmlab.recipes.lm.task import evaluate_tokens, train_language_model

    config = LMConfig()
    config.data = dataclasses.replace(config.data, batch_size=size.batch_size, bptt=size.get("bptt", 100),
                                      eval_tokens=size.get("eval_tokens", 0))
    config.model = dataclasses.replace(config.model, hidden_size=hyper["hidden_size"], num_layers=1,
                                       embedding_size=size.get("embedding_size", 64), dropout_output=hyper["dropout"],
                                       variant=variant)
    config.train = dataclasses.replace(config.train, lr=hyper["lr"], max_steps=size.steps, budget=size.max_seconds,
                                       seed=seed, progress=False, threads=1)
    data = lm_data(config.data.tokenizer)
    result = train_language_model(config, None, data=data)
    trainer = result["trainer"]
    test_ids = data.test_ids[:size.get("test_tokens")] if size.get("test_tokens") else data.test_ids
    test = evaluate_tokens(trainer.model, test_ids, config.data.eval_batch_size, config.data.bptt)
    return {"test": test["loss"] / math.log(2), "validation": result["loss"] / math.log(2),
            "steps": trainer.step, "seconds": trainer.elapsed, "capped": trainer.step < size.steps}


@functools.cache
def lm_data(tokenizer: str):
    """The tokenised Shakespeare, once per process."""
    from lstmlab.recipes.lm.config import LMConfig
    from lstmlab.recipes.lm.task import prepare_data

    config = LMConfig()
    return prepare_data(dataclasses.replace(config, data=dataclasses.replace(config.data, tokenizer=tokenizer)))


def adding_trial(variant: str, hyper: dict[str, Any], seed: int, size: TaskSize) -> dict[str, Any]:
    """The adding problem (T = 100) through the long-lag recipe; held-out MSE at the end."""
    from lstmlab.models.longlag import ModelConfig
    from lstmlab.recipes.longlag.experiment import longlag_train_config, train_one
    from lstmlab.recipes.longlag.task_registry import make_task

    task = make_task("adding", size.get("length", 100))
    config = ModelConfig("lstm", task.input_size, hyper["hidden_size"], task.output_size, with_variant({}, variant))
    train = longlag_train_config(lr=hyper["lr"], max_steps=size.steps, budget=size.max_seconds, seed=seed,
                                 eval_interval=size.get("eval_interval", 100), threads=1)
    result, _ = train_one(task, config, seed, train, batch_size=size.batch_size, eval_size=size.get("eval_size", 2560))
    return {"test": result.final_loss, "validation": result.final_loss, "steps": result.steps,
            "seconds": result.wall_seconds, "capped": result.stopped_by == "max_seconds",
            "success": result.success, "sequences_to_success": result.sequences_to_success}


def music_trial(variant: str, hyper: dict[str, Any], seed: int, size: TaskSize) -> dict[str, Any]:
    """Bach chorales through the music recipe; NLL per frame on the test chorales."""
    from lstmlab.recipes.music.config import MusicConfig
    from lstmlab.recipes.music.task import evaluate_rolls, train_music

    config = MusicConfig()
    config.data = dataclasses.replace(config.data, batch_size=size.batch_size, limit=size.get("limit", 0),
                                      window=size.get("window", 0))
    config.model = dataclasses.replace(config.model, hidden_size=hyper["hidden_size"], dropout=hyper["dropout"],
                                       variant=variant)
    config.train = dataclasses.replace(config.train, lr=hyper["lr"], max_steps=size.steps, budget=size.max_seconds,
                                       seed=seed, progress=False, threads=1, eval_interval=0)
    data = music_data(config.data.limit)
    result = train_music(config, None, data=data)
    trainer = result["trainer"]
    test = evaluate_rolls(trainer.model, data.test, config.data.eval_batch_size)
    return {"test": test["loss"], "validation": result["loss"], "steps": trainer.step, "seconds": trainer.elapsed,
            "capped": trainer.step < size.steps}


@functools.cache
def music_data(limit: int):
    from lstmlab.data.chorales import load_chorales

    return load_chorales(limit or None, progress=False)


def speech_trial(variant: str, hyper: dict[str, Any], seed: int, size: TaskSize) -> dict[str, Any]:
    """Speech recognition through the speech recipe; greedy CER on the test voices."""
    from lstmlab.recipes.speech.config import SpeechConfig
    from lstmlab.recipes.speech.task import build_trainer, greedy, score_set

    config = SpeechConfig()
    config.data = dataclasses.replace(config.data, batch_frames=size.batch_size, spec_augment=False, freq_warp=0.0,
                                      eval_utterances=size.get("validation_utterances"))
    config.model = dataclasses.replace(config.model, hidden_size=hyper["hidden_size"],
                                       num_layers=size.get("num_layers", 1), dropout=hyper["dropout"],
                                       variants="", variant=variant,  # Greff's cells: no layer norm
                                       engine="auto")  # auto: FGR runs on the reference engine
    config.train = dataclasses.replace(config.train, lr=hyper["lr"], max_steps=size.steps, budget=size.max_seconds,
                                       seed=seed, progress=False, threads=1, eval_interval_seconds=0.0,
                                       warmup_steps=min(config.train.warmup_steps, size.steps // 10))
    splits = speech_data(size)
    trainer = build_trainer(config, splits, None)
    result = trainer.fit()
    test = score_set(trainer.model, splits.test, {"greedy": greedy}, size.batch_size)
    return {"test": test["greedy"]["cer"], "validation": result["cer"], "test_wer": test["greedy"]["wer"],
            "steps": trainer.step, "seconds": trainer.elapsed, "capped": trainer.step < size.steps}


def speech_data(size: TaskSize):
    """The task's espeak-ng corpus, once per process (synthesised into the speech cache on first use)."""
    return _speech_splits(*(size.get(name) for name in ("train_utterances", "validation_utterances", "test_utterances")))


@functools.cache
def _speech_splits(train_utterances: int, validation_utterances: int, test_utterances: int):
    from lstmlab.recipes.speech.config import SpeechConfig
    from lstmlab.recipes.speech.corpus import synthetic_splits

    config = SpeechConfig()
    jobs = 1 if multiprocessing.current_process().daemon else 2  # a study's pool worker may not start processes
    return synthetic_splits(config.data.hours, validation_utterances, test_utterances, config.train.seed,
                            config.features, jobs, train_utterances=train_utterances, generated_voices=0.0,
                            flite_voices=0.0)  # the set this study was measured on


TASKS: dict[str, OdysseyTask] = {
    "lm": OdysseyTask(
        "lm", "test bits/char", "bits/char", math.log2(81),  # a uniform guess over the plays' 81 characters
        "character LM, Shakespeare (held-out plays)",
        {"quick": TaskSize(12, 30.0, (32, 48), 16, (("bptt", 50), ("eval_tokens", 4000), ("test_tokens", 4000),
                                                     ("embedding_size", 16))),
         "full": TaskSize(300, 900.0, (64, 128), 32, (("bptt", 100), ("eval_tokens", 50_000),
                                                      ("test_tokens", 100_000)))},
        lm_trial),
    "adding": OdysseyTask(
        "adding", "held-out MSE", "MSE", 1 / 24,  # predicting the mean 0.5: Var(0.5 + (X1 + X2) / 4)
        "adding problem, T = 100 (Hochreiter & Schmidhuber 1997)",
        {"quick": TaskSize(20, 30.0, (8, 16), 32, (("length", 20), ("eval_size", 256), ("eval_interval", 10))),
         "full": TaskSize(1000, 900.0, (16, 32), 32, (("length", 100), ("eval_size", 2560),
                                                      ("eval_interval", 100)))},
        adding_trial),
    "music": OdysseyTask(
        "music", "test NLL/frame", "nats/frame", 88 * math.log(2),  # a coin flip per key
        "Bach chorales, 88-key piano rolls (music21)",
        {"quick": TaskSize(10, 30.0, (16, 32), 8, (("limit", 12),)),
         "full": TaskSize(600, 900.0, (64, 128), 16, (("window", 64),))},
        music_trial, lambda size: music_data(size.get("limit", 0))),
    "speech": OdysseyTask(
        "speech", "test CER (greedy)", "CER", 1.0,  # an empty transcript: every character is an error
        "speech recognition, espeak-ng voices (held-out variants)",
        {"quick": TaskSize(6, 30.0, (16, 24), 1500, (("train_utterances", 24), ("validation_utterances", 4),
                                                     ("test_utterances", 4))),
         "full": TaskSize(400, 900.0, (64, 128), 3000, (("train_utterances", 1500), ("validation_utterances", 100),
                                                        ("test_utterances", 200)))},
        speech_trial, speech_data),
}


def planned_steps(task: str, suite: str, steps: int | None = None) -> int:
    """The updates of one trial: `steps`, or the suite's size for the task."""
    return steps or TASKS[task].sizes[suite].steps


def run_trial(task: str, variant: str, hyper: dict[str, Any], seed: int, suite: str,
              steps: int | None = None) -> dict[str, Any]:
    """One trial; returns the task's record (test and validation metric, steps, seconds).
    steps: updates instead of the suite's (None: the suite's)."""
    entry = TASKS[task]
    started = time.perf_counter()
    record = entry.run(variant, hyper, seed, dataclasses.replace(entry.sizes[suite], steps=planned_steps(task, suite, steps)))
    record["wall_seconds"] = time.perf_counter() - started
    return record
