"""Reports for the project's trained models: language-model runs and long-lag checkpoints.

`write_lm_report(run, text, out_dir)` loads a language model with
`lstmlab.models.lm.load_language_model`, runs it on `text` and writes the report.
`write_longlag_report(checkpoint, out_dir)` loads a long-lag checkpoint with
`lstmlab.experiments.longlag_models.load_longlag_checkpoint`, runs it on fresh task
sequences and adds a plot of the cells that carry the answer across the time lag.
`write_run_report` picks one of the two from what the checkpoint says it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lstmlab.checkpoint import CheckpointError, load_checkpoint
from lstmlab.inspect import captions
from lstmlab.inspect.collect import collect_text_trace, collect_trace
from lstmlab.inspect.longlag_cells import answer_of_each_sequence, carrying_units, plot_carrying_cells
from lstmlab.inspect.report import ReportSection, write_report

# Used when no text is given: lines with quotes, brackets and line breaks, so that the
# built-in features (quotes, brackets, position in line) all vary.
DEFAULT_TEXT = (
    "HAMLET:\n"
    "To be, or not to be: that is the question.\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "the slings and arrows (of outrageous fortune),\n"
    "or to take arms against a sea of troubles.\n\n"
    "OPHELIA:\n"
    "Good my lord, \"how does your honour for this many a day?\"\n"
    "HAMLET:\n"
    "I humbly thank you; \"well, well, well\" (he said).\n"
    "KING:\n"
    "Now, Hamlet, where is Polonius? [He is at supper.]\n"
    "HAMLET:\n"
    "At supper! \"Not where he eats, but where he is eaten.\"\n"
)


def _parameter_count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def _engine_line(lstm: Any) -> str:
    from lstmlab import engines

    return engines.describe(lstm)


def write_lm_report(run_path: str | Path, text: str | None, out_dir: str | Path, *, max_steps: int = 600) -> Path:
    """Run the language model of `run_path` (run folder or checkpoint) on `text`; return report.html's path."""
    from lstmlab.models.lm import find_checkpoint, load_language_model

    model, tokenizer = load_language_model(run_path)
    if model.lstm is None:
        raise ValueError(f"{run_path}: this language model uses cell={model.config.cell!r}; "
                         "only LSTM models have gates to inspect")
    text = DEFAULT_TEXT if text is None else text
    if not text:
        raise ValueError("the text to inspect is empty")
    pieces = tokenizer.pieces(text)
    token_ids = tokenizer.encode(text)
    if len(pieces) != len(token_ids) or "".join(pieces) != text:
        raise ValueError("the tokenizer's pieces do not match its tokens; cannot align the text with the trace")
    recording = collect_text_trace(model, token_ids, pieces)
    summary = {
        "checkpoint": str(find_checkpoint(run_path)),
        "model": f"language model: embedding {model.config.embedding_size} → LSTM "
                 f"{model.config.num_layers} × {model.hidden_size} → softmax over {tokenizer.vocab_size} tokens",
        "parameters": f"{_parameter_count(model):,}",
        "tokenizer": f"{type(tokenizer).__name__}, {tokenizer.vocab_size} tokens",
        "LSTM": repr(model.lstm),
        "engine": _engine_line(model.lstm),
        "inspected text": f"{len(text)} characters, {len(pieces)} tokens",
    }
    return write_report(recording, out_dir, title="Inside a language model's LSTM", summary=summary, max_steps=max_steps)


def _step_pieces(inputs: torch.Tensor, length: int) -> list[str]:
    """A one-character label per step of one (T, I) input: the hot symbol, else a square."""
    labels = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    pieces = []
    for row in inputs[:length]:
        one_hot = bool(((row == 0) | (row == 1)).all()) and float(row.sum()) == 1.0
        index = int(row.argmax())
        pieces.append(labels[index] if one_hot and index < len(labels) else "\u25aa")
    return pieces


def write_longlag_report(checkpoint: str | Path, out_dir: str | Path, *, sequences: int = 64, seed: int = 0) -> Path:
    """Run a long-lag checkpoint on `sequences` fresh task sequences; return report.html's path."""
    from lstmlab.experiments.longlag_models import load_longlag_checkpoint

    model, task = load_longlag_checkpoint(checkpoint)
    if model.config.kind != "lstm":
        raise ValueError(f"{checkpoint}: this long-lag model is a {model.config.kind}; only LSTMs have gates to inspect")
    batch = task.sample(sequences, torch.Generator().manual_seed(seed))
    recording = collect_trace(model.lstm, batch.inputs)
    steps = recording.num_steps
    recording.mask = torch.arange(steps)[:, None] < batch.lengths[None, :]  # (T, B): padding after each end
    recording.pieces = _step_pieces(batch.inputs[:, 0], steps)
    out_dir = Path(out_dir)
    answer = answer_of_each_sequence(task, batch)
    units = None
    if answer.values.unique().numel() > 1:
        units = carrying_units(recording, answer)
        plot = plot_carrying_cells(recording, answer, units, out_dir / "longlag_cells.png")
        section = ReportSection("The cells that carry the answer across the lag", captions.LONGLAG, plot)
    else:
        section = ReportSection("The cells that carry the answer across the lag",
                                "<p>All sampled sequences ask for the same answer, so no cell can be shown "
                                "to carry it.</p>")
    summary = {
        "checkpoint": str(checkpoint),
        "task": f"{task.label} ({task.kind}); success: {task.criterion}",
        "model": f"LSTM {model.config.input_size} → {model.config.hidden_size} units → read-out {model.config.output_size}",
        "LSTM options": str(model.config.lstm_options or "none"),
        "parameters": f"{_parameter_count(model):,}",
        "engine": _engine_line(model.lstm),
        "inspected": f"{sequences} fresh sequences (seed {seed}), up to {steps} steps; the coloured text shows sequence 0, "
                     "one character per step (the letter of a one-hot input symbol, else a square)",
    }
    return write_report(recording, out_dir, title=f"Inside an LSTM solving {task.label}", summary=summary,
                        extra_sections=[section], text_features=False, highlight=units[0] if units else None)


def checkpoint_kind(path: str | Path) -> str:
    """"lm" or "longlag": what the run folder or checkpoint file at `path` holds."""
    path = Path(path)
    if path.is_dir():
        return "lm"
    payload = load_checkpoint(path)
    if payload.get("kind") == "longlag":
        return "longlag"
    if (payload.get("metadata") or {}).get("task") == "lm":
        return "lm"
    raise CheckpointError(f"{path} is neither a language-model run nor a long-lag checkpoint "
                          f"(kind {payload.get('kind')!r}, metadata task {(payload.get('metadata') or {}).get('task')!r})")


def write_run_report(run_path: str | Path, text: str | None, out_dir: str | Path) -> Path:
    """Report for whatever `run_path` holds (language model or long-lag checkpoint)."""
    if checkpoint_kind(run_path) == "longlag":
        if text is not None:
            raise ValueError("--text/--file apply to language models; a long-lag checkpoint runs on its task's sequences")
        return write_longlag_report(run_path, out_dir)
    return write_lm_report(run_path, text, out_dir)
