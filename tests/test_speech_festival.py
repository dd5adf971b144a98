"""A third synthesiser, Festival: its voices speak the held-out synthesiser test set
(`other_speech --synthesiser festival`); a missing program or voice is a clear error."""

from __future__ import annotations

import shutil

import pytest

from lstmlab.data import festival, synthesiser

needs_festival = pytest.mark.skipif(shutil.which("text2wave") is None, reason="needs festival (make festival)")


def test_a_missing_festival_or_voice_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from lstmlab.recipes.speech.other_speech import main

    with pytest.raises(ValueError, match="expected a festival voice, one of kal, ked, slt_hts; got 'bob'"):
        festival.synthesize("to be", festival.Voice("bob"), tmp_path / "a.wav")
    with pytest.raises(ValueError, match="stretch: expected a duration factor > 0, got 0"):
        festival.synthesize("to be", festival.Voice("ked", stretch=0), tmp_path / "a.wav")
    with pytest.raises(SystemExit) as exit_:
        main(["--out", str(tmp_path / "set"), "--synthesiser", "mbrola"])
    assert exit_.value.code == 2 and "synthesiser: expected one of flite, festival, got 'mbrola'" in capsys.readouterr().err
    monkeypatch.setattr(synthesiser.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit) as exit_:
        main(["--out", str(tmp_path / "set"), "--synthesiser", "festival", "--utterances", "2"])
    error = capsys.readouterr().err
    assert exit_.value.code == 2 and "festival is not installed" in error and "make festival" in error
    assert not list((tmp_path / "set").glob("*.tsv"))


@needs_festival
def test_a_voice_festival_does_not_have_names_the_voice_and_festivals_words(tmp_path, monkeypatch):
    monkeypatch.setitem(festival.VOICES, "nobody", "nobody_diphone")  # as if its package were not installed
    with pytest.raises(festival.FestivalError, match=r"text2wave failed on 'to be' with voice nobody .*nobody_diphone"):
        festival.synthesize("to be", festival.Voice("nobody"), tmp_path / "a.wav")
    assert not list(tmp_path.iterdir())  # neither audio nor the text file is left behind


@needs_festival
def test_festival_speaks_every_voice_at_its_rate_and_the_set_matches_the_test_sentences(tmp_path):
    from lstmlab.data.audio import SAMPLE_RATE, read_audio, read_speech_manifest
    from lstmlab.recipes.speech.corpus import sentence_pool
    from lstmlab.recipes.speech.other_speech import write_synthesiser_set

    text = "now is the winter of our discontent"
    plain = read_audio(festival.synthesize(text, festival.Voice("ked"), tmp_path / "plain.wav"))
    slow = read_audio(festival.synthesize(text, festival.Voice("ked", stretch=1.3), tmp_path / "slow.wav"))
    assert 1.5 < len(plain) / SAMPLE_RATE < 4.0 and 1.2 < len(slow) / len(plain) < 1.4
    assert sorted(path.name for path in tmp_path.iterdir()) == ["plain.wav", "slow.wav"]

    manifest = write_synthesiser_set(tmp_path / "set", "festival", utterances=4, seed=5)
    items = read_speech_manifest(manifest)
    assert [text for _, text in items] == sentence_pool("test", 5)[:4]  # the espeak test set's sentences, in order
    assert [audio.name.rsplit("-", 1)[0] for audio, _ in items] == ["kal", "ked", "slt_hts", "kal"]
    for audio, text in items:
        seconds = len(read_audio(audio)) / SAMPLE_RATE  # slt_hts speaks at 32 kHz: resampled on reading
        assert 0.15 * len(text.split()) < seconds < 1.2 * len(text.split()) + 1, (audio.name, seconds)
    per_voice = {voice: read_speech_manifest(tmp_path / "set" / f"festival-{voice}.tsv") for voice in festival.VOICES}
    assert len(per_voice["kal"]) == 2 and sorted(sum(per_voice.values(), [])) == sorted(items)
    assert not list((tmp_path / "set" / "wav").glob("*.txt"))
