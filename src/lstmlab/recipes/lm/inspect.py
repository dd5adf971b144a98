"""The language-model recipe's report: run the model on a text, show every gate and cell.

`write_lm_report(run, text, out_dir)` takes a loaded run (`lstmlab.load`) or a run
folder / checkpoint path, runs the model on `text` and writes the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lstmlab.inspect.collect import collect_text_trace
from lstmlab.inspect.report import write_report
from lstmlab.models import count_parameters

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


def write_lm_report(run: Any, text: str | None, out_dir: str | Path, *, max_steps: int = 600) -> Path:
    """Run the language model of `run` (a loaded run, a run folder or a checkpoint) on `text`;
    return report.html's path."""
    import lstmlab
    from lstmlab import engines

    if isinstance(run, (str, Path)):
        run = lstmlab.load(run)
    model, tokenizer = run.model, run.tokenizer
    if model.lstm is None:
        raise ValueError(f"{run.checkpoint}: this language model uses cell={model.config.cell!r}; "
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
        "checkpoint": str(run.checkpoint),
        "model": f"language model: embedding {model.config.embedding_size} → LSTM "
                 f"{model.config.num_layers} × {model.hidden_size} → softmax over {tokenizer.vocab_size} tokens",
        "parameters": f"{count_parameters(model):,}",
        "tokenizer": f"{type(tokenizer).__name__}, {tokenizer.vocab_size} tokens",
        "LSTM": repr(model.lstm),
        "engine": engines.describe(model.lstm),
        "inspected text": f"{len(text)} characters, {len(pieces)} tokens",
    }
    return write_report(recording, out_dir, title="Inside a language model's LSTM", summary=summary, max_steps=max_steps)
