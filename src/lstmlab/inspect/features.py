"""Features of the input text, and ranking the units whose state tracks one.

Karpathy, Johnson & Fei-Fei (2015) found cells that switch on inside quotes, count the
position in a line, or follow bracket depth. A *feature* here is one number per time
step; a built-in feature is computed from the text pieces (the text of each token), as
the value *after reading* the token, because that is what the LSTM's state at that step
can know. A unit tracks a feature when its activation over time correlates with it.

Shape legend: T time steps, B sequences, D directions, H units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from lstmlab.inspect.collect import Recording

OPEN_BRACKETS = "([{"
CLOSE_BRACKETS = ")]}"
STRAIGHT_QUOTE = '"'
OPEN_CURLY_QUOTE, CLOSE_CURLY_QUOTE = "\u201c", "\u201d"


def _per_token(pieces: Sequence[str], update: Callable[[float, str], float], start: float = 0.0) -> torch.Tensor:
    """Walk the text character by character; each token gets the state after its last char."""
    state = start
    values = []
    for piece in pieces:
        for char in piece:
            state = update(state, char)
        values.append(state)
    return torch.tensor(values, dtype=torch.float32)


def inside_quotes(pieces: Sequence[str]) -> torch.Tensor:
    """(T,) 1 inside double quotes (the opening quote included), 0 outside.

    A straight quote " toggles; curly quotes open and close. Single quotes are not used:
    in English they are mostly apostrophes.
    """

    def update(state: float, char: str) -> float:
        if char == STRAIGHT_QUOTE:
            return 1.0 - state
        if char == OPEN_CURLY_QUOTE:
            return 1.0
        if char == CLOSE_CURLY_QUOTE:
            return 0.0
        return state

    return _per_token(pieces, update)


def bracket_depth(pieces: Sequence[str]) -> torch.Tensor:
    """(T,) how many ( [ { are open (never below 0: a stray closer is ignored)."""

    def update(state: float, char: str) -> float:
        if char in OPEN_BRACKETS:
            return state + 1.0
        if char in CLOSE_BRACKETS:
            return max(0.0, state - 1.0)
        return state

    return _per_token(pieces, update)


def inside_brackets(pieces: Sequence[str]) -> torch.Tensor:
    """(T,) 1 while at least one bracket is open, else 0."""
    return (bracket_depth(pieces) > 0).float()


def position_in_line(pieces: Sequence[str]) -> torch.Tensor:
    """(T,) characters read since the last newline (0 right after a newline)."""
    return _per_token(pieces, lambda state, char: 0.0 if char == "\n" else state + 1.0)


def position_in_word(pieces: Sequence[str]) -> torch.Tensor:
    """(T,) letters read since the last non-letter (0 on spaces and punctuation)."""
    return _per_token(pieces, lambda state, char: state + 1.0 if char.isalpha() else 0.0)


# name -> (function of the pieces, a caption for readers)
BUILTIN_FEATURES: dict[str, tuple[Callable[[Sequence[str]], torch.Tensor], str]] = {
    "inside_quotes": (inside_quotes, "1 inside double quotes, 0 outside"),
    "inside_brackets": (inside_brackets, "1 while a bracket ( [ { is open"),
    "bracket_depth": (bracket_depth, "how many brackets are open"),
    "position_in_line": (position_in_line, "characters since the last line break"),
    "position_in_word": (position_in_word, "letters since the start of the word"),
}


def characters_to_tokens(values: Sequence[float], pieces: Sequence[str]) -> torch.Tensor:
    """Map a per-character signal onto tokens: each token takes its last character's value.

    An empty piece takes the value of the character before it (0 at the very start).
    """
    text_length = sum(len(piece) for piece in pieces)
    values = torch.as_tensor(values, dtype=torch.float32).flatten()
    if values.numel() != text_length:
        raise ValueError(f"a per-character signal needs {text_length} values (one per character), got {values.numel()}")
    result, position = [], 0
    for piece in pieces:
        position += len(piece)
        result.append(values[position - 1] if position > 0 else torch.tensor(0.0))
    return torch.stack(result)


def feature_signal(feature: str | Sequence[float] | torch.Tensor, recording: Recording) -> torch.Tensor:
    """Resolve `feature` into a (T, B) float tensor aligned with the recording.

    `feature` is a built-in name (see BUILTIN_FEATURES; needs the recording's text pieces),
    a per-step signal of length T (or shape (T, B)), or a per-character signal with one
    value per character of the text.
    """
    steps, batch = recording.num_steps, recording.batch_size
    if isinstance(feature, str):
        if feature not in BUILTIN_FEATURES:
            raise ValueError(f"unknown feature {feature!r}; built-in features: {', '.join(BUILTIN_FEATURES)}")
        if recording.pieces is None:
            raise ValueError(f"feature {feature!r} is computed from text, but the recording has no text pieces")
        signal = BUILTIN_FEATURES[feature][0](recording.pieces)
    else:
        signal = torch.as_tensor(feature, dtype=torch.float32)
        if signal.dim() == 1 and signal.numel() != steps and recording.pieces is not None:
            signal = characters_to_tokens(signal, recording.pieces)
    if signal.dim() == 1 and signal.numel() == steps:
        signal = signal[:, None].expand(steps, batch)
    if tuple(signal.shape) != (steps, batch):
        raise ValueError(
            f"a feature must have one value per step: shape ({steps},) or ({steps}, {batch})"
            + (f", or one per character ({sum(map(len, recording.pieces))})" if recording.pieces else "")
            + f"; got shape {tuple(signal.shape)}"
        )
    return signal


@dataclass
class UnitScore:
    """How well one unit's activation follows a feature."""

    layer: int  # layer index
    direction: int  # 0 forward, 1 backward
    unit: int  # index of the unit within the layer
    correlation: float  # Pearson correlation over real steps, in [-1, 1]
    quantity: str  # which activation was compared (c, h, i, f, o, g)


def unit_correlations(recording: Recording, signal: torch.Tensor, layer: int, quantity: str = "c") -> torch.Tensor:
    """(D, H) Pearson correlation between each unit's `quantity` and a (T, B) signal.

    Counts real steps only. A unit that never changes gets correlation 0.
    """
    valid = recording.valid().flatten()  # (T*B,)
    values = recording.quantity(layer, quantity).double()  # (T, B, D, H)
    directions, units = values.shape[2], values.shape[3]
    activations = values.reshape(-1, directions * units)[valid]  # (N, D*H)
    target = signal.double().flatten()[valid]  # (N,)
    target = target - target.mean()
    if target.norm() == 0:
        raise ValueError("the feature is constant over the input: nothing to correlate with")
    centred = activations - activations.mean(dim=0)
    norms = centred.norm(dim=0) * target.norm()
    covariance = target @ centred
    correlation = torch.where(norms > 1e-12, covariance / norms.clamp_min(1e-300), torch.zeros_like(covariance))
    return correlation.reshape(directions, units).float()


def rank_units(
    recording: Recording, feature: str | Sequence[float] | torch.Tensor, *, quantity: str = "c", top: int = 10
) -> list[UnitScore]:
    """The `top` units (all layers, all directions) whose `quantity` best tracks `feature`.

    Ranked by absolute correlation (a unit that is low inside quotes tracks quotes too).
    """
    signal = feature_signal(feature, recording)
    scores = []
    for layer in range(recording.num_layers):
        correlation = unit_correlations(recording, signal, layer, quantity)
        for direction in range(correlation.shape[0]):
            for unit in range(correlation.shape[1]):
                scores.append(UnitScore(layer, direction, unit, float(correlation[direction, unit]), quantity))
    scores.sort(key=lambda score: abs(score.correlation), reverse=True)
    return scores[:top]


def varying_builtin_features(recording: Recording) -> list[str]:
    """The built-in features that change over the recording's text (others cannot be ranked).

    A feature equal to one listed before it (e.g. bracket depth when brackets never nest,
    which is then "inside brackets") is left out.
    """
    if recording.pieces is None:
        return []
    names, signals = [], []
    for name, (function, _) in BUILTIN_FEATURES.items():
        values = function(recording.pieces)
        varies = values.numel() > 1 and float(values.std()) > 0
        if varies and not any(torch.equal(values, earlier) for earlier in signals):
            names.append(name)
            signals.append(values)
    return names


def best_tracking_table(recording: Recording, signals: dict[str, Sequence[float]]) -> str:
    """An HTML table: per signal (one number per step of sequence 0), the cell whose state c
    correlates most strongly with it, over all layers and directions, and the correlation.
    A signal that is constant over the recording says so instead."""
    rows = []
    for name, values in signals.items():
        signal = torch.as_tensor(values, dtype=torch.float32)[:, None]  # (T, 1)
        if float(signal.max() - signal.min()) == 0.0:
            rows.append(f"<tr><td>{name}</td><td colspan=2>constant over this recording: nothing to rank</td></tr>")
            continue
        layer, direction, unit, correlation = max(
            ((layer, direction, unit, float(c)) for layer in range(recording.num_layers)
             for direction, row in enumerate(unit_correlations(recording, signal, layer, "c"))
             for unit, c in enumerate(row)), key=lambda item: abs(item[3]))
        side = f"{'forward' if direction == 0 else 'backward'}, " if recording.num_directions == 2 else ""
        rows.append(f"<tr><td>{name}</td><td>layer {layer}, {side}cell {unit}</td><td>{correlation:+.2f}</td></tr>")
    return ("<table><tr><th>signal</th><th>best-tracking cell</th><th>correlation of c</th></tr>"
            + "".join(rows) + "</table>")
