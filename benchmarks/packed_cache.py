"""Inference with the fused engine's cached packed weights against packing them every call.

    python benchmarks/packed_cache.py    # -> benchmarks/results/packed-cache-cpu.md

Without autograd the fused engine keeps each weight's packed copy for its tiles
(`lstmlab.engines.fused.packed_forward_weight`) instead of packing W_hh (and an in-tile
W_ih) on every call. The baseline here is the same module and input with that cache
bypassed (the C++ side then packs, as it does in training). Method as in
benchmarks/engine.py: one process, warm-up, interleaved rounds, medians, ratio to the
baseline measured in the same rounds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import lstmlab
from lstmlab.engines import fused_direction as fused  # FusedDirection looks packed_forward_weight up there

from engine import interleaved, machine_line

RESULTS = Path(__file__).resolve().parent / "results" / "packed-cache-cpu.md"
SHAPES = [(50, 8, 128, 256), (35, 20, 650, 650), (100, 32, 64, 128), (200, 1, 64, 64), (1, 8, 128, 256),
          (1, 1, 650, 650)]


def contenders_for(shape) -> dict:
    steps, batch, inputs, hidden = shape
    module, x = lstmlab.LSTM(inputs, hidden, engine="fused").eval(), torch.randn(steps, batch, inputs)
    cached, none = fused.packed_forward_weight, torch.empty(0)

    def run(packed_weight):
        def call():
            fused.packed_forward_weight = packed_weight
            try:
                with torch.no_grad():
                    module(x, trace=True)
            finally:
                fused.packed_forward_weight = cached
        return call

    return {"packed every call": run(lambda w: none), "cached": run(cached)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    machine = machine_line(args.threads)
    print(machine, flush=True)
    rows = []
    for shape in SHAPES:
        times = interleaved(contenders_for(shape), args.rounds, warmup=5)
        ratio = times["cached"] / times["packed every call"]
        rows.append(f"| {shape} | {times['packed every call'] * 1e3:.3f} | {times['cached'] * 1e3:.3f} | {ratio:.2f}x |")
        print(" ", rows[-1], flush=True)
    RESULTS.write_text(
        "# Fused inference: cached packed weights (CPU)\n\n"
        f"Machine: {machine}.\n\n"
        f"Command: `python benchmarks/packed_cache.py --rounds {args.rounds} --threads {args.threads}`. "
        "`lstmlab.LSTM(I, H)(x, trace=True)` under `torch.no_grad()`, fused engine; medians of interleaved "
        "rounds after warm-up; ratio = cached / packed every call (< 1 is faster).\n\n"
        "| (T, B, I, H) | packed every call ms | cached ms | ratio |\n|---|---|---|---|\n"
        + "\n".join(rows) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
