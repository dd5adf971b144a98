"""The translation recipe's report: attention alignments, and the encoder's and decoder's gates.

`write_translation_report(run, text, out_dir)` translates each line of `text` (beam
search), draws each sentence's attention as a heatmap (target pieces down, source
pieces across), and records every gate and cell of the encoder over the first source
sentence (the report's explorer and statistics) and of the decoder over its own
translation (heatmaps).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure

from lstmlab.inspect.collect import as_recording
from lstmlab.inspect.plots import plot_gate_heatmaps
from lstmlab.inspect.report import ReportSection, write_report
from lstmlab.models import count_parameters

MAX_SENTENCES = 8  # attention heatmaps drawn (one per line of text)
ATTENTION_CAPTION = (
    "Each row is one word piece the decoder wrote, each column one piece of the source; a dark "
    "cell means the decoder read that source piece (its attention weight, 0 to 1) while writing "
    "that output piece. A good alignment runs roughly down the diagonal, with jumps where Spanish "
    "orders words differently from English. The last row and column are the end-of-sentence marks.")
DECODER_CAPTION = (
    "The decoder's LSTM while it writes the translation (teacher-forced on its own output): its "
    "cells and gates per output piece, time across, units down.")


def plot_attention(weights: torch.Tensor, source_pieces: list[str], pieces: list[str], path: Path) -> Path:
    """Heatmap of (len(pieces), len(source_pieces)) attention weights, labelled with the pieces."""
    rows, columns = weights.shape
    figure = Figure(figsize=(min(22, 2 + 0.32 * columns), min(22, 1.5 + 0.3 * rows)), dpi=100, layout="constrained")
    axis = figure.subplots()
    axis.imshow(weights.numpy(), cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    axis.set_xticks(range(columns), [p.replace("\u2581", "·") for p in source_pieces], rotation=90, fontsize=8)
    axis.set_yticks(range(rows), [p.replace("\u2581", "·") for p in pieces], fontsize=8)
    axis.set_xlabel("source piece")
    axis.set_ylabel("translation piece")
    figure.savefig(path)
    return path


@torch.no_grad()
def _traces(model: Any, source_ids: list[int], target_ids: list[int], specials: Any) -> tuple[Any, Any]:
    """The encoder's trace over the source (+ EOS) and the decoder's over BOS + the translation."""
    source = torch.tensor([source_ids + [specials.eos]])
    memory, encoder_trace = model.encode(source, torch.tensor([source.shape[1]]), trace=True)
    target = model.target_embedding(torch.tensor([[specials.bos] + target_ids]))
    if model.config.input_feeding:
        return encoder_trace, None  # the decoder's input includes h̃; its trace is step by step (not drawn)
    _, _, decoder_trace = model.decoder(target, memory.state, trace=True)
    return encoder_trace, decoder_trace


def write_translation_report(run: Any, text: str, out_dir: str | Path) -> Path:
    """Translate the lines of `text` with `run` and write report.html (see the module doc)."""
    import lstmlab
    from lstmlab import engines
    from lstmlab.recipes.translation.batches import Specials

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, tokenizer = run.model, run.tokenizer
    if not isinstance(model.encoder, lstmlab.LSTM):
        raise ValueError(f"{run.checkpoint}: this model uses cell={model.config.cell!r}; only LSTM models have "
                         "gates to inspect")
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        raise ValueError("the text to inspect is empty")
    translations = run.translate(lines[:MAX_SENTENCES])
    sections = []
    for index, translation in enumerate(translations):
        title = f"Attention, sentence {index + 1}: {translation.text}"
        if translation.attention is None:
            sections.append(ReportSection(title, "This model has no attention (attention = none)."))
            continue
        image = plot_attention(translation.attention, translation.source_pieces, translation.pieces,
                               out_dir / f"attention_{index + 1}.png")
        sections.append(ReportSection(title, f"<p>Source: {html.escape(translation.source)}</p>{ATTENTION_CAPTION}",
                                      image))
    specials = Specials.of(tokenizer)
    first = translations[0]
    source_ids = tokenizer.encode(first.source)[:run.config.data.max_source_tokens]
    target_ids = tokenizer.encode(first.text)
    encoder_trace, decoder_trace = _traces(model, source_ids, target_ids, specials)
    if decoder_trace is not None:
        decoder = as_recording(decoder_trace, pieces=["<s>"] + [tokenizer.processor.id_to_piece(i) for i in target_ids])
        for layer in range(decoder.num_layers):
            image = plot_gate_heatmaps(decoder, layer, out_dir / f"decoder_gates_layer{layer}.png")
            sections.append(ReportSection(f"Decoder LSTM, layer {layer}", DECODER_CAPTION, image))
    source_pieces = [tokenizer.processor.id_to_piece(i).replace("\u2581", " ") for i in source_ids] + [" </s>"]
    if model.config.reverse_source:  # the encoder read it backwards: show the steps in its order
        source_pieces.reverse()
    recording = as_recording(encoder_trace, pieces=source_pieces)
    summary = {
        "checkpoint": str(run.checkpoint),
        "model": f"encoder {repr(model.encoder)}; decoder {repr(model.decoder)}; attention {model.config.attention}",
        "parameters": f"{count_parameters(model):,}",
        "tokenizer": f"joint sentencepiece BPE, {tokenizer.vocab_size} pieces",
        "engine": engines.describe(model.encoder),
        "inspected": f"{len(lines)} line(s); the explorer shows the encoder over the first: {first.source!r}",
    }
    return write_report(recording, out_dir, title="Inside a translation model's LSTMs", summary=summary,
                        extra_sections=sections, text_features=False)
