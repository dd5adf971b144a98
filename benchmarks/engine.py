"""Engine benchmark: lstmlab's engines against torch.nn.LSTM on CPU, same process.

    python benchmarks/engine.py            # full table -> benchmarks/results/engine-cpu.md
    python benchmarks/engine.py --quick    # fewer shapes and rounds (smoke run)
    python benchmarks/engine.py --streaming  # the streaming section alone -> benchmarks/results/stream-cpu.md

Method: one process, `--threads` threads (default 2), every case warmed up, then
`--rounds` interleaved rounds (each round times every contender once, in turn, so load
from other processes hits all of them alike); the table reports medians and ratios to
torch.nn.LSTM measured in the same rounds. Training = forward + backward of
``output.sum()`` (plus the trace when it is asked for). "naive" is the same cell as an
autograd time loop in Python (lstmlab's reference engine), what users write today.
GFLOP/s counts the LSTM GEMMs only (training = 3x forward), against the machine's GEMM
peak measured in the same run (the better of torch.mm and oneDNN's linear).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import lstmlab

RESULTS = Path(__file__).resolve().parent / "results" / "engine-cpu.md"
SHAPES = [(100, 32, 64, 128), (100, 64, 256, 512), (50, 8, 128, 256), (200, 1, 64, 64), (500, 16, 32, 64),
          (35, 20, 650, 650)]
EXTRA = [("2-layer bidirectional", (100, 32, 64, 128), dict(num_layers=2, bidirectional=True)),
         ("proj_size=64", (100, 32, 64, 256), dict(proj_size=64))]
VARIANTS = [("plain+trace", dict(), True), ("layer_norm", dict(layer_norm=True), False),
            ("peephole", dict(peephole=True), False), ("coupled", dict(coupled=True), False)]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(contenders: dict, rounds: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds per contender over `rounds` interleaved rounds."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            samples[name].append(timed(fn))
    return {name: statistics.median(values) for name, values in samples.items()}


def gemm_peak(rounds: int) -> float:
    """GFLOP/s of the better of torch.mm and oneDNN linear on 1024^3 fp32 (warm, median)."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    linear = torch.nn.Linear(1024, 1024, bias=False).eval()
    contenders = {"mm": lambda: torch.mm(a, b)}
    if torch.backends.mkldnn.is_available():
        from torch.utils import mkldnn as mkldnn_utils

        dense = mkldnn_utils.to_mkldnn(linear)
        a_mkldnn = a.to_mkldnn()
        contenders["onednn"] = lambda: dense(a_mkldnn)
    with torch.no_grad():
        times = interleaved(contenders, rounds=max(5, rounds), warmup=3)
    return 2 * 1024 ** 3 / min(times.values()) / 1e9


def lstm_flops(steps, batch, inputs, hidden, options) -> float:
    """Forward GEMM flops: 2·T·B·4H·(I + P) per layer-direction (+ projection)."""
    layers, directions = options.get("num_layers", 1), 2 if options.get("bidirectional") else 1
    out = options.get("proj_size") or hidden
    total = 0.0
    for layer in range(layers):
        layer_in = inputs if layer == 0 else out * directions
        per_direction = 2 * steps * batch * 4 * hidden * (layer_in + out)
        if options.get("proj_size"):
            per_direction += 2 * steps * batch * hidden * out
        total += per_direction * directions
    return total


def contenders_for(shape, options, variant_options, trace, training):
    steps, batch, inputs, hidden = shape
    baseline = torch.nn.LSTM(inputs, hidden, **options)
    fast = lstmlab.LSTM(inputs, hidden, **options, **variant_options)
    naive = lstmlab.LSTM(inputs, hidden, **options, **variant_options, engine="reference")
    x = torch.randn(steps, batch, inputs, requires_grad=training)

    def make(module, with_trace):
        def run():
            with torch.set_grad_enabled(training):
                result = module(x, trace=with_trace) if isinstance(module, lstmlab.LSTM) else module(x)
                if training:
                    loss = result[0].sum()
                    if with_trace:
                        loss = loss + result[2][0].f.sum()
                    loss.backward()
        return run

    return {"torch.nn.LSTM": make(baseline, False), "lstmlab": make(fast, trace), "naive": make(naive, trace)}


def bench_rows(shapes, rounds, mode):
    training = mode == "training"
    rows = []
    for label, shape, options in shapes:
        for variant, variant_options, trace in VARIANTS:
            # The naive loop is slow on long/large shapes: fewer rounds there, same method.
            times = interleaved(contenders_for(shape, options, variant_options, trace, training), rounds)
            flops = lstm_flops(*shape, options) * (3 if training else 1)
            rows.append(dict(label=label, shape=shape, variant=variant, engine=engine_name(shape, options,
                             variant_options, trace), flops=flops, **times))
            print(f"  {mode:9s} {label:22s} {variant:12s} nn {times['torch.nn.LSTM'] * 1e3:8.2f} ms  "
                  f"lstmlab {times['lstmlab'] * 1e3:8.2f} ms ({times['lstmlab'] / times['torch.nn.LSTM']:.2f}x)  "
                  f"naive {times['naive'] * 1e3:8.2f} ms", flush=True)
    return rows


def engine_name(shape, options, variant_options, trace) -> str:
    module = lstmlab.LSTM(shape[2], shape[3], **options, **variant_options)
    return lstmlab.engines.select(module.engine, module.spec, need_trace=trace)[0]


STREAM_RESULTS = RESULTS.with_name("stream-cpu.md")
STREAM_HIDDEN = (64, 256, 512)


def streaming(rounds, steps=200):
    """µs per step, batch 1: torch.nn.LSTMCell vs lstmlab.LSTM.step (no_grad) and lstmlab.Stream.

    Each timing runs `steps` steps (10x as many for H <= 128, whose steps take microseconds)."""
    rows = []
    for hidden in STREAM_HIDDEN:
        count = steps * 10 if hidden <= 128 else steps
        cell = torch.nn.LSTMCell(hidden, hidden)
        lstm = lstmlab.LSTM(hidden, hidden).eval()
        stream = lstmlab.Stream(lstm)
        xs = list(torch.randn(count, 1, hidden))

        def run_cell():
            state = None
            for x in xs:
                state = cell(x, state)

        def run_step():
            state = None
            for x in xs:
                _, state = lstm.step(x, state)

        def run_stream():
            stream.reset()
            for x in xs:
                stream(x)

        cpu = {"torch.nn.LSTMCell": [], "LSTM.step": [], "Stream": []}  # process CPU time, all threads

        def with_cpu(name, fn):
            def run():
                start = time.process_time()
                fn()
                cpu[name].append(time.process_time() - start)
            return run

        contenders = {"torch.nn.LSTMCell": run_cell, "LSTM.step": run_step, "Stream": run_stream}
        with torch.no_grad():
            times = interleaved({name: with_cpu(name, fn) for name, fn in contenders.items()}, rounds)
        per_step = {k: v / count * 1e6 for k, v in times.items()}
        per_step.update({f"{k} CPU": statistics.median(v[-rounds:]) / count * 1e6 for k, v in cpu.items()})
        rows.append((hidden, per_step))
        print(f"  streaming H={hidden}: " + ", ".join(f"{k} {v:.1f} µs" for k, v in per_step.items()), flush=True)
    return rows


def streaming_table(rows) -> list[str]:
    lines = ["### streaming (batch 1, I = H, µs per step, no autograd)", "",
             "Wall-clock medians; CPU = the process's CPU time per step (all its threads), which other "
             "processes on the shared cores do not inflate.", "",
             "| H | torch.nn.LSTMCell | lstmlab LSTM.step | lstmlab Stream | Stream / LSTMCell | LSTMCell CPU "
             "| Stream CPU |", "|---|---|---|---|---|---|---|"]
    for hidden, times in rows:
        base = times["torch.nn.LSTMCell"]
        lines.append(f"| {hidden} | {base:.1f} | {times['LSTM.step']:.1f} | {times['Stream']:.1f} | "
                     f"{times['Stream'] / base:.2f}x | {times['torch.nn.LSTMCell CPU']:.1f} | "
                     f"{times['Stream CPU']:.1f} |")
    return lines + [""]


def streaming_main(args) -> int:
    """`--streaming`: the streaming section alone, written to results/stream-cpu.md."""
    print(machine_line(args.threads))
    steps = 20 if args.quick else 200
    rows = streaming(args.rounds, steps=steps)
    lines = ["# Streaming benchmark (CPU)", "", f"Machine: {machine_line(args.threads)}.", "",
             f"Command: `python benchmarks/engine.py --streaming{' --quick' if args.quick else ''} --rounds "
             f"{args.rounds} --threads {args.threads}`. Medians of {args.rounds} interleaved rounds after warm-up "
             f"(each round runs {steps} steps, {10 * steps} for H <= 128); Stream / LSTMCell < 1 is faster. "
             f"Load average (1, 5, 15 min) when the run ended: {', '.join(f'{v:.1f}' for v in os.getloadavg())} on "
             f"{os.cpu_count()} CPUs: wall-clock times grow when other processes share the cores.", "",
             *streaming_table(rows)]
    out = STREAM_RESULTS if args.out == RESULTS else args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {out}")
    return 0


def machine_line(threads) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip() or "unknown"
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return (f"{cpu}, {threads} threads, torch {torch.__version__}, lstmlab {lstmlab.__version__} "
            f"(commit {commit}), {datetime.date.today().isoformat()}")


def table(rows, peak, mode) -> list[str]:
    lines = [f"### {mode}", "",
             "| case (T, B, I, H) | variant | engine | torch.nn.LSTM ms | lstmlab ms | ratio | naive ms | naive ratio "
             "| lstmlab vs naive | lstmlab GFLOP/s | % of GEMM peak |", "|" + "---|" * 11]
    for row in rows:
        base, ours, naive = row["torch.nn.LSTM"], row["lstmlab"], row["naive"]
        gflops = row["flops"] / ours / 1e9
        case = row["label"] if row["label"] == str(row["shape"]) else f"{row['label']} {row['shape']}"
        lines.append(f"| {case} | {row['variant']} | {row['engine']} | {base * 1e3:.2f} | "
                     f"{ours * 1e3:.2f} | {ours / base:.2f}x | {naive * 1e3:.2f} | {naive / base:.2f}x | "
                     f"{naive / ours:.1f}x faster | {gflops:.1f} | {100 * gflops / peak:.0f}% |")
    return lines + [""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timed rounds per case (default 5)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--quick", action="store_true", help="two tiny shapes, short streaming (smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    parser.add_argument("--streaming", action="store_true", help=f"the streaming section only -> {STREAM_RESULTS.name}")
    parser.add_argument("--note", default="", help="a line for the results file, e.g. how busy the machine was")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.streaming:
        return streaming_main(args)
    shapes = [(str(s), s, {}) for s in SHAPES] + EXTRA
    if args.quick:  # a smoke run: tiny shapes, the same code paths
        shapes = [(str(s), s, {}) for s in ((20, 4, 16, 32), (30, 1, 8, 16))]
    print(machine_line(args.threads))
    peak = gemm_peak(args.rounds)
    print(f"GEMM peak measured: {peak:.0f} GFLOP/s")
    sections = {mode: bench_rows(shapes, args.rounds, mode) for mode in ("inference", "training")}
    stream = streaming(args.rounds, steps=20 if args.quick else 200)
    lines = ["# Engine benchmark (CPU)", "", f"Machine: {machine_line(args.threads)}.", "",
             f"Command: `python benchmarks/engine.py{' --quick' if args.quick else ''} --rounds {args.rounds} "
             f"--threads {args.threads}`. Medians of {args.rounds} interleaved rounds after warm-up; ratio = "
             "time / torch.nn.LSTM time in the same rounds (< 1 is faster). GEMM peak measured in the same run: "
             f"{peak:.0f} GFLOP/s.", ""]
    if args.note:
        lines += [f"Note: {args.note}", ""]
    for mode, rows in sections.items():
        lines += table(rows, peak, mode)
    lines += streaming_table(stream)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
