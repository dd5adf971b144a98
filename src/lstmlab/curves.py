"""The learning curve of a run folder: training and validation against data seen, as a PNG.

Each validation point is labelled with what it evaluates on (the size recorded in the
metrics log as ``validation_tokens``), since an evaluation during training often covers
only part of the held-out data while a final score covers all of it.
"""

from __future__ import annotations

from pathlib import Path

from lstmlab.metrics import read_log

METRIC_LABELS = {"bits_per_char": "bits per character", "loss": "loss", "perplexity": "perplexity"}


def curve_metric(records: list[dict]) -> str:
    """bits/char where the log has it (character models), else the loss."""
    return "bits_per_char" if any("bits_per_char" in record for record in records) else "loss"


def plot_learning_curve(metrics_path: str | Path, png_path: str | Path, title: str,
                        x_label: str = "tokens seen") -> Path | None:
    """Write the curve of `metrics_path` (JSONL or CSV) to `png_path`; None when the log is empty."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    records = read_log(metrics_path)
    if not records:
        return None
    metric = curve_metric(records)
    figure = Figure(figsize=(7, 4))
    axes = figure.subplots()
    for split, style in (("train", "-"), ("validation", "o-")):
        rows = [r for r in records if r["split"] == split and metric in r]
        if not rows:
            continue
        label = split
        sizes = {str(r.get("validation_tokens")) for r in rows if "validation_tokens" in r}
        if split == "validation" and len(sizes) == 1:
            label = f"validation (each on {int(float(sizes.pop())):,} held-out {x_label.split()[0]})"
        axes.plot([float(r["tokens"]) for r in rows], [float(r[metric]) for r in rows], style, label=label)
    axes.set_xlabel(x_label)
    axes.set_ylabel(METRIC_LABELS.get(metric, metric))
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    png_path = Path(png_path)
    figure.savefig(png_path, dpi=120)
    return png_path
