"""Test sets from synthesisers the speech recipe's test voices never come from: flite
(`lstmlab.data.flite`; the recipe may train on four of its five voices, never on ``slt``)
and Festival (`lstmlab.data.festival`; never trained on).

Each speaks the sentences of the recipe's own test set (the first `utterances` of
`corpus.sentence_pool("test", seed)`, in the same order, so the text matches the espeak-ng
test set utterance for utterance) with the synthesiser's voices in turn, and writes

    FOLDER/wav/<voice>-<index>.wav      the audio (resampled to 16 kHz on reading)
    FOLDER/<synthesiser>.tsv            manifest of every utterance (path<TAB>transcript)
    FOLDER/<synthesiser>-<voice>.tsv    one manifest per voice

which `lstmlab evaluate RUN --data FOLDER/<synthesiser>.tsv` scores. Run it with
``python -m lstmlab.recipes.speech.other_speech --synthesiser flite --out FOLDER``
(``make other-speech`` writes ``~/.cache/lstmlab/flite`` and ``~/.cache/lstmlab/festival``).
The manifests are written last, atomically, so a set cut off half-way is never taken for a
whole one.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lstmlab.checkpoint import write_text_atomically
from lstmlab.data import festival, flite
from lstmlab.recipes.speech.corpus import sentence_pool
from lstmlab.train import TrainConfig


@dataclass(frozen=True)
class Synthesiser:
    voices: tuple[str, ...]
    speak: Callable[[str, str, Path], Path]  # (text, voice, wav path) -> wav path, in the voice's own settings
    error: type[Exception]  # what it raises when it is missing or fails


SYNTHESISERS = {
    "flite": Synthesiser(flite.VOICES, lambda text, voice, path: flite.synthesize(text, flite.Voice(voice), path),
                         flite.FliteError),
    "festival": Synthesiser(tuple(festival.VOICES),
                            lambda text, voice, path: festival.synthesize(text, festival.Voice(voice), path),
                            festival.FestivalError),
}


def write_synthesiser_set(folder: str | Path, synthesiser: str = "flite", utterances: int = 400,
                          seed: int = TrainConfig.seed) -> Path:
    """Speak the first `utterances` test sentences of `seed`'s split with the voices of
    `synthesiser` (a key of `SYNTHESISERS`) in turn into `folder`; returns the manifest of
    all of them (``<synthesiser>.tsv``)."""
    if synthesiser not in SYNTHESISERS:
        raise ValueError(f"synthesiser: expected one of {', '.join(SYNTHESISERS)}, got {synthesiser!r}")
    if utterances < 1:
        raise ValueError(f"utterances: expected at least 1, got {utterances}")
    voices, speak = SYNTHESISERS[synthesiser].voices, SYNTHESISERS[synthesiser].speak
    folder = Path(folder)
    (folder / "wav").mkdir(parents=True, exist_ok=True)
    pool = sentence_pool("test", seed)
    rows: dict[str, list[str]] = {voice: [] for voice in voices}
    everything: list[str] = []
    for index in range(utterances):
        voice, text = voices[index % len(voices)], pool[index % len(pool)]
        wav = speak(text, voice, folder / "wav" / f"{voice}-{index:04d}.wav")
        rows[voice].append(f"wav/{wav.name}\t{text}")
        everything.append(rows[voice][-1])
    for voice, voice_rows in rows.items():
        if voice_rows:
            write_text_atomically(folder / f"{synthesiser}-{voice}.tsv", "".join(row + "\n" for row in voice_rows))
    write_text_atomically(folder / f"{synthesiser}.tsv", "".join(row + "\n" for row in everything))
    return folder / f"{synthesiser}.tsv"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lstmlab.recipes.speech.other_speech",
                                     description="Write the speech recipe's test sentences spoken by another "
                                                 "synthesiser.")
    parser.add_argument("--out", required=True, help="folder to write (wav/, SYNTHESISER.tsv, SYNTHESISER-VOICE.tsv)")
    parser.add_argument("--synthesiser", default="flite", help=f"one of {', '.join(SYNTHESISERS)} (default flite)")
    parser.add_argument("--utterances", type=int, default=400, help="test sentences to speak (default 400)")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed,
                        help="the speech run's seed, which orders its test sentences (default %(default)s)")
    args = parser.parse_args(argv)
    errors = (ValueError, *(synthesiser.error for synthesiser in SYNTHESISERS.values()))
    try:
        manifest = write_synthesiser_set(args.out, args.synthesiser, args.utterances, args.seed)
    except errors as error:
        parser.exit(2, f"error: {error}\n")
    voices = SYNTHESISERS[args.synthesiser].voices
    print(f"wrote {manifest} ({args.utterances} utterances, {args.synthesiser} voices {', '.join(voices)})")


if __name__ == "__main__":
    main()
