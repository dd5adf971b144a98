"""Built-in text features, per-character signals, and finding the unit that tracks a feature."""

import pytest
import torch

import lstmlab
from lstmlab import LayerTrace, Trace
from lstmlab.inspect import as_recording, characters_to_tokens, collect_text_trace, rank_units
from lstmlab.inspect.features import bracket_depth, inside_quotes, position_in_line, position_in_word

QUOTE_TEXT = (
    'He said "hello there" and left.\nShe answered "no (not now)" twice, then "fine".\n'
    'A line without quotes [but brackets].\n"Quoted line," he wrote "again".\n'
) * 3


def test_builtin_features_on_known_strings():
    assert inside_quotes(list('a"bc"d')).tolist() == [0, 1, 1, 1, 0, 0]
    assert inside_quotes(list("x\u201cy\u201dz")).tolist() == [0, 1, 1, 0, 0]
    assert bracket_depth(list("f(a[b])c)")).tolist() == [0, 1, 1, 2, 2, 1, 0, 0, 0]
    assert position_in_line(list("ab\ncd")).tolist() == [1, 2, 0, 1, 2]
    assert position_in_word(list("ab cd.")).tolist() == [1, 2, 0, 1, 2, 0]
    # multi-character pieces take the state after their last character
    assert inside_quotes(["He", " said", ' "hi', '"', " ok"]).tolist() == [0, 0, 1, 0, 0]


def test_per_character_signal_maps_to_tokens_by_last_character():
    pieces = ["ab", "c", "", "de"]
    assert characters_to_tokens([1, 2, 3, 4, 5], pieces).tolist() == [2, 3, 3, 5]
    with pytest.raises(ValueError, match="needs 5 values"):
        characters_to_tokens([1, 2], pieces)


def hand_built_recording(feature, planted_unit, num_units=6, seed=0):
    """A 1-layer recording whose `planted_unit` cell is 2 * feature + small noise."""
    generator = torch.Generator().manual_seed(seed)
    steps = feature.shape[0]
    cells = torch.randn(steps, 1, 1, num_units, generator=generator)
    cells[:, 0, 0, planted_unit] = 2 * feature + 0.1 * torch.randn(steps, generator=generator)
    gates = torch.full_like(cells, 0.5)
    return LayerTrace(i=gates, f=gates, g=gates, o=gates, c=cells, h=torch.tanh(cells))


def test_rank_units_finds_a_planted_unit_from_text_and_from_a_user_signal():
    pieces = list(QUOTE_TEXT)
    feature = inside_quotes(pieces)
    recording = as_recording(Trace((hand_built_recording(feature, planted_unit=4),)), pieces=pieces)
    best = rank_units(recording, "inside_quotes", top=3)
    assert (best[0].layer, best[0].unit) == (0, 4) and best[0].correlation > 0.95
    assert abs(best[1].correlation) < 0.3
    # the same feature given by the user, one value per character, and negated (sign kept)
    user = rank_units(recording, [-value for value in feature.tolist()], top=1)[0]
    assert user.unit == 4 and user.correlation < -0.95


def test_rank_units_rejects_constant_or_misaligned_features():
    pieces = list("no quotes here")
    layer = hand_built_recording(torch.zeros(len(pieces)), planted_unit=0)
    recording = as_recording(Trace((layer,)), pieces=pieces)
    with pytest.raises(ValueError, match="constant"):
        rank_units(recording, "inside_quotes")
    with pytest.raises(ValueError, match="one value per step"):
        rank_units(recording, torch.ones(3, 3))
    with pytest.raises(ValueError, match="unknown feature"):
        rank_units(recording, "inside_parentheses")


def planted_quote_lstm(vocabulary, hidden_size=6, planted_unit=4, strength=10.0, seed=0):
    """An lstmlab.LSTM on one-hot characters whose `planted_unit` flips its cell at every quote.

    The planted unit keeps its cell between quotes (forget gate ~1, input gate ~0). On a
    quote it erases (f ~0) and writes g = tanh(strength * (1 - 2.63 h_prev)): +1 when the
    cell was 0 or -1 (outside quotes), -1 when it was +1 (inside). So c ~ +1 inside quotes.
    """
    torch.manual_seed(seed)
    lstm = lstmlab.LSTM(len(vocabulary), hidden_size)
    quote = vocabulary.index('"')
    state = {name: 0.3 * torch.randn_like(value) for name, value in lstm.state_dict().items()}
    i, f, g, o = (gate * hidden_size + planted_unit for gate in range(4))  # rows in (W_i|W_f|W_g|W_o)
    for row in (i, f, g, o):
        state["weight_ih_l0"][row] = 0.0
        state["weight_hh_l0"][row] = 0.0
        state["bias_ih_l0"][row] = 0.0
        state["bias_hh_l0"][row] = 0.0
    state["weight_ih_l0"][i, quote], state["bias_ih_l0"][i] = 2 * strength, -strength  # open only on quotes
    state["weight_ih_l0"][f, quote], state["bias_ih_l0"][f] = -2 * strength, strength  # erase only on quotes
    state["weight_ih_l0"][g, quote] = strength
    state["weight_hh_l0"][g, planted_unit] = -2 * strength / torch.tanh(torch.tensor(1.0))
    state["bias_ih_l0"][o] = strength  # always show the cell
    lstm.load_state_dict(state)
    return lstm


class OneHotModel(torch.nn.Module):
    """tokens (T, B) -> one-hot -> LSTM; returns (output, state, trace) like a language model."""

    def __init__(self, lstm, vocab_size):
        super().__init__()
        self.lstm, self.vocab_size = lstm, vocab_size

    def forward(self, tokens, state=None, *, trace=False):
        inputs = torch.nn.functional.one_hot(tokens, self.vocab_size).float()  # (T, B, V)
        return self.lstm(inputs, state, trace=trace)


def test_unit_planted_to_track_quotes_is_found():
    vocabulary = sorted(set(QUOTE_TEXT))
    model = OneHotModel(planted_quote_lstm(vocabulary), len(vocabulary))
    recording = collect_text_trace(model, [vocabulary.index(c) for c in QUOTE_TEXT], list(QUOTE_TEXT))
    best = rank_units(recording, "inside_quotes", top=6)
    assert best[0].unit == 4 and best[0].correlation > 0.9, best
    assert abs(best[1].correlation) < 0.8 * best[0].correlation
    # the cell really is high inside quotes and not outside
    cells = recording.quantity(0, "c")[:, 0, 0, 4]
    inside = inside_quotes(list(QUOTE_TEXT)).bool()
    assert cells[inside].min() > 0.5 and cells[~inside].max() < 0.5


def test_identical_builtin_features_are_listed_once():
    from lstmlab.inspect.features import varying_builtin_features

    pieces = list('a (b) "c"\nd [e]')
    layer = hand_built_recording(torch.zeros(len(pieces)), planted_unit=0)
    names = varying_builtin_features(as_recording(Trace((layer,)), pieces=pieces))
    assert "inside_brackets" in names and "bracket_depth" not in names  # brackets never nest here
    assert {"inside_quotes", "position_in_line", "position_in_word"} <= set(names)
