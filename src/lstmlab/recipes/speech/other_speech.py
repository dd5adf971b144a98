"""A test set from a synthesiser the speech recipe never trains on: flite (`lstmlab.data.flite`).

It speaks the sentences of the recipe's own test set (the first `utterances` of
`corpus.sentence_pool("test", seed)`, in the same order, so the text matches the espeak-ng
test set utterance for utterance) with flite's five voices in turn, and writes

    FOLDER/wav/<voice>-<index>.wav      the audio (16 kHz; 8 kHz for kal, resampled on reading)
    FOLDER/flite.tsv                    manifest of every utterance (path<TAB>transcript)
    FOLDER/flite-<voice>.tsv            one manifest per voice

which `lstmlab evaluate RUN --data FOLDER/flite.tsv` scores. Run it with
``python -m lstmlab.recipes.speech.other_speech --out FOLDER`` (``make other-speech`` writes
``~/.cache/lstmlab/flite``). The manifests are written last, atomically, so a set cut off
half-way is never taken for a whole one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lstmlab.checkpoint import write_text_atomically
from lstmlab.data import flite
from lstmlab.recipes.speech.corpus import sentence_pool
from lstmlab.train import TrainConfig


def write_flite_set(folder: str | Path, utterances: int = 400, seed: int = TrainConfig.seed) -> Path:
    """Speak the first `utterances` test sentences of `seed`'s split with flite's voices in
    turn into `folder`; returns the manifest of all of them (``flite.tsv``)."""
    if utterances < 1:
        raise ValueError(f"utterances: expected at least 1, got {utterances}")
    folder = Path(folder)
    (folder / "wav").mkdir(parents=True, exist_ok=True)
    pool = sentence_pool("test", seed)
    rows: dict[str, list[str]] = {voice: [] for voice in flite.VOICES}
    everything: list[str] = []
    for index in range(utterances):
        voice, text = flite.VOICES[index % len(flite.VOICES)], pool[index % len(pool)]
        wav = folder / "wav" / f"{voice}-{index:04d}.wav"
        flite.synthesize(text, flite.Voice(voice), wav)
        rows[voice].append(f"wav/{wav.name}\t{text}")
        everything.append(rows[voice][-1])
    for voice, voice_rows in rows.items():
        if voice_rows:
            write_text_atomically(folder / f"flite-{voice}.tsv", "".join(row + "\n" for row in voice_rows))
    write_text_atomically(folder / "flite.tsv", "".join(row + "\n" for row in everything))
    return folder / "flite.tsv"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lstmlab.recipes.speech.other_speech",
                                     description="Write the speech recipe's test sentences spoken by flite.")
    parser.add_argument("--out", required=True, help="folder to write (wav/, flite.tsv, flite-<voice>.tsv)")
    parser.add_argument("--utterances", type=int, default=400, help="test sentences to speak (default 400)")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed,
                        help="the speech run's seed, which orders its test sentences (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        manifest = write_flite_set(args.out, args.utterances, args.seed)
    except (ValueError, flite.FliteError) as error:
        parser.exit(2, f"error: {error}\n")
    print(f"wrote {manifest} ({args.utterances} utterances, flite voices {', '.join(flite.VOICES)})")


if __name__ == "__main__":
    main()
