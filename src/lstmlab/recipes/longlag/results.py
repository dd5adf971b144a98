"""Results of the long-lag experiments: the printed table, the JSON file and the PNG plot."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import asdict
from pathlib import Path

import torch

from .experiment import Summary

TABLE_HEADER = ("| task | model | hidden | params | success | median final loss (baseline) "
                "| median wrong | median seqs to success | median wall s |")


def format_table(summaries: list[Summary]) -> str:
    """A Markdown table: one row per (task, model)."""
    lines = [TABLE_HEADER, "|" + "---|" * 9]
    for s in summaries:
        baseline = f" ({s.baseline_loss:.3g})" if s.baseline_loss is not None else ""
        to_success = f"{s.median_sequences_to_success:,.0f}" if s.median_sequences_to_success is not None else "—"
        lines.append(
            f"| {s.task} | {s.model} | {s.hidden_size} | {s.parameters:,} | {s.successes}/{s.seeds} "
            f"| {s.median_final_loss:.3g}{baseline} | {s.median_final_wrong_fraction:.1%} | {to_success} "
            f"| {s.median_wall_seconds:.0f} |"
        )
    return "\n".join(lines)


def machine_description() -> dict:
    """Where and with what the numbers were measured."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu, "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "python": platform.python_version(), "commit": _git_commit(),
        "load_average_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def write_json(path: Path, command: str, settings: dict, results: list[dict], summaries: list[Summary],
               wall_seconds: float) -> Path:
    payload = {
        "command": command, "settings": settings, "machine": machine_description(),
        "wall_seconds": wall_seconds, "summaries": [asdict(s) for s in summaries], "runs": results,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1))
    return path


def plot(summaries: list[Summary], path: Path) -> Path:
    """Success rate vs lag, one line per model, one panel per task family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(dict.fromkeys(_family(s.task) for s in summaries))
    columns = min(3, len(families))
    rows = (len(families) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for axis, family in zip(axes.flat, families):
        chosen = [s for s in summaries if _family(s.task) == family]
        if len({s.lag for s in chosen}) == 1:
            _bars(axis, chosen)
        else:
            for model in dict.fromkeys(s.model for s in chosen):
                points = sorted((s.lag, s.successes / s.seeds) for s in chosen if s.model == model)
                axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=model)
            axis.set_xlabel("lag / minimal length")
            axis.legend(fontsize=8)
        axis.set_title(family, fontsize=10)
        axis.set_ylabel("success rate")
        axis.set_ylim(-0.05, 1.15)  # room for the bars' labels
    for axis in list(axes.flat)[len(families):]:
        axis.axis("off")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _bars(axis, chosen: list[Summary]) -> None:
    """One lag only: a bar per model, labelled with successes/seeds (a line would be a dot)."""
    names = [s.model for s in chosen]
    rates = [s.successes / s.seeds for s in chosen]
    colours = [f"C{i}" for i in range(len(chosen))]
    axis.bar(names, rates, color=colours)
    for index, s in enumerate(chosen):
        axis.text(index, max(rates[index], 0) + 0.03, f"{s.successes}/{s.seeds}", ha="center", fontsize=8)
    axis.set_xlabel(f"lag / minimal length {chosen[0].lag}")


def _family(label: str) -> str:
    """"adding-T100" → "adding"; "temporal-order-6a" stays (6a and 6b are different tasks)."""
    for suffix_start in ("-T", "-p", "-q"):
        if suffix_start in label and label.rsplit(suffix_start, 1)[1][:1].isdigit():
            return label.rsplit(suffix_start, 1)[0]
    return label
