"""`lstmlab odyssey`: Greff et al.'s "LSTM: A Search Space Odyssey", on lstmlab's tasks.

    lstmlab odyssey --suite quick                  # every task and variant at toy size (~30 s)
    lstmlab odyssey --suite full --trials 8 --jobs 2 --out runs/odyssey
    lstmlab odyssey --tasks lm,music --variants V,NFG,NOAF --trials 4 --steps 2000

Resumable: a second call with the same --out runs only the trials not in trials.jsonl.
Writes trials.jsonl, odyssey.md, odyssey.png, learning_rate.png and summary.json to --out.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from lstmlab.models.recurrent import GREFF_VARIANTS

DEFAULT_TRIALS = {"quick": 2, "full": 10}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .tasks import TASKS

    parser.add_argument("--suite", choices=("quick", "full"), default="full",
                        help="trial sizes: quick (toy sizes, ~20 s on 2 cores; a smoke test) or full (the study; default)")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma list of {', '.join(TASKS)} (default: all)")
    parser.add_argument("--variants", default=",".join(GREFF_VARIANTS),
                        help=f"comma list of {', '.join(GREFF_VARIANTS)} (default: all; V is the reference)")
    parser.add_argument("--trials", type=int, default=None,
                        help=f"random-search trials per task and variant (default {DEFAULT_TRIALS})")
    parser.add_argument("--steps", type=int, default=None,
                        help="updates per trial for every task, instead of the suite's (a longer or shorter study)")
    parser.add_argument("--jobs", type=int, default=1, help="trials in parallel (processes, one thread each); 2 suits 2 cores")
    parser.add_argument("--out", default=None, help="output folder (default runs/odyssey-<suite>)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--report-only", action="store_true",
                        help="write the report from the trials in --out without running any (e.g. while a study runs)")


def parse_list(text: str, known: list[str], what: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ValueError(f"--{what}: expected a comma list of {', '.join(known)}, got {text!r}")
    return list(dict.fromkeys(names))


def run(args: argparse.Namespace) -> int:
    from lstmlab.recipes.longlag.results import machine_description

    from . import report
    from .runner import finished_trials, make_jobs, run_jobs, trial_key
    from .search import draw_trials
    from .tasks import TASKS

    tasks = parse_list(args.tasks, list(TASKS), "tasks")
    variants = parse_list(args.variants, list(GREFF_VARIANTS), "variants")
    if "V" not in variants:
        variants = ["V", *variants]  # the reference every test compares against
    trials = DEFAULT_TRIALS[args.suite] if args.trials is None else args.trials
    if trials < 1 or args.jobs < 1 or (args.steps is not None and args.steps < 1):
        raise ValueError(f"--trials, --jobs and --steps: expected at least 1, got {trials}, {args.jobs} and {args.steps}")
    out_dir = Path(args.out or f"runs/odyssey-{args.suite}")
    jobs = []
    for task in tasks:
        jobs += make_jobs(draw_trials(task, trials, TASKS[task].sizes[args.suite].hidden_sizes), variants, args.suite,
                          args.steps)
    print(f"odyssey ({args.suite}{', report only' if args.report_only else ''}): {len(tasks)} task(s) x {len(variants)} variants x {trials} trials = "
          f"{len(jobs)} trials, {args.jobs} at a time; results in {out_dir}/", flush=True)
    started = time.perf_counter()
    if args.report_only:
        done = finished_trials(out_dir)
        records = [done[trial_key(job)] for job in jobs if trial_key(job) in done]
        if not records:
            raise ValueError(f"--report-only: {out_dir / 'trials.jsonl'} holds none of these trials")
        print(f"report of the {len(records)} of {len(jobs)} trials in {out_dir / 'trials.jsonl'}")
    else:
        for task in tasks:  # data caches are built here once, not by every worker at the same time
            if TASKS[task].prepare is not None:
                TASKS[task].prepare(TASKS[task].sizes[args.suite])
        records = run_jobs(jobs, out_dir, args.jobs, print, progress=not args.no_progress)
    command = "lstmlab odyssey " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    machine = machine_description()
    sizes = "; ".join(f"{task}: {args.steps or TASKS[task].sizes[args.suite].steps} updates of "
                      f"{TASKS[task].sizes[args.suite].batch_size}, hidden from "
                      f"{list(TASKS[task].sizes[args.suite].hidden_sizes)}" for task in tasks)
    header = (f"Command: `{command}` ({len(records)} trials, this call {time.perf_counter() - started:.0f} s). "
              f"Machine: {machine['cpu']}, {machine['cpu_count']} cores, torch {machine['torch']}, "
              f"commit {machine['commit']}. Sizes: {sizes}. Best trials: the best "
              f"{report.BEST_FRACTION:.0%} (at least {report.MIN_BEST}) of each variant's; "
              f"Welch's t-test against V at p < {report.ALPHA}.")
    (out_dir / "odyssey.md").write_text(report.markdown(records, variants, TASKS, header))
    report.plot_best_trials(records, variants, TASKS, out_dir / "odyssey.png")
    report.plot_learning_rate(records, variants, TASKS, out_dir / "learning_rate.png")
    summary = {"command": command, "machine": machine, "suite": args.suite, "trials": trials,
               "table": report.summarise(records, variants, {name: TASKS[name].chance for name in tasks})}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out_dir}/odyssey.md, odyssey.png, learning_rate.png, summary.json")
    return 0
