"""Run experiments as independent jobs — one per (task, model, seed) — serially or in parallel.

A job is plain data (task config, model config, seed, train config), so it can be sent
to a worker process. The models here are small, so one torch thread per job is fastest:
with 2 cores, `jobs=2` runs two jobs side by side instead of splitting each one.
"""

from __future__ import annotations

import multiprocessing
import threading
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from lstmlab.models.longlag import LongLagModel, ModelConfig, count_parameters
from lstmlab.train import TrainConfig

from .contenders import model_configs
from .experiment import Experiment, RunResult, Summary, run_info, summarise, train_one
from .task_registry import task_from_config



def make_jobs(experiments: list[Experiment], kinds: list[str], lstm_options: dict, chrono: str | int | None,
              checkpoint_dir: str | Path | None, threads: int, input_to_output: bool = False) -> list[dict]:
    """Every (experiment, model, seed) as a plain-data job.

    `chrono` is "auto" (chrono initialisation with the task's horizon for LSTM and GRU),
    None (torch's initialisation) or a fixed horizon in steps.
    """
    jobs = []
    for index, experiment in enumerate(experiments):
        task = experiment.task
        override = experiment.initialisation or {}
        task_chrono = override.get("chrono", chrono)
        task_options = {**lstm_options, **override.get("lstm_options", {})}
        horizon = task.horizon() if task_chrono == "auto" else task_chrono
        for config in model_configs(task, kinds, experiment.lstm_hidden, task_options, horizon, input_to_output):
            for seed in range(experiment.seeds):
                save = checkpoint_dir is not None and config.kind == "lstm" and seed == 0
                jobs.append({
                    "experiment": index, "task_config": task.config(), "model_config": asdict(config),
                    "seed": seed, "train": asdict(experiment.train), "batch_size": experiment.batch_size,
                    "eval_size": experiment.eval_size, "threads": threads,
                    "checkpoint": str(Path(checkpoint_dir) / f"{task.label}-lstm-seed0") if save else None,
                })
    return jobs


def run_job(job: dict, show_steps: bool = False) -> dict:
    """Train one job; with job["checkpoint"], its run folder goes there. Returns the RunResult as a dict."""
    torch.set_num_threads(job["threads"])
    task = task_from_config(job["task_config"])
    config = ModelConfig(**job["model_config"])
    train = replace(TrainConfig(**job["train"]), progress=show_steps)
    run = run_info(task, config, {k: v for k, v in job.items() if k not in ("checkpoint", "experiment")})
    result, _ = train_one(task, config, job["seed"], train, batch_size=job["batch_size"], eval_size=job["eval_size"],
                          out_dir=job["checkpoint"], run=run,
                          description=f"{task.label} {config.kind} seed {job['seed']}")
    return asdict(result)


def describe_models(experiments: list[Experiment], jobs: list[dict], log: Callable[[str], None]) -> None:
    """Print each task's criterion and its models' hidden sizes and parameter counts."""
    for index, experiment in enumerate(experiments):
        log(f"{experiment.task.label}: {experiment.task.criterion}")
        seen = set()
        for job in (j for j in jobs if j["experiment"] == index and j["seed"] == 0):
            config = ModelConfig(**job["model_config"])
            if config.kind not in seen:
                seen.add(config.kind)
                log(f"  {config.kind:<4} hidden {config.hidden_size:>4}  parameters "
                    f"{count_parameters(LongLagModel(config)):>7,}  chrono_init {config.chrono_init}")


def result_line(result: dict) -> str:
    verdict = "success" if result["success"] else "no success"
    return (f"{result['task']:<26} {result['model']:<4} seed {result['seed']}: {verdict:<10} after "
            f"{result['sequences_seen']:>7,} sequences, loss {result['final_loss']:.4g}, wrong "
            f"{result['final_wrong_fraction']:.2%}, {result['wall_seconds']:.0f} s ({result['stopped_by']})")


def run_jobs(jobs: list[dict], workers: int, show_progress: bool = True) -> list[dict]:
    """Run all jobs; with workers > 1 in a pool of spawned processes. Order is kept."""
    results: list[dict | None] = [None] * len(jobs)
    # tqdm's default lock is a multiprocessing lock, which the spawn pool's resource tracker
    # then reports as leaked at exit; bars are only drawn in this process, a thread lock will do
    tqdm.set_lock(threading.RLock())
    with tqdm(total=len(jobs), desc="runs", disable=not show_progress, dynamic_ncols=True) as bar:
        if workers <= 1:
            for index, job in enumerate(jobs):
                results[index] = run_job(job, show_steps=show_progress)
                bar.write(result_line(results[index]))
                bar.update(1)
        else:
            context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch state
            with context.Pool(workers) as pool:
                for index, result in pool.imap_unordered(_indexed_job, list(enumerate(jobs))):
                    results[index] = result
                    bar.write(result_line(result))
                    bar.update(1)
    return results  # type: ignore[return-value]


def _indexed_job(item: tuple[int, dict]) -> tuple[int, dict]:
    index, job = item
    tqdm.set_lock(threading.RLock())  # in the worker too: no multiprocessing lock left behind at exit
    return index, run_job(job)


def run_experiments(experiments: list[Experiment], kinds: list[str], lstm_options: dict,
                    chrono: str | int | None = "auto", checkpoint_dir: str | Path | None = None,
                    workers: int = 1, threads: int = 1, show_progress: bool = True, input_to_output: bool = False,
                    log: Callable[[str], None] = print) -> tuple[list[dict], list[Summary]]:
    """Train every model kind on every experiment for every seed; return results and summaries."""
    jobs = make_jobs(experiments, kinds, lstm_options, chrono, checkpoint_dir, threads, input_to_output)
    describe_models(experiments, jobs, log)
    # longest first, so a parallel pool does not end waiting on one slow run
    order = sorted(range(len(jobs)), key=lambda i: -_expected_cost(jobs[i]))
    ordered_results = run_jobs([jobs[i] for i in order], workers, show_progress)
    results: list[dict] = [{}] * len(jobs)
    for position, index in enumerate(order):
        results[index] = ordered_results[position]
    summaries = []
    for index, experiment in enumerate(experiments):
        runs = [RunResult(**r) for r, job in zip(results, jobs) if job["experiment"] == index]
        summaries.extend(summarise(runs, experiment.task))
    return results, summaries


def _expected_cost(job: dict) -> float:
    """A rough cost guess for ordering: the GRU is slowest on CPU, long tasks cost more."""
    per_kind = {"gru": 3.0, "lstm": 1.0, "rnn": 1.0}[job["model_config"]["kind"]]
    return per_kind * job["train"]["max_steps"] * task_from_config(job["task_config"]).lag
