"""`lstmlab longlag`: LSTM vs GRU vs tanh RNN on the long-time-lag tasks.

    lstmlab longlag --task adding --length 200 --models lstm,gru,rnn --seeds 5 --out DIR
    lstmlab longlag --suite quick          # every task at toy size, ≤ 3 minutes
    lstmlab longlag --suite paper --jobs 2 # the 1997 table, CPU-sized, ~30 minutes on 2 cores
    lstmlab longlag --suite long --jobs 2  # adding / multiplication at T = 500 and 1000, ~45 minutes
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from .contenders import MODEL_KINDS, parse_lstm_options
from .experiment import Experiment, longlag_train_config
from .task_registry import TASKS, make_task
from .results import format_table, plot, write_json
from .runner import run_experiments
from .suites import SUITES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--task", choices=list(TASKS), help="one task: " + "; ".join(f"{k}: {v[3]}" for k, v in TASKS.items()))
    what.add_argument("--suite", choices=list(SUITES), help="quick: smoke test (≤ 3 min); paper: the 1997 table, CPU-sized (≤ 30 min); "
                      "long: adding and multiplication at T = 500 and 1000 (~45 min)")
    parser.add_argument("--length", default=None, help="the task's lag/length; a comma list runs several (e.g. 50,100,200)")
    parser.add_argument("--models", default="lstm,gru,rnn", help="comma list of lstm, gru, rnn (default: all three)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per model (default 3; a suite sets its own)")
    parser.add_argument("--hidden", type=int, default=32, help="LSTM hidden size; GRU and RNN get matched parameter counts")
    parser.add_argument("--lstm-options", default="", help="lstmlab.LSTM variants, e.g. layer_norm,peephole,forget_bias=1")
    parser.add_argument("--chrono", default="auto", help="chrono init horizon for LSTM and GRU: auto (task's longest sequence), none, or steps")
    parser.add_argument("--input-to-output", action="store_true",
                        help="add a linear input→output shortcut to every model (the 1997 nets had one)")
    parser.add_argument("--batch-size", type=int, default=None, help="sequences per update (default 32)")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 0.01)")
    parser.add_argument("--max-steps", type=int, default=None, help="update cap per run (default 3000)")
    parser.add_argument("--max-seconds", type=float, default=None, help="training-time cap per run in seconds, evaluation excluded (default 120)")
    parser.add_argument("--eval-every", type=int, default=None, help="updates between success checks (default 100)")
    parser.add_argument("--eval-size", type=int, default=None, help="held-out sequences per check (default 2560)")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes); 2 suits a 2-core machine")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (1 is fastest for these small models)")
    parser.add_argument("--out", default=None, help="folder for results.json, success.png and the LSTM run folders "
                        "(checkpoints/<task>-lstm-seed0/)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (log lines only)")


def build_experiments(args: argparse.Namespace) -> list[Experiment]:
    """The experiments the options ask for: a suite, or one task at one or more lengths."""
    overrides = {name: value for name, value in (  # the shared trainer's fields
        ("lr", args.lr), ("max_steps", args.max_steps), ("budget", args.max_seconds),
        ("eval_interval", args.eval_every), ("log_interval", args.eval_every),
    ) if value is not None}
    sizes = {name: value for name, value in (("batch_size", args.batch_size), ("eval_size", args.eval_size))
             if value is not None}
    if args.suite:
        if args.length is not None:
            raise ValueError("--length applies to --task, not to a suite")
        experiments = SUITES[args.suite]()
        return [replace(e, train=replace(e.train, **overrides), seeds=args.seeds or e.seeds, **sizes)
                for e in experiments]
    lengths = [None] if args.length is None else [_positive_int("--length", v) for v in args.length.split(",")]
    train = longlag_train_config(**overrides)
    return [Experiment(make_task(args.task, length), args.hidden, train, args.seeds or 3, **sizes)
            for length in lengths]


def _positive_int(flag: str, text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise ValueError(f"{flag} expects positive integers, got {text!r}")
    return int(text)


def _models(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in MODEL_KINDS]
    if not kinds or unknown:
        raise ValueError(f"--models expects a comma list of {', '.join(MODEL_KINDS)}, got {text!r}")
    return kinds


def parse_chrono(text: str) -> str | int | None:
    """"auto", "none" or a positive number of steps -> "auto", None or the number."""
    if text == "auto":
        return "auto"
    if text == "none":
        return None
    return _positive_int("--chrono", text)


def run(args: argparse.Namespace) -> int:
    kinds = _models(args.models)
    lstm_options = parse_lstm_options(args.lstm_options)  # a ValueError is the user's: one line, exit 2
    experiments = build_experiments(args)
    out = Path(args.out) if args.out else Path("longlag-out")
    command = "lstmlab " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    start = time.perf_counter()
    results, summaries = run_experiments(
        experiments, kinds, lstm_options, chrono=parse_chrono(args.chrono),
        checkpoint_dir=out / "checkpoints" if args.out else None, workers=args.jobs,
        threads=args.threads, show_progress=not args.no_progress, input_to_output=args.input_to_output,
    )
    wall = time.perf_counter() - start
    table = format_table(summaries)
    print("\n" + table)
    print(f"\ntotal wall time {wall:.0f} s ({args.jobs} job(s) in parallel, {args.threads} thread(s) each)")
    settings = {"models": kinds, "lstm_options": lstm_options, "chrono": args.chrono, "jobs": args.jobs,
                "input_to_output": args.input_to_output,
                "threads": args.threads, "experiments": [
                    {"task": e.task.config(), "lstm_hidden": e.lstm_hidden, "seeds": e.seeds, "train": asdict(e.train),
                     "batch_size": e.batch_size, "eval_size": e.eval_size,
                     "initialisation": e.initialisation}
                    for e in experiments]}
    json_path = write_json(out / "results.json", command, settings, results, summaries, wall)
    png_path = plot(summaries, out / "success.png")
    (out / "table.md").write_text(table + "\n")
    print(f"wrote {json_path}, {png_path}, {out / 'table.md'}")
    return 0
