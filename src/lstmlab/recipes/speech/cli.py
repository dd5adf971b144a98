"""`lstmlab transcribe RUN FILE.wav [FILE.wav ...] [--beam K] [--lm LM_RUN] [--lexicon FILE] [--json]`,
and `lstmlab transcribe RUN --stream FILE.wav` (or ``--stream -`` for standard input).

Prints one transcript per file, in order. With --json: one JSON object per file with the
transcript, the audio duration and the time taken. ``--stream`` runs a unidirectional
run chunk by chunk on `lstmlab.Stream` (`streaming.StreamingRecognizer`), printing the
partial transcript whenever it changes, then the final one, and reports the real-time
factor and when the first partial came. Standard input carries a WAV stream or raw
16-bit little-endian mono PCM at ``--rate`` (``arecord -f S16_LE -r 16000 -c 1 | ...``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run folder (uses best.pt, else latest.pt) or checkpoint file")
    parser.add_argument("files", nargs="*", metavar="FILE.wav", help="audio files (WAV, FLAC, OGG; any rate)")
    parser.add_argument("--stream", metavar="FILE.wav|-", help="stream one file (or - for standard input) "
                        "chunk by chunk through a unidirectional run")
    parser.add_argument("--chunk-ms", type=float, default=100.0, help="streaming: audio per chunk (default 100 ms)")
    parser.add_argument("--rate", type=int, default=16000, help="streaming raw PCM from standard input: its rate")
    parser.add_argument("--beam", type=int, default=1, help="prefix beam width; 1 = greedy (default)")
    parser.add_argument("--lm", metavar="LM_RUN", help="a character LM run for shallow fusion (implies a beam: the "
                        "run's, 16 for runs trained now, unless --beam is given)")
    parser.add_argument("--lm_weight", type=float, help="LM weight alpha (default: the run's; 0.8 for runs trained now)")
    parser.add_argument("--word_bonus", type=float, help="per-word bonus beta (default: the run's; 0.5 for runs trained now)")
    parser.add_argument("--lexicon", metavar="FILE", help="a text file whose words the beam prefers (e.g. "
                        "RUN/lm_text.txt; implies a beam like --lm)")
    parser.add_argument("--oov_penalty", type=float, help="with --lexicon: cost of a word outside it (default: the "
                        "run's, -4 unless it saved another; --oov_penalty=-inf: lexicon words only)")
    parser.add_argument("--json", action="store_true", help="one JSON object per file, with timings")


def run(args: argparse.Namespace) -> int:
    import lstmlab
    from lstmlab.data.audio import SAMPLE_RATE, read_audio
    from lstmlab.recipes.speech.recognizer import load_fusion, load_lexicon

    loaded = lstmlab.load(args.run)
    if loaded.recipe != "speech":
        raise ValueError(f"{args.run} is a {loaded.recipe!r} run; `lstmlab transcribe` needs a speech run")
    if args.beam < 1:
        raise ValueError(f"--beam: expected a width of at least 1, got {args.beam}")
    if bool(args.files) == bool(args.stream):
        raise ValueError("give audio files to transcribe, or --stream FILE.wav (or --stream - for standard input)")
    lm, lexicon = load_fusion(args.lm), load_lexicon(args.lexicon)
    beam = loaded.config.data.beam if (lm is not None or lexicon is not None) and args.beam == 1 else args.beam
    options = {"beam": beam, "lm": lm, "lm_weight": args.lm_weight, "word_bonus": args.word_bonus,
               "lexicon": lexicon, "oov_penalty": args.oov_penalty}
    if args.stream:
        return stream(loaded, args, options)
    for path in args.files:
        wave = read_audio(path)
        started = time.perf_counter()
        text = loaded.transcribe(wave, SAMPLE_RATE, **options)
        seconds = time.perf_counter() - started
        if args.json:
            audio = len(wave) / SAMPLE_RATE
            print(json.dumps({"file": path, "transcript": text, "audio_seconds": round(audio, 3),
                              "seconds": round(seconds, 4), "real_time_factor": round(seconds / audio, 4)}))
        else:
            print(text)
    return 0


def stream(loaded, args: argparse.Namespace, options: dict) -> int:
    from lstmlab.recipes.speech.streaming import StreamingRecognizer, audio_chunks

    recognizer = StreamingRecognizer(loaded, **options)
    partial, first_partial = "", None
    for chunk, rate in audio_chunks(args.stream, args.chunk_ms, args.rate):
        text = recognizer.accept(chunk, rate)
        if text != partial:
            partial = text
            if first_partial is None:
                first_partial = recognizer.audio_seconds
            if not args.json:
                print(f"partial: {text}", flush=True)
    final = recognizer.finish()
    report = {"transcript": final, "audio_seconds": round(recognizer.audio_seconds, 3),
              "compute_seconds": round(recognizer.compute_seconds, 4),
              "real_time_factor": round(recognizer.real_time_factor, 4),
              "first_partial_at_audio_seconds": first_partial}
    if args.json:
        print(json.dumps(report))
    else:
        print(final)
        print(f"real-time factor {report['real_time_factor']:.4f} ({report['compute_seconds']:.2f} s of compute "
              f"for {report['audio_seconds']:.2f} s of audio); first partial after "
              f"{'-' if first_partial is None else f'{first_partial * 1000:.0f} ms'} of audio", file=sys.stderr)
    return 0
