"""Streaming speech recognition: real-time factor and first-partial latency on one core.

A unidirectional run (``lstmlab train speech --bidirectional false --normalization
global``) transcribes test utterances (espeak-ng test voices and test sentences, never
used in training) chunk by chunk through `StreamingRecognizer`, as `lstmlab transcribe
--stream` does. For each utterance, interleaved with the streaming call, the same model
transcribes the whole file at once (`SpeechRun.transcribe`): the baseline of the same run.

- real-time factor: compute seconds / audio seconds (all utterances together, and the
  median per utterance); the target is <= 0.05 on one core;
- first partial: how much audio had arrived when the first non-empty partial transcript
  came, minus the speech onset (the first 10 ms frame above 5 % of the utterance's peak
  RMS), plus the compute time of that chunk: the delay a listener would see.

    .venv/bin/python benchmarks/speech_streaming.py RUN [--utterances 40] [--chunk-ms 100] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import jiwer
import torch

import lstmlab
from lstmlab.data import espeak
from lstmlab.data.audio import SAMPLE_RATE, read_audio
from lstmlab.recipes.speech.corpus import plan_utterance, sentence_pool
from lstmlab.recipes.speech.streaming import StreamingRecognizer
from ratio_table import processor_name  # benchmarks/ratio_table.py (the script's folder is on sys.path)

RESULTS = Path(__file__).parent / "results" / "speech_streaming.md"


def speech_onset(wave: torch.Tensor, frame: int = SAMPLE_RATE // 100) -> float:
    """Seconds to the first 10 ms frame whose RMS exceeds 5 % of the utterance's peak RMS."""
    frames = wave[: len(wave) // frame * frame].reshape(-1, frame)
    rms = frames.pow(2).mean(1).sqrt()
    return float((rms > 0.05 * rms.max()).nonzero()[0, 0]) * frame / SAMPLE_RATE


def stream_one(run, wave: torch.Tensor, chunk: int) -> dict:
    """Stream `wave` in chunks of `chunk` samples: transcript, compute, first-partial timing."""
    recognizer = StreamingRecognizer(run)
    first = None
    for start in range(0, len(wave), chunk):
        before = recognizer.compute_seconds
        partial = recognizer.accept(wave[start:start + chunk], SAMPLE_RATE)
        if partial and first is None:
            first = (recognizer.audio_seconds, recognizer.compute_seconds - before)
    text = recognizer.finish()
    return {"text": text, "compute": recognizer.compute_seconds, "audio": recognizer.audio_seconds, "first": first}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a unidirectional speech run folder")
    parser.add_argument("--utterances", type=int, default=40)
    parser.add_argument("--chunk-ms", type=float, default=100.0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the target is for one core)")
    parser.add_argument("--warmup", type=int, default=3, help="utterances run first, untimed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = lstmlab.load(args.run)
    seed = run.config.train.seed
    pool = sentence_pool("test", seed)
    chunk = int(SAMPLE_RATE * args.chunk_ms / 1000)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for index in range(args.warmup + args.utterances):
            text, voice = plan_utterance("test", index, seed, pool, espeak.variants_of("test"))
            wave = read_audio(espeak.synthesize(text, voice, Path(folder) / "utterance.wav"))
            streamed = stream_one(run, wave, chunk)
            started = time.perf_counter()
            whole = run.transcribe(wave, SAMPLE_RATE)
            offline = time.perf_counter() - started
            if index < args.warmup or streamed["first"] is None:
                continue
            heard, compute = streamed["first"]
            rows.append({"reference": text, "streamed": streamed["text"], "whole": whole, "audio": streamed["audio"],
                         "stream_compute": streamed["compute"], "offline_compute": offline,
                         "latency": heard - speech_onset(wave) + compute})
            print(f"{len(rows)}: rtf {rows[-1]['stream_compute'] / rows[-1]['audio']:.4f}, first partial "
                  f"{rows[-1]['latency'] * 1000:.0f} ms after the onset", flush=True)
    audio = sum(r["audio"] for r in rows)
    stream_rtf = sum(r["stream_compute"] for r in rows) / audio
    offline_rtf = sum(r["offline_compute"] for r in rows) / audio
    per_utterance = [r["stream_compute"] / r["audio"] for r in rows]
    latencies = sorted(r["latency"] * 1000 for r in rows)
    cer_stream = jiwer.cer([r["reference"] for r in rows], [r["streamed"] for r in rows])
    agree = sum(r["streamed"] == r["whole"] for r in rows)
    model = run.model.config
    lines = [
        "# Streaming speech recognition: real-time factor and first-partial latency", "",
        f"Run `{args.run}`: unidirectional {model.cell.upper()} {model.num_layers} x {run.model.hidden_size}"
        f"{' (' + model.variants + ')' if model.variants else ''}, "
        f"frames stacked x{model.stack}, global normalisation; {len(rows)} test utterances "
        f"({audio:.1f} s of audio, espeak-ng test voices), {args.chunk_ms:.0f} ms chunks, greedy partials.",
        f"Command: `.venv/bin/python benchmarks/speech_streaming.py {args.run} --utterances {args.utterances} "
        f"--chunk-ms {args.chunk_ms:g} --threads {args.threads}`", "",
        f"Machine: {processor_name()}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}.", "",
        "| measure | value |", "|---|---:|",
        f"| streaming real-time factor (all audio) | {stream_rtf:.4f} |",
        f"| streaming real-time factor, median (max) per utterance | {statistics.median(per_utterance):.4f} "
        f"({max(per_utterance):.4f}) |",
        f"| whole-file real-time factor, same model, same run | {offline_rtf:.4f} |",
        f"| streaming / whole-file compute | {stream_rtf / offline_rtf:.2f}x |",
        f"| first partial after the speech onset, median (max) | {statistics.median(latencies):.0f} ms "
        f"({latencies[-1]:.0f} ms) |",
        f"| utterances with the first partial within 300 ms | {sum(v <= 300 for v in latencies)} of {len(rows)} |",
        f"| streamed CER (greedy) | {cer_stream:.3f} |",
        f"| streamed transcript == whole-file transcript | {agree} of {len(rows)} |", "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
