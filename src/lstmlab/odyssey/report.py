"""The study's report: per task and variant, the best trials, Welch's t-test against
vanilla, Greff et al.'s conclusions beside ours, and the figures.

- ``odyssey.png``: like Greff's Figure 3, per task each variant's test metric over its
  best trials (the best 10 %, at least `MIN_BEST`: Greff kept 20 of 200 trials, a CPU
  affords ten, and three of them give a t-test no power; every trial where there are fewer);
- ``learning_rate.png``: the test metric against the learning rate, per variant;
- the markdown table (``odyssey.md``): mean ± standard deviation over the best trials,
  the p-value of Welch's t-test against V, and the verdict at p < 0.05.

A trial that does worse than the task's trivial guess (`OdysseyTask.chance`: a uniform
guess over the characters, the target's mean, a coin flip per key), or diverges to NaN,
counts as that guess: a cell without an output activation can reach a thousand bits per
character, and one such trial would otherwise decide a mean and a standard deviation.
"""

from __future__ import annotations

import math
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

BEST_FRACTION, MIN_BEST = 0.10, 5
ALPHA = 0.05

# Greff et al. (2017), section 5 and Fig. 3: what removing or changing each part did on
# TIMIT (speech), IAM Online (handwriting) and JSB Chorales (music).
GREFF_FINDINGS = {
    "NIG": "worse on speech and handwriting; no significant change on music",
    "NFG": "significantly worse on every task",
    "NOG": "worse on speech and handwriting; no significant change on music",
    "NIAF": "worse on speech and handwriting; no significant change on music",
    "NOAF": "significantly worse on every task",
    "NP": "no significant change",
    "CIFG": "no significant change",
    "FGR": "no significant change on speech and handwriting; worse on music",
}


def metric_values(records: list[dict[str, Any]], chance: float = math.inf) -> list[float]:
    """Test metrics, each at most `chance` (a diverged trial, NaN or inf, counts as chance)."""
    return [min(value, chance) if math.isfinite(value) else chance for value in (float(r["test"]) for r in records)]


def best_trials(values: list[float]) -> list[float]:
    count = len(values)
    keep = count if count <= MIN_BEST else max(MIN_BEST, math.ceil(BEST_FRACTION * count))
    return sorted(values)[:keep]


def grouped(records: list[dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """{task: {variant: its records}}, in the order the records come."""
    groups: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        groups[record["task"]][record["variant"]].append(record)
    return groups


@contextmanager
def task_panels(records: list[dict[str, Any]], tasks: dict, path: Path, title: str):
    """A figure with one panel per task that has records: yields [(task, axis)], then
    titles, lays out and saves the figure to `path` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [t for t in tasks if any(r["task"] == t for r in records)]
    figure, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
    try:
        yield list(zip(names, axes[0]))
        figure.suptitle(title, fontsize=10)
        figure.tight_layout()
        figure.savefig(path, dpi=110)
    finally:
        plt.close(figure)


def welch_p(ours: list[float], vanilla: list[float]) -> float | None:
    """Two-sided p of Welch's t-test (None where it is undefined: fewer than 2 finite values)."""
    from scipy import stats

    a, b = [v for v in ours if math.isfinite(v)], [v for v in vanilla if math.isfinite(v)]
    if len(a) < 2 or len(b) < 2 or (np.std(a) == 0 and np.std(b) == 0):
        return None
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def summarise(records: list[dict[str, Any]], variants: list[str],
              chance: dict[str, float] | None = None) -> dict[str, list[dict[str, Any]]]:
    """{task: [row per variant]} with n, best-trial mean/std, p against V and the verdict;
    chance: {task: the trivial guess's metric}, the most a trial counts as (default: none)."""
    chance = chance or {}
    table: dict[str, list[dict[str, Any]]] = {}
    for task, per_variant in grouped(records).items():
        floor = chance.get(task, math.inf)
        vanilla = best_trials(metric_values(per_variant.get("V", []), floor))
        rows = []
        for variant in (v for v in variants if v in per_variant):
            values = metric_values(per_variant[variant], floor)
            best = best_trials(values)
            finite = [v for v in best if math.isfinite(v)]
            p = None if variant == "V" else welch_p(best, vanilla)
            mean = float(np.mean(finite)) if finite else math.nan
            vanilla_mean = float(np.mean([v for v in vanilla if math.isfinite(v)])) if vanilla else math.nan
            if variant == "V":
                verdict = "reference"
            elif p is None:
                verdict = "too few trials"
            elif p < ALPHA:
                verdict = "significantly worse" if mean > vanilla_mean else "significantly better"
            else:
                verdict = "no significant change"
            rows.append({"variant": variant, "trials": len(values), "best": len(best), "mean": mean,
                         "std": float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan,
                         "median_all": float(np.median(values)),
                         "at_chance": sum(not (float(r["test"]) < floor) for r in per_variant[variant]),
                         "p": p, "verdict": verdict})
        table[task] = rows
    return table


def variance_explained(records: list[dict[str, Any]], chance: float = math.inf) -> dict[str, float]:
    """Share of the variance of the test metric (trials better than chance) that each hyper-parameter explains
    alone: R² of a least-squares fit on it (quadratic in log10 lr and in dropout, one-hot
    hidden size) plus the variant (one-hot) -- a simple stand-in for Greff's fANOVA."""
    rows = [r for r in records if math.isfinite(float(r["test"])) and float(r["test"]) < chance]
    if len(rows) < 6:
        return {}
    y = np.array([float(r["test"]) for r in rows])
    variant = one_hot([r["variant"] for r in rows])
    features = {
        "learning rate": np.column_stack([np.log10([r["hp_lr"] for r in rows]) ** k for k in (1, 2)]),
        "hidden size": one_hot([r["hp_hidden_size"] for r in rows]),
        "dropout": np.column_stack([np.array([r["hp_dropout"] for r in rows]) ** k for k in (1, 2)]),
    }
    base = r_squared(variant, y)
    return {name: max(0.0, r_squared(np.column_stack([variant, x]), y) - base) for name, x in features.items()}


def one_hot(values: list) -> np.ndarray:
    levels = sorted(set(values), key=str)
    return np.array([[float(v == level) for level in levels] for v in values])


def r_squared(x: np.ndarray, y: np.ndarray) -> float:
    design = np.column_stack([np.ones(len(y)), x])
    fitted = design @ np.linalg.lstsq(design, y, rcond=None)[0]
    total = float(((y - y.mean()) ** 2).sum())
    return 0.0 if total == 0 else 1.0 - float(((y - fitted) ** 2).sum()) / total


def plot_best_trials(records: list[dict[str, Any]], variants: list[str], tasks: dict, path: Path) -> Path:
    """Greff's Figure 3: per task, each variant's best trials (points) and their mean (bar)."""
    groups = grouped(records)
    title = "lstmlab odyssey: each variant's best trials (lower is better; V in red)"
    with task_panels(records, tasks, path, title) as panels:
        for task, axis in panels:
            for x, variant in enumerate(variants):
                values = metric_values(groups[task].get(variant, []), tasks[task].chance)
                best = [v for v in best_trials(values) if math.isfinite(v)]
                if not best:
                    continue
                axis.scatter([x] * len(best), best, s=14, color="tab:red" if variant == "V" else "tab:blue", alpha=0.7)
                axis.hlines(np.mean(best), x - 0.3, x + 0.3, color="black", linewidth=1.2)
            axis.set_xticks(range(len(variants)), variants, rotation=45)
            axis.set_title(f"{task}: {tasks[task].metric}", fontsize=10)
            axis.grid(axis="y", alpha=0.3)
    return path


def plot_learning_rate(records: list[dict[str, Any]], variants: list[str], tasks: dict, path: Path) -> Path:
    """Test metric against the learning rate, per task and variant (log x axis)."""
    import matplotlib

    groups = grouped(records)
    colours = matplotlib.colormaps["tab10"]
    with task_panels(records, tasks, path, "learning-rate sensitivity per variant (each point one trial)") as panels:
        for task, axis in panels:
            chance = tasks[task].chance
            for index, variant in enumerate(variants):
                rows = sorted(groups[task].get(variant, []), key=lambda r: r["hp_lr"])
                if rows:
                    axis.plot([r["hp_lr"] for r in rows], metric_values(rows, chance), marker="o", markersize=3,
                              linewidth=0.8, color=colours(index % 10), label=variant)
            below = [float(r["test"]) for rows in groups[task].values() for r in rows if float(r["test"]) < chance]
            if below and chance > 1.5 * max(below):  # far above every trial: say so rather than squash the plot
                axis.set_ylim(top=1.15 * max(below))
                axis.set_title(f"{task}: {tasks[task].metric} (chance {chance:.3g}, off the scale)", fontsize=10)
            else:
                axis.axhline(chance, color="grey", linestyle=":", linewidth=0.8)
                axis.set_title(f"{task}: {tasks[task].metric} (dotted: chance)", fontsize=10)
            axis.set_xscale("log")
            axis.set_xlabel("learning rate")
            axis.grid(alpha=0.3)
        panels[-1][1].legend(fontsize=7, ncol=2)
    return path


def format_p(p: float | None) -> str:
    return "—" if p is None else f"{p:.2g}"


def markdown(records: list[dict[str, Any]], variants: list[str], tasks: dict, header: str) -> str:
    """The results page: the table per task, Greff's conclusions beside ours, the LR share."""
    table = summarise(records, variants, {name: task.chance for name, task in tasks.items()})
    lines = [header, ""]
    for task, rows in table.items():
        entry = tasks[task]
        lines += [f"### {task}: {entry.summary} — {entry.metric} ({entry.unit}), lower is better", "",
                  f"A trial worse than chance ({entry.chance:.4g} {entry.unit}) counts as chance.", "",
                  "| variant | trials | best | mean ± sd of best | median of all | at chance | p vs V (Welch) | verdict |",
                  "|---|---:|---:|---:|---:|---:|---:|---|"]
        for row in rows:
            lines.append(f"| {row['variant']} | {row['trials']} | {row['best']} | {row['mean']:.4f} ± "
                         f"{row['std']:.4f} | {row['median_all']:.4f} | {row['at_chance']} | {format_p(row['p'])} | "
                         f"{row['verdict']} |")
        shares = variance_explained([r for r in records if r["task"] == task], entry.chance)
        if shares:
            lines += ["", "Variance of the test metric explained by each hyper-parameter beyond the variant: "
                      + ", ".join(f"{name} {share:.0%}" for name, share in sorted(shares.items(), key=lambda x: -x[1]))
                      + "."]
        lines.append("")
    lines += ["### Greff et al.'s conclusions and ours", "",
              "| variant | Greff et al. 2017 (TIMIT, IAM Online, JSB) | " + " | ".join(f"ours: {t}" for t in table) + " |",
              "|---|---|" + "---|" * len(table)]
    verdicts = {task: {row["variant"]: row for row in rows} for task, rows in table.items()}
    for variant in (v for v in variants if v != "V"):
        cells = []
        for task in table:
            row = verdicts[task].get(variant)
            cells.append("—" if row is None else f"{row['verdict']} (p {format_p(row['p'])})")
        lines.append(f"| {variant} | {GREFF_FINDINGS.get(variant, '')} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
