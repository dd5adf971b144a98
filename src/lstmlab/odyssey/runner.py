"""Running the study: every (task, variant, trial), in parallel processes, resumable.

Each finished trial is appended as one JSON line to ``trials.jsonl`` in the output
folder (flushed and fsynced), keyed by (task, variant, trial index, suite, updates); a second run
with the same folder reads them back and runs only what is missing. A trial that fails
(a NaN loss is not a failure, it is recorded as such) stops the study with its error.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from lstmlab.checkpoint import write_text_atomically

from .search import Trial

RESULTS_FILE = "trials.jsonl"


def trial_key(record: dict[str, Any]) -> tuple:
    from .tasks import planned_steps

    steps = planned_steps(record["task"], record["suite"], record.get("planned_steps"))
    return record["task"], record["variant"], record["trial"], record["suite"], steps


def read_results(out_dir: Path) -> list[dict[str, Any]]:
    """The finished trials in out_dir (a torn last line, from a killed run, is ignored)."""
    path = out_dir / RESULTS_FILE
    if not path.is_file():
        return []
    records, lines = [], path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number != len(lines):
                raise ValueError(f"{path}, line {number}: not a trial record (damaged file?)") from None
    return records


def finished_trials(out_dir: Path) -> dict[tuple, dict[str, Any]]:
    """The finished trials in out_dir by `trial_key`."""
    return {trial_key(record): record for record in read_results(out_dir)}


def drop_torn_line(out_dir: Path) -> None:
    """Rewrite trials.jsonl without a torn last line (atomically), so appends start clean."""
    path = out_dir / RESULTS_FILE
    if not path.is_file():
        return
    text = path.read_text()
    if not text or text.endswith("\n"):
        return
    kept = text.rsplit("\n", 1)[0] + "\n" if "\n" in text else ""
    write_text_atomically(path, kept)


def append_result(out_dir: Path, record: dict[str, Any]) -> None:
    with open(out_dir / RESULTS_FILE, "a") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def job_record(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job (in a worker process): the trial's record with its key."""
    from .tasks import run_trial

    outcome = run_trial(job["task"], job["variant"], job["hyper"], job["seed"], job["suite"], job["planned_steps"])
    return {"task": job["task"], "variant": job["variant"], "trial": job["trial"], "suite": job["suite"],
            "planned_steps": job["planned_steps"], "seed": job["seed"],
            **{f"hp_{name}": value for name, value in job["hyper"].items()}, **outcome}


def _worker(job: dict[str, Any]) -> dict[str, Any]:
    tqdm.set_lock(threading.RLock())  # no multiprocessing lock left behind at exit
    import torch

    torch.set_num_threads(1)
    return job_record(job)


def make_jobs(trials: list[Trial], variants: list[str], suite: str, steps: int | None = None) -> list[dict[str, Any]]:
    """Trial-major order: every variant of trial 0 first, so a stopped study is balanced.
    steps: updates per trial instead of the suite's."""
    from .tasks import planned_steps

    return [{"task": trial.task, "variant": variant, "trial": trial.index, "seed": trial.seed, "hyper": trial.hyper,
             "suite": suite, "planned_steps": planned_steps(trial.task, suite, steps)}
            for trial in trials for variant in variants]


def run_jobs(jobs: list[dict[str, Any]], out_dir: Path, workers: int, log: Callable[[str], None],
             progress: bool = True) -> list[dict[str, Any]]:
    """Run the jobs not in out_dir yet; returns every record of these jobs (old and new)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    drop_torn_line(out_dir)
    done = finished_trials(out_dir)
    todo = [job for job in jobs if trial_key(job) not in done]
    if len(todo) < len(jobs):
        log(f"{len(jobs) - len(todo)} of {len(jobs)} trials are in {out_dir / RESULTS_FILE} already; "
            f"running the other {len(todo)}")
    tqdm.set_lock(threading.RLock())
    with tqdm(total=len(todo), desc="trials", disable=not progress, dynamic_ncols=True) as bar:
        def finished(record: dict[str, Any]) -> None:
            append_result(out_dir, record)
            done[trial_key(record)] = record
            bar.write(f"{record['task']:>7} {record['variant']:<5} trial {record['trial']:>2}: "
                      f"test {record['test']:.4f} (lr {record['hp_lr']:.1e}, hidden {record['hp_hidden_size']}, "
                      f"{record['wall_seconds']:.0f} s)")
            bar.update(1)

        if workers <= 1:
            for job in todo:
                finished(_worker(job))
        elif todo:
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for record in pool.imap_unordered(_worker, todo):
                    finished(record)
    return [done[trial_key(job)] for job in jobs]
