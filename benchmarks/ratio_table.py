"""The results table every "recipe vs plain torch.nn.LSTM loop" benchmark writes.

Medians (and range) of each runner's rate over the interleaved rounds, the median of the
per-round ratios, and the machine: processor (`lscpu`), threads, torch, commit, load.
"""

from __future__ import annotations

import statistics
import subprocess
from pathlib import Path

import torch


def processor_name() -> str:
    """The processor's model name as `lscpu` gives it (AMD EPYC or Intel Xeon here)."""
    lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name")), "unknown")


def interleaved_rates(runners: dict, rounds: int, steps: int, warmup: int,
                      unit: str) -> tuple[dict[str, list[float]], list[float]]:
    """Warm each runner up (`runner.run(warmup)`), then time `rounds` interleaved rounds of
    `steps` steps; each `run(steps)` returns the work done (tokens, audio seconds). Returns
    per-runner rates and the per-round ratios recipe / baseline."""
    import time

    for runner in runners.values():
        runner.run(warmup)
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for index in range(rounds):
        for name, runner in runners.items():
            started = time.perf_counter()
            work = runner.run(steps)
            rates[name].append(work / (time.perf_counter() - started))
        print(f"round {index + 1}: " + ", ".join(f"{n} {r[-1]:,.1f} {unit}" for n, r in rates.items()), flush=True)
    return rates, [r / b for r, b in zip(rates["recipe"], rates["baseline"])]


def write_ratio_table(path: Path, title: str, model: str, command: str, unit: str,
                      rates: dict[str, list[float]], ratios: list[float]) -> str:
    """Write the markdown table of `rates` (runner -> per-round rates) and `ratios` to `path`."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    per_row_ratios = len(rates) > 2  # beyond baseline and recipe, each runner's own ratio column
    lines = [f"# {title}", "", model, f"Command: `{command}`", "",
             f"Machine: {processor_name()}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}, "
             f"commit {commit}, load average at the end {' '.join(load)}.", "",
             f"| runner | median {unit} | min | max |{' median ratio to baseline |' if per_row_ratios else ''}",
             f"|---|---:|---:|---:|{'---:|' if per_row_ratios else ''}"]
    for name, values in rates.items():
        row = f"| {name} | {statistics.median(values):,.0f} | {min(values):,.0f} | {max(values):,.0f} |"
        if per_row_ratios:
            row += f" {statistics.median(r / b for r, b in zip(values, rates['baseline'])):.3f}x |"
        lines.append(row)
    lines += ["", f"Recipe / baseline, median of per-round ratios: **{statistics.median(ratios):.3f}x** "
              f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)}).", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines)
    path.write_text(text)
    return text
