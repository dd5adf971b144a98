"""`torch.save(model)` / `torch.load(path)` of whole models holding lstmlab modules, with
torch's default ``weights_only=True`` (lstmlab.serialization allow-lists its classes)."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

import lstmlab
from lstmlab.models.acoustic import AcousticModel, AcousticModelConfig
from lstmlab.models.lm import LanguageModel, LMModelConfig
from lstmlab.models.longlag import LongLagModel, ModelConfig
from lstmlab.models.seq2seq import Seq2Seq, Seq2SeqConfig


class WordModel(nn.Module):
    """The shape of pytorch/examples' word_language_model with lstmlab.LSTM inside."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Embedding(20, 8)
        self.rnn = lstmlab.LSTM(8, 12, 2, dropout=0.1)
        self.decoder = nn.Linear(12, 20)

    def forward(self, tokens):
        output, _ = self.rnn(self.encoder(tokens))
        return self.decoder(output)


def round_trip(model, tmp_path, extra=()):
    """torch.save the whole model, then torch.load it with the default weights_only."""
    path = tmp_path / "model.pt"
    torch.save(model, path)
    with torch.serialization.safe_globals(list(extra)):
        return torch.load(path)


def same_parameters(a: nn.Module, b: nn.Module) -> None:
    a_state, b_state = a.state_dict(), b.state_dict()
    assert a_state.keys() == b_state.keys()
    for name in a_state:
        torch.testing.assert_close(a_state[name], b_state[name], rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("options", [{}, {"peephole": True, "layer_norm": True}, {"coupled": True, "zoneout": 0.1},
                                     {"proj_size": 3, "bidirectional": True, "num_layers": 2}])
def test_lstm_round_trip_runs_the_same(tmp_path, options):
    torch.manual_seed(0)
    lstm = lstmlab.LSTM(5, 6, **options).eval()
    loaded = round_trip(lstm, tmp_path)
    assert type(loaded) is lstmlab.LSTM and loaded.spec == lstm.spec
    same_parameters(lstm, loaded)
    x = torch.randn(4, 2, 5)
    torch.testing.assert_close(loaded(x)[0], lstm(x)[0], rtol=0, atol=0)


def test_cell_round_trip(tmp_path):
    cell = lstmlab.LSTMCell(3, 4, peephole=True)
    loaded = round_trip(cell, tmp_path)
    same_parameters(cell, loaded)
    x = torch.randn(2, 3)
    torch.testing.assert_close(loaded(x)[0], cell(x)[0], rtol=0, atol=0)


def test_user_model_needs_only_its_own_and_torch_classes(tmp_path):
    torch.manual_seed(0)
    model = WordModel()
    path = tmp_path / "model.pt"
    torch.save(model, path)
    with open(path, "rb") as f:  # what torch.load would still refuse: nothing of lstmlab's
        unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(f))
    assert not {name for name in unsafe if name.startswith("lstmlab.")}, unsafe
    loaded = round_trip(model, tmp_path, extra=[WordModel, nn.Embedding, nn.Linear, nn.Dropout])
    tokens = torch.randint(0, 20, (5, 3))
    torch.testing.assert_close(loaded.eval()(tokens), model.eval()(tokens), rtol=0, atol=0)


RECIPE_MODELS = {
    "lm": lambda: LanguageModel(LMModelConfig(hidden_size=16, embedding_size=8, dropout_between_layers=0.1), 30),
    "translation": lambda: Seq2Seq(Seq2SeqConfig(embedding_size=8, encoder_hidden=8, decoder_hidden=16), 40, 0),
    "speech": lambda: AcousticModel(AcousticModelConfig(hidden_size=8, num_layers=2), 10, 29),
    "longlag": lambda: LongLagModel(ModelConfig("lstm", 3, 8, 2, {"peephole": True})),
}


@pytest.mark.parametrize("recipe", sorted(RECIPE_MODELS))
def test_recipe_models_hold_only_allow_listed_lstmlab_types(tmp_path, recipe):
    """Every lstmlab type in a pickled recipe model is on the allow-list (a class that adds
    state of a new type fails here until lstmlab.serialization lists it)."""
    model = RECIPE_MODELS[recipe]()
    path = tmp_path / "model.pt"
    torch.save(model, path)
    with open(path, "rb") as f:
        unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(f))
    lstmlab_unsafe = {name for name in unsafe if name.startswith("lstmlab.")}
    assert not lstmlab_unsafe, f"lstmlab types missing from lstmlab.serialization.safe_types: {lstmlab_unsafe}"
    torch_classes = [getattr(nn, name.rsplit(".", 1)[1]) for name in unsafe if name.startswith("torch.nn.modules.")]
    loaded = round_trip(model, tmp_path, extra=torch_classes)
    same_parameters(model, loaded)


def test_other_code_is_still_refused(tmp_path):
    """The allow-list is lstmlab's classes only: a pickle that calls something else fails."""
    path = tmp_path / "evil.pt"

    class Payload:
        def __reduce__(self):
            return (print, ("executed",))

    torch.save({"model": lstmlab.LSTM(2, 3), "payload": Payload()}, path)
    with pytest.raises(pickle.UnpicklingError, match="Unsupported global: GLOBAL print"):
        torch.load(path)
