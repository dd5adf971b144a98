"""A second synthesiser, flite: its voices in training (``--flite_voices``), the held-out
synthesiser test set (`other_speech`), and clear errors where flite is missing."""

from __future__ import annotations

import shutil

import pytest
import torch

from lstmlab.data import espeak, flite, synthesiser

needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="needs flite (make flite)")


def test_flite_voices_replace_only_the_voice_of_a_fraction_of_training_utterances():
    from lstmlab.recipes.speech import corpus
    from lstmlab.recipes.speech.config import SpeechDataConfig

    pool, variants = ["a b c", "d e f", "g h i"], ("m3", "f1", None)
    def plans(**fractions):
        return [corpus.plan_utterance("train", i, 5, pool, variants, **fractions) for i in range(400)]

    before = plans(generated_voices=0.5)
    assert before == plans(generated_voices=0.5, flite_voices=0.0)
    mixed = plans(generated_voices=0.5, flite_voices=0.3)
    spoken_by_flite = [voice for _, voice in mixed if isinstance(voice, flite.Voice)]
    assert 80 < len(spoken_by_flite) < 160
    assert {voice.voice for voice in spoken_by_flite} == set(flite.TRAINING_VOICES)  # slt never trains
    assert all(0.75 <= voice.stretch <= 1.35 and 80 <= voice.f0 <= 230 for voice in spoken_by_flite)
    for (text, voice), (text_, voice_) in zip(before, mixed):
        assert text == text_ and (isinstance(voice_, flite.Voice) or voice_ == voice)
    with pytest.raises(ValueError, match=r"flite_voices: expected a fraction .* got -0.2"):
        SpeechDataConfig(flite_voices=-0.2).check_augmentation()


def test_the_cache_key_names_the_flite_fraction_only_when_it_is_used(tmp_path, monkeypatch):
    from lstmlab.recipes.speech import corpus
    from lstmlab.recipes.speech.features import FeatureConfig

    monkeypatch.setattr(corpus, "cache_root", lambda: tmp_path)
    monkeypatch.setattr(espeak, "espeak_version", lambda: "eSpeak NG text-to-speech: 1.51")
    def folder(**fractions):
        return corpus.synthetic_folder(5, FeatureConfig(), **fractions)

    assert folder(generated_voices=0.5) == folder(generated_voices=0.5, flite_voices=0.0)
    assert folder(generated_voices=0.5, flite_voices=0.3) != folder(generated_voices=0.5)


def test_a_missing_flite_is_a_clear_error_before_any_speech_is_made(tmp_path, monkeypatch):
    from lstmlab.recipes.speech import corpus
    from lstmlab.recipes.speech.features import FeatureConfig

    monkeypatch.setattr(synthesiser.shutil, "which", lambda name: None)
    with pytest.raises(flite.FliteError, match="make flite"):
        flite.synthesize("to be", flite.Voice("rms"), tmp_path / "a.wav")
    monkeypatch.setattr(corpus, "cache_root", lambda: tmp_path / "cache")
    with pytest.raises(flite.FliteError, match="apt-get install flite"):
        corpus.synthetic_splits(0.0, 3, 4, seed=5, features=FeatureConfig(), jobs=1, train_utterances=2,
                                generated_voices=0.0, flite_voices=0.5)
    assert not (tmp_path / "cache").exists()
    with pytest.raises(ValueError, match="expected a flite voice, one of kal, kal16, awb, rms, slt; got 'bob'"):
        flite.synthesize("to be", flite.Voice("bob"), tmp_path / "a.wav")


@needs_flite
def test_flite_speaks_at_the_rate_it_is_given_and_the_corpus_turns_it_into_features(tmp_path):
    from lstmlab.data.audio import SAMPLE_RATE, read_audio
    from lstmlab.recipes.speech import corpus
    from lstmlab.recipes.speech.features import FeatureConfig

    text = "now is the winter of our discontent"
    plain = read_audio(flite.synthesize(text, flite.Voice("kal16"), tmp_path / "plain.wav"))
    slow = read_audio(flite.synthesize(text, flite.Voice("kal16", stretch=1.3), tmp_path / "slow.wav"))
    assert 1.2 < len(slow) / len(plain) < 1.4
    voice = flite.Voice("kal", stretch=0.9, f0=150)  # kal speaks at 8 kHz: resampled on reading
    features, seconds = corpus._utterance_features((text, voice, 11, FeatureConfig()))
    assert features.dtype == torch.float16 and features.shape[1] == 80
    assert abs(features.shape[0] - seconds * 100) <= 2 and 1.0 < seconds < 4.0
    assert len(read_audio(flite.synthesize(text, voice, tmp_path / "k.wav"))) / SAMPLE_RATE == pytest.approx(seconds)
    manifest = corpus._voice_settings(voice)
    assert manifest == {"stretch": 0.9, "f0": 150}


@needs_flite
def test_the_held_out_synthesiser_set_speaks_the_test_sentences_in_every_flite_voice(tmp_path, capsys):
    from lstmlab.data.audio import read_speech_manifest
    from lstmlab.recipes.speech.corpus import sentence_pool
    from lstmlab.recipes.speech.other_speech import main, write_synthesiser_set

    manifest = write_synthesiser_set(tmp_path / "set", "flite", utterances=6, seed=5)
    items = read_speech_manifest(manifest)
    assert [text for _, text in items] == sentence_pool("test", 5)[:6]  # the espeak test set's sentences, in order
    assert [audio.name.split("-")[0] for audio, _ in items] == [*flite.VOICES, flite.VOICES[0]]
    assert all(audio.is_file() for audio, _ in items)
    per_voice = {voice: read_speech_manifest(tmp_path / "set" / f"flite-{voice}.tsv") for voice in flite.VOICES}
    assert len(per_voice["kal"]) == 2 and sorted(sum(per_voice.values(), [])) == sorted(items)
    assert not list((tmp_path / "set").glob("*.tmp"))
    with pytest.raises(SystemExit) as exit_:
        main(["--out", str(tmp_path / "none"), "--utterances", "0"])
    assert exit_.value.code == 2 and "utterances: expected at least 1, got 0" in capsys.readouterr().err


def test_runs_saved_before_flite_voices_keep_training_without_them():
    import dataclasses

    from lstmlab.recipes.speech.config import SpeechConfig, saved_config

    assert SpeechConfig().data.flite_voices == 0.3  # the default for new runs
    saved = dataclasses.asdict(SpeechConfig())
    del saved["data"]["flite_voices"]  # a config written before the field existed
    assert saved_config(saved).data.flite_voices == 0.0
    assert saved_config(saved).data.generated_voices == 0.5  # a field it has is read as saved
    assert saved_config(dataclasses.asdict(SpeechConfig())).data.flite_voices == 0.3


def test_training_without_flite_is_one_line_naming_the_way_out(tmp_path, monkeypatch, capsys):
    from lstmlab.cli import main
    from lstmlab.recipes.speech import corpus

    monkeypatch.setattr(synthesiser.shutil, "which", lambda name: None)
    monkeypatch.setattr(corpus, "cache_root", lambda: tmp_path / "cache")
    assert main(["train", "speech", "--hours", "0.001", "--out", str(tmp_path / "run"), "--max_steps", "1"]) == 2
    error = capsys.readouterr().err
    assert "flite is not installed" in error and "--flite_voices 0" in error and "Traceback" not in error
    assert not (tmp_path / "cache").exists()


def test_both_synthesisers_fail_with_the_program_the_text_and_the_voice(tmp_path, monkeypatch):
    with pytest.raises(flite.FliteError, match=r"false failed on 'to be or not' with voice rms \(exit 1\)"):
        synthesiser.speak_to_wav(["false"], tmp_path / "a.wav", flite.FliteError, "to be or not", "rms")
    monkeypatch.setattr(synthesiser.shutil, "which", lambda name: None)
    with pytest.raises(espeak.EspeakError, match="make espeak"):
        espeak.espeak_binary()


def test_manifests_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    import os

    from lstmlab.checkpoint import write_text_atomically

    manifest = tmp_path / "flite.tsv"
    write_text_atomically(manifest, "wav/a.wav\tto be\n")
    assert manifest.read_text(encoding="utf-8") == "wav/a.wav\tto be\n" and oct(manifest.stat().st_mode)[-3:] == "644"

    def interrupted(*_):
        raise KeyboardInterrupt  # Ctrl-C between writing the temporary file and the rename

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomically(manifest, "wav/b.wav\tor not\n")
    assert manifest.read_text(encoding="utf-8") == "wav/a.wav\tto be\n"  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["flite.tsv"]  # no temporary file left
