"""The speech recipe's data and model: synthesised corpus (held-out voices and sentences,
reproducible, grows with --hours), transcripts, the acoustic model's shapes and options,
and the character LM used for shallow fusion."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch

from lstmlab.data import espeak
from lstmlab.data.speech_text import ALPHABET, decode_labels, encode_transcript, normalize_transcript, sentences
from lstmlab.models import count_parameters
from lstmlab.models.acoustic import AcousticModel, AcousticModelConfig

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (make espeak)")


def test_transcripts_are_normalised_to_the_alphabet():
    assert normalize_transcript("O, Romeo! 'Tis I -- don't.") == "o romeo tis i don't"
    assert normalize_transcript("Café  naïve\nend") == "cafe naive end"
    labels = encode_transcript("a b'")
    assert labels == [2, 1, 3, 28] and decode_labels(labels) == "a b'"
    with pytest.raises(ValueError, match="outside the alphabet"):
        encode_transcript("A")
    found = sentences("ROMEO:\nBut soft! What light through yonder window breaks?\nIt is 3 o'clock.\n")
    assert found == ["what light through yonder window breaks"]  # 2 words: too short; a digit: left out


@needs_espeak
def test_held_out_voices_are_never_trained_on():
    train, validation, test = (set(espeak.variants_of(split)) for split in ("train", "validation", "test"))
    assert len(train) > 50 and len(validation) == len(espeak.VALIDATION_VARIANTS) and len(test) == 10
    assert not train & validation and not train & test and not validation & test


@needs_espeak
def test_synthetic_corpus_is_reproducible_and_grows(tmp_path, monkeypatch):
    from lstmlab.recipes.speech import corpus
    from lstmlab.recipes.speech.features import FeatureConfig

    monkeypatch.setattr(corpus, "cache_root", lambda: tmp_path)
    monkeypatch.setattr(corpus, "SHARD_SIZE", 6)
    espeak_only = {"generated_voices": 0.0, "flite_voices": 0.0}
    small = corpus.synthetic_splits(0.002, 3, 4, seed=5, features=FeatureConfig(), jobs=1, **espeak_only)  # ~7 s
    assert len(small.validation) == 3 and len(small.test) == 4 and 0.002 <= small.train.hours < 0.01
    assert not set(small.train.texts) & set(small.test.texts)
    assert all(v.split("+")[1] in espeak.TEST_VARIANTS for v in small.test.voices)
    larger = corpus.synthetic_splits(0.006, 3, 4, seed=5, features=FeatureConfig(), jobs=1, **espeak_only)
    n = len(small.train)
    assert len(larger.train) > n and larger.train.texts[:n] == small.train.texts
    torch.testing.assert_close(larger.train.features[:len(small.train.features)], small.train.features)
    shards = sorted(p.name for p in next(tmp_path.iterdir()).glob("train-*.pt"))
    assert len(shards) >= 2 and all((tmp_path / next(tmp_path.iterdir()).name / s).with_suffix(".jsonl").is_file()
                                    for s in shards)
    counted = corpus.synthetic_splits(0.0, 3, 4, seed=5, features=FeatureConfig(), jobs=1, train_utterances=2,
                                      **espeak_only)
    assert counted.train.texts == small.train.texts[:2]  # the first utterances, without a whole shard
    torch.testing.assert_close(counted.train.features, small.train.features[:counted.train.lengths.sum()])
    plan = corpus.plan_utterance("train", 3, 5, ["a b c", "d e f"], ("m3", None))
    assert plan == corpus.plan_utterance("train", 3, 5, ["a b c", "d e f"], ("m3", None))



def test_generated_variants_stay_within_the_documented_ranges():
    import random

    for seed in range(300):
        definition = espeak.generated_variant(random.Random(seed))
        assert definition == espeak.generated_variant(random.Random(seed))  # a pure function of the draws
        settings: dict[str, list[list[int]]] = {}
        for line in definition.splitlines()[2:]:
            key, *values = line.split()
            settings.setdefault(key, []).append([int(v) for v in values])
        (base, top), = settings["pitch"]
        assert 40 <= base <= 220 and 1.2 * base <= top <= 1.95 * base
        formants = settings["formant"]
        assert [f[0] for f in formants] == list(range(9))
        frequencies = [f[1] for f in formants]
        assert 0.75 * 0.94 * 100 - 1 <= min(frequencies) and max(frequencies) <= 1.5 * 1.06 * 100 + 1
        assert max(frequencies) / min(frequencies) <= 1.06 / 0.94 + 0.02  # one scale for all formants
        assert all(70 <= f[2] <= 130 and 80 <= f[3] <= 150 for f in formants)
        assert 0 <= settings["flutter"][0][0] <= 8 and 70 <= settings["voicing"][0][0] <= 130
        assert set(settings) <= {"pitch", "formant", "flutter", "roughness", "voicing", "klatt"}


def test_generated_voices_change_only_the_variant_of_training_utterances():
    from lstmlab.recipes.speech import corpus
    from lstmlab.recipes.speech.config import SpeechDataConfig

    pool, variants = ["a b c", "d e f", "g h i"], ("m3", "f1", None)
    plain = [corpus.plan_utterance("train", i, 5, pool, variants) for i in range(200)]
    assert plain == [corpus.plan_utterance("train", i, 5, pool, variants, generated_voices=0.0) for i in range(200)]
    assert all(voice.definition is None for _, voice in plain)
    mixed = [corpus.plan_utterance("train", i, 5, pool, variants, generated_voices=0.5) for i in range(200)]
    generated = [voice for _, voice in mixed if voice.variant == espeak.GENERATED]
    assert 60 < len(generated) < 140 and all(voice.definition for voice in generated)
    assert len({voice.definition for voice in generated}) == len(generated)  # a new voice each time
    for (text, voice), (text_, voice_) in zip(plain, mixed):
        assert text == text_ and dataclasses.replace(voice_, variant=voice.variant, definition=None) == voice
    with pytest.raises(ValueError, match=r"generated_voices: expected a fraction .* got 1.5"):
        SpeechDataConfig(generated_voices=1.5).check_augmentation()


def test_runs_saved_before_generated_voices_keep_training_without_them():
    from lstmlab.recipes.speech.config import SpeechConfig, saved_config
    from lstmlab.recipes.speech.recipe import SpeechRecipe

    assert SpeechConfig().data.generated_voices == 0.5  # the default for new runs
    saved = dataclasses.asdict(SpeechConfig())
    del saved["data"]["generated_voices"]  # a config written before the field existed
    assert saved_config(saved).data.generated_voices == 0.0
    assert saved_config(dataclasses.asdict(SpeechConfig())).data.generated_voices == 0.5
    state = {"config": saved, "train_config": dataclasses.asdict(SpeechConfig().train)}
    resumed = SpeechRecipe().config_from_state(state)
    assert resumed.data.generated_voices == 0.0 and resumed.model.variants == "layer_norm"
    assert "generated_voices" not in saved["data"]  # the checkpoint's dict is left as it was

@needs_espeak
def test_a_generated_voice_is_spoken_through_a_private_data_folder(tmp_path, monkeypatch):
    import random
    import tempfile

    from lstmlab.data.audio import read_audio
    from lstmlab.recipes.speech import corpus
    from lstmlab.recipes.speech.features import FeatureConfig

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    text, own = "to be or not to be", espeak.Voice("en-us", None, 160, 50)
    generated = dataclasses.replace(own, variant=espeak.GENERATED, definition=espeak.generated_variant(random.Random(3)))
    spoken = read_audio(espeak.synthesize(text, generated, tmp_path / "generated.wav"))
    again = read_audio(espeak.synthesize(text, generated, tmp_path / "again.wav"))
    plain = read_audio(espeak.synthesize(text, own, tmp_path / "own.wav"))
    torch.testing.assert_close(spoken, again)  # the same definition, the same speech
    assert spoken.shape != plain.shape or not torch.equal(spoken, plain)  # the variant was used, not ignored
    assert not list((tmp_path / "tmp").iterdir())  # the private data folder is gone
    with pytest.raises(ValueError, match="must be named 'generated'"):
        espeak.synthesize(text, dataclasses.replace(generated, variant="m3"), tmp_path / "bad.wav")
    monkeypatch.setattr(corpus, "cache_root", lambda: tmp_path / "cache")
    folder = corpus.synthetic_folder
    assert folder(5, FeatureConfig()) == folder(5, FeatureConfig(), generated_voices=0.0)
    assert folder(5, FeatureConfig(), generated_voices=0.5) != folder(5, FeatureConfig())
    with pytest.raises(ValueError, match="generated_voices"):
        corpus.synthetic_splits(0.0, 3, 4, seed=5, features=FeatureConfig(), jobs=1, train_utterances=2,
                                generated_voices=-0.1, flite_voices=0.0)

def test_acoustic_model_shapes_and_options():
    torch.manual_seed(0)
    model = AcousticModel(AcousticModelConfig(hidden_size=16, num_layers=2, stack=3), 80, len(ALPHABET) + 1)
    features, lengths = torch.randn(3, 50, 80), torch.tensor([50, 31, 4])
    log_probs, out_lengths = model(features, lengths)
    assert log_probs.shape == (3, 17, 29) and out_lengths.tolist() == [17, 11, 2]
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(3, 17))
    alone, _ = model.eval()(features[1:2, :31], lengths[1:2])  # padding never changes an utterance's output
    torch.testing.assert_close(model(features, lengths)[0][1, :11], alone[0], atol=1e-5, rtol=1e-5)
    lstm = AcousticModelConfig(hidden_size=40, num_layers=2)
    gru = AcousticModel(AcousticModelConfig(cell="gru", hidden_size=40, num_layers=2), 80, 29)
    target = count_parameters(AcousticModel(lstm, 80, 29))
    assert abs(count_parameters(gru) - target) / target < 0.02 and gru.hidden_size > 40
    projected = AcousticModel(AcousticModelConfig(hidden_size=32, proj_size=8, bidirectional=False), 80, 29)
    assert projected(features, lengths)[0].shape == (3, 17, 29) and projected.lstm.proj_size == 8
    with pytest.raises(ValueError, match="proj_size=8: lstmlab.LSTM options, and cell='gru'"):
        AcousticModel(AcousticModelConfig(cell="gru", proj_size=8), 80, 29)
    with pytest.raises(ValueError, match=r"expected \(B, T, 80\)"):
        model(torch.randn(2, 10, 40), torch.tensor([10, 10]))


def test_the_recipe_default_is_layer_normalised_and_gru_asks_to_turn_it_off(tmp_path, capsys):
    """The speech recipe's LSTM is layer-normalised (the library's AcousticModelConfig is
    not); `--cell gru` with the recipe's variants is refused before any speech is made."""
    from lstmlab.cli import main
    from lstmlab.recipes.speech.config import SpeechConfig

    config = SpeechConfig()
    assert config.model.variants == "layer_norm" and AcousticModelConfig().variants == ""
    model = AcousticModel(config.model, 80, 29)
    assert model.lstm.spec.layer_norm and "recurrent.ln_c_weight_l0" in dict(model.named_parameters())
    assert main(["train", "speech", "--cell", "gru", "--out", str(tmp_path / "gru"), "--max_steps", "1"]) == 2
    assert "variants='layer_norm': lstmlab.LSTM options, and cell='gru' (torch's GRU) has none; turn them off " \
           "(on the command line: --variants '')" in capsys.readouterr().err
    assert not (tmp_path / "gru" / "latest.pt").exists()
    gru = AcousticModel(dataclasses.replace(config.model, cell="gru", variants="", hidden_size=16), 80, 29)
    assert isinstance(gru.recurrent, torch.nn.GRU)


def test_acoustic_model_takes_greffs_variants():
    torch.manual_seed(0)
    features, lengths = torch.randn(2, 12, 80), torch.tensor([12, 7])
    no_forget = AcousticModel(AcousticModelConfig(hidden_size=8, num_layers=1, variant="NFG"), 80, 29)
    assert no_forget.lstm.spec.removed_parts == ("forget_gate",) and no_forget.lstm.spec.peephole  # V has peepholes
    fgr = AcousticModel(AcousticModelConfig(hidden_size=8, num_layers=1, variant="FGR", engine="auto"), 80, 29)
    assert fgr(features, lengths)[0].shape == (2, 4, 29) and fgr.lstm.spec.full_gate_recurrence
    with pytest.raises(ValueError, match="variant='NFG': lstmlab.LSTM options"):
        AcousticModel(AcousticModelConfig(cell="gru", variant="NFG"), 80, 29)


def test_lm_fusion_folds_case_and_renormalises(tmp_path):
    from lstmlab.cli import main
    from lstmlab.recipes.speech.lm_fusion import LMFusion
    import lstmlab

    text = tmp_path / "text.txt"
    text.write_text("The quick brown fox jumps over the lazy dog's back.\nthe cat sat, and the dog ran!\n" * 40)
    out = tmp_path / "lm"
    assert main(["train", "lm", "--data", str(text), "--out", str(out), "--max_steps", "3", "--hidden_size", "16",
                 "--embedding_size", "8", "--num_layers", "1", "--batch_size", "4", "--bptt", "20",
                 "--progress", "false"]) == 0
    fusion = LMFusion(lstmlab.load(out))
    state, scores = fusion.start()
    assert scores.shape == (29,) and scores[0] == float("-inf")
    torch.testing.assert_close(scores[1:].exp().sum(), torch.tensor(1.0))
    t = ALPHABET.index("t") + 1
    states, batch = fusion.step([state, state], [t, ALPHABET.index("c") + 1])
    assert len(states) == 2 and batch.shape == (2, 29) and not torch.equal(batch[0], batch[1])
    assert len(fusion.token_ids[t]) == 2  # "t" and "T" both count for the label t
    bpe = tmp_path / "bpe"
    assert main(["train", "lm", "--data", str(text), "--out", str(bpe), "--max_steps", "1", "--tokenizer", "bpe",
                 "--vocab_size", "320", "--hidden_size", "8", "--embedding_size", "8", "--num_layers", "1",
                 "--batch_size", "2", "--bptt", "10", "--progress", "false"]) == 0
    with pytest.raises(ValueError, match="character language model"):
        LMFusion(lstmlab.load(bpe))
