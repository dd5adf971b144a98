"""The speech recipe's report: spectrogram, CTC posteriors, and the LSTM's gates over the audio.

`write_speech_report(run, audio, out_dir)` transcribes one recording (default: a held-out
test utterance synthesised on the spot) and draws, on one time axis (the model's steps,
``stack`` × 10 ms each): the log-mel spectrogram, the CTC posteriors (blank and each
character), and every layer's gates and cells (the report's explorer and heatmaps).
It then ranks the cells that track three signals of the audio: **silence** (frame
energy far below the utterance's loudest), **word boundaries** (steps where the greedy
CTC path emits a space or is between words) and **speaking rate** (characters emitted in
the surrounding second).
"""

from __future__ import annotations

import html
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from matplotlib.figure import Figure

from lstmlab.data.audio import SAMPLE_RATE, read_audio
from lstmlab.data.speech_text import ALPHABET, SPACE
from lstmlab.inspect.collect import as_recording
from lstmlab.inspect.features import best_tracking_table
from lstmlab.inspect.plots import plot_gate_heatmaps
from lstmlab.inspect.report import ReportSection, write_report
from lstmlab.models import count_parameters

DEFAULT_SENTENCE = "the quality of mercy is not strained it droppeth as the gentle rain from heaven"


def _default_audio(folder: Path) -> Path:
    from lstmlab.data import espeak

    voice = espeak.Voice(accent="en-us", variant=espeak.TEST_VARIANTS[0], speed=165, pitch=50)
    return espeak.synthesize(DEFAULT_SENTENCE, voice, folder / "default.wav")


def audio_signals(features: Tensor, labels: list[int], stack: int) -> dict[str, np.ndarray]:
    """Per model step: silence (1/0), word boundary (1/0), speaking rate (characters/s)."""
    steps = len(labels)
    energy = features.logsumexp(-1)  # (frames,) log total mel energy
    silent = (energy < energy.max() - 9.0).float()  # ~40 dB below the loudest frame
    silence = torch.nn.functional.pad(silent, (0, steps * stack - len(silent)), value=1.0)
    silence = silence.reshape(steps, stack).mean(1).numpy()
    emitted = np.array([label != 0 and (t == 0 or label != labels[t - 1]) for t, label in enumerate(labels)], float)
    boundary = np.zeros(steps)
    inside, since_space = False, True
    for t, label in enumerate(labels):  # between words: from a space (or start) until the next letter
        if label == SPACE:
            since_space = True
        elif label != 0:
            since_space = False
        boundary[t] = 1.0 if since_space and inside else 0.0
        inside = inside or label not in (0, SPACE)
    window = max(1, round(100 / stack))  # one second of steps
    rate = np.convolve(emitted, np.ones(window), mode="same") * (100 / stack) / window
    return {"silence": silence, "word boundary": boundary, "speaking rate": rate}


def _plot_audio(features: Tensor, log_probs: Tensor, stack: int, path: Path) -> Path:
    figure = Figure(figsize=(12, 7), dpi=100, layout="constrained")
    top, bottom = figure.subplots(2, 1)
    top.imshow(features.T.numpy(), origin="lower", aspect="auto", cmap="magma", interpolation="nearest")
    top.set_title("log-mel spectrogram (80 bands, 10 ms frames)", loc="left", fontsize=10)
    top.set_ylabel("mel band")
    posteriors = log_probs.exp().T.numpy()  # (V, T')
    bottom.imshow(posteriors, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
    bottom.set_yticks(range(len(ALPHABET) + 1), ["∅"] + ["␣" if c == " " else c for c in ALPHABET], fontsize=6)
    bottom.set_title(f"CTC posteriors (∅ = blank), one column per model step ({stack * 10} ms)", loc="left",
                     fontsize=10)
    bottom.set_xlabel("model step")
    figure.savefig(path)
    return path


@torch.no_grad()
def write_speech_report(run: Any, audio: str | None, out_dir: str | Path) -> Path:
    """Transcribe `audio` (a file; None: a synthesised test-voice sentence) and write report.html."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = run.model
    if model.lstm is None:
        raise ValueError(f"{run.checkpoint}: this model uses cell={model.config.cell!r}; only LSTM models have "
                         "gates to inspect")
    with tempfile.TemporaryDirectory(prefix="lstmlab-inspect-") as folder:
        path = Path(audio) if audio else _default_audio(Path(folder))
        wave = read_audio(path)
    features = run.features(wave, SAMPLE_RATE)
    lengths = torch.tensor([len(features)])
    steps, _ = model.stack_frames(model.normalize(features[None], lengths), lengths)
    output, _, trace = model.lstm(steps, trace=True)
    log_probs = model.step_logits(output)[0]
    labels = log_probs.argmax(-1).tolist()
    transcript = run.transcribe(wave, SAMPLE_RATE)
    pieces = ["·" if label == 0 else ALPHABET[label - 1] for label in labels]
    recording = as_recording(trace, pieces=pieces)
    stack = model.config.stack
    sections = [ReportSection("Spectrogram and CTC posteriors",
                              f"<p>Transcript (greedy): <b>{html.escape(transcript)}</b></p>"
                              "<p>Top: the input, time across. Bottom: what the model outputs at each step; CTC "
                              "emits each character as a short spike and the blank (∅) everywhere else.</p>",
                              _plot_audio(features, log_probs, stack, out_dir / "audio.png")),
                ReportSection("Which cells track silence, word boundaries and speaking rate",
                              "<p>Pearson correlation between each cell state and a signal of the audio; the "
                              "strongest cell per signal, over all layers and directions.</p>"
                              + best_tracking_table(recording, audio_signals(features, labels, stack)))]
    for layer in range(recording.num_layers):
        image = plot_gate_heatmaps(recording, layer, out_dir / f"gates_layer{layer}.png")
        sections.append(ReportSection(f"Layer {layer}: gates and cells over the audio",
                                      f"Time across in model steps ({stack * 10} ms each), units down "
                                      "(the first 64; both directions stacked).", image))
    summary = {"checkpoint": str(run.checkpoint), "audio": str(audio or f"synthesised: {DEFAULT_SENTENCE!r}"),
               "model": repr(model.lstm), "parameters": f"{count_parameters(model):,}",
               "duration": f"{len(wave) / SAMPLE_RATE:.2f} s, {len(labels)} model steps"}
    return write_report(recording, out_dir, title="Inside a speech recogniser's LSTM", summary=summary,
                        extra_sections=sections, text_features=False)
