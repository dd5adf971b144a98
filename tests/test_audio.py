"""Audio in and out (`lstmlab.data.audio`): mixdown, resampling, the 16-bit round trip,
the errors of unreadable files, and a user's speech as a folder or a TSV/CSV manifest."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile
import torch

from lstmlab.data.audio import SAMPLE_RATE, AudioError, read_audio, read_speech_manifest, resample, write_wav


def _sine(frequency: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    return np.sin(2 * np.pi * frequency * np.arange(int(seconds * rate)) / rate)


def _peak_hz(wave: torch.Tensor, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave.numpy() * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / rate)[spectrum.argmax()])


def test_stereo_22050_becomes_mono_16k_with_the_pitch_kept(tmp_path):
    n = 22050
    sine = _sine(440, 22050)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([0.5 * sine, 0.3 * sine], axis=1), 22050, subtype="PCM_16")
    wave = read_audio(path)
    assert wave.dim() == 1 and wave.dtype == torch.float32
    assert abs(len(wave) - n * 16000 / 22050) <= 1
    assert _peak_hz(wave, SAMPLE_RATE) == pytest.approx(440, abs=10)
    assert float(wave[1000:-1000].abs().max()) == pytest.approx(0.4, abs=0.01)  # the channels' average
    assert wave.abs().max() <= 1


def test_flac_at_8k_and_other_rates(tmp_path):
    path = tmp_path / "tone.flac"
    soundfile.write(path, 0.5 * _sine(1000, 8000), 8000)
    wave = read_audio(path)
    assert len(wave) == 16000 and _peak_hz(wave, 16000) == pytest.approx(1000, abs=10)
    assert len(read_audio(path, sample_rate=8000)) == 8000


def test_resample_is_public_and_keeps_frequency():
    wave = torch.from_numpy(_sine(440, 16000).astype(np.float32))
    down = resample(wave, 16000, 8000)
    assert len(down) == 8000 and down.dtype == torch.float32
    assert _peak_hz(down, 8000) == pytest.approx(440, abs=10)
    same = resample(wave, 16000, 16000)
    assert torch.equal(same, wave) and same is not wave
    with pytest.raises(ValueError, match="from_rate"):
        resample(wave, 0, 16000)


def test_write_read_round_trip(tmp_path):
    wave = torch.rand(16000) * 1.8 - 0.9
    path = write_wav(tmp_path / "sub" / "out.wav", wave)
    assert path.is_file() and soundfile.info(path).subtype == "PCM_16" and soundfile.info(path).samplerate == 16000
    assert [p.name for p in path.parent.iterdir()] == ["out.wav"]  # no temporary file left
    back = read_audio(path)
    assert back.shape == wave.shape
    assert float((back - wave).abs().max()) <= 2 / 32768  # 16-bit quantisation
    write_wav(path, torch.zeros(100))  # replaces the file
    assert len(read_audio(path)) == 100
    loud = read_audio(write_wav(tmp_path / "loud.wav", torch.tensor([2.0, -3.0, 0.5])))
    assert loud.abs().max() <= 1  # clipped to full scale


def test_text_file_renamed_wav_names_the_file(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n")
    with pytest.raises(AudioError, match="not readable as audio") as error:
        read_audio(path)
    assert "notes.wav" in str(error.value) and "WAV" in str(error.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(AudioError, match="no such audio file") as error:
        read_audio(tmp_path / "absent.wav")
    assert "absent.wav" in str(error.value)
    with pytest.raises(AudioError, match="found a folder"):
        read_audio(tmp_path)


def test_empty_wav(tmp_path):
    path = tmp_path / "empty.wav"
    soundfile.write(path, np.zeros(0), 16000, subtype="PCM_16")
    with pytest.raises(AudioError, match="empty audio") as error:
        read_audio(path)
    assert "empty.wav" in str(error.value) and "found 0" in str(error.value)


def test_nan_samples(tmp_path):
    path = tmp_path / "nan.wav"
    soundfile.write(path, np.array([0.1, math.nan, 0.2, math.inf], dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="found 2 NaN or infinite") as error:
        read_audio(path)
    assert "nan.wav" in str(error.value)


def _utterance(path, seconds: float = 0.1):
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, torch.zeros(int(seconds * SAMPLE_RATE)))
    return path


def test_folder_of_wav_and_txt(tmp_path):
    _utterance(tmp_path / "b.wav")
    (tmp_path / "b.txt").write_text("  second\nline  \n")
    soundfile.write(tmp_path / "a.flac", np.zeros(800), 8000)
    (tmp_path / "a.txt").write_text("hello world\n")
    (tmp_path / "readme.md").write_text("ignored")
    assert read_speech_manifest(tmp_path) == [(tmp_path / "a.flac", "hello world"), (tmp_path / "b.wav", "second line")]


def test_tsv_with_relative_paths_comments_and_blank_lines(tmp_path):
    _utterance(tmp_path / "clips" / "one.wav")
    absolute = _utterance(tmp_path / "elsewhere" / "two.wav")
    manifest = tmp_path / "data" / "train.tsv"
    manifest.parent.mkdir()
    manifest.write_text(f"# recorded at home\n\n../clips/one.wav\t  Hello, \"quoted\" world \n{absolute}\tsecond\n")
    assert read_speech_manifest(manifest) == [(manifest.parent / "../clips/one.wav", 'Hello, "quoted" world'),
                                              (absolute, "second")]


@pytest.mark.parametrize("header", ["path,transcript", "audio,text", "Path,Transcript"])
def test_csv_with_header(tmp_path, header):
    _utterance(tmp_path / "one.wav")
    _utterance(tmp_path / "two.wav")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f'{header}\none.wav,"yes, a comma"\n# skipped\ntwo.wav,plain text\n')
    assert read_speech_manifest(manifest) == [(tmp_path / "one.wav", "yes, a comma"),
                                              (tmp_path / "two.wav", "plain text")]


def test_csv_without_header(tmp_path):
    _utterance(tmp_path / "one.wav")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("one.wav,just words\n")
    assert read_speech_manifest(manifest) == [(tmp_path / "one.wav", "just words")]


def _manifest_error(tmp_path, name: str, text: str) -> str:
    _utterance(tmp_path / "ok.wav")
    manifest = tmp_path / name
    manifest.write_text(text)
    with pytest.raises(AudioError) as error:
        read_speech_manifest(manifest)
    message = str(error.value)
    assert name in message
    return message


def test_manifest_missing_audio_names_the_line(tmp_path):
    message = _manifest_error(tmp_path, "train.tsv", "# header comment\nok.wav\tfine\n\nmissing.wav\tgone\n")
    assert "line 4" in message and "missing.wav" in message and "does not exist" in message


def test_manifest_empty_transcript(tmp_path):
    message = _manifest_error(tmp_path, "train.tsv", "ok.wav\t   \n")
    assert "line 1" in message and "empty transcript" in message and "ok.wav" in message
    message = _manifest_error(tmp_path, "train.csv", "path,transcript\nok.wav,\n")
    assert "line 2" in message and "empty transcript" in message


def test_manifest_line_without_tab_or_comma(tmp_path):
    message = _manifest_error(tmp_path, "train.tsv", "ok.wav\tfine\nok.wav fine too\n")
    assert "line 2" in message and "expected audio path<TAB>transcript" in message and "ok.wav fine too" in message
    message = _manifest_error(tmp_path, "train.csv", "ok.wav\n")
    assert "line 1" in message and "expected audio path,transcript" in message


def test_folder_with_wav_without_txt_names_them(tmp_path):
    for name in ("a", "b", "c", "d", "e", "f", "g"):
        _utterance(tmp_path / f"{name}.wav")
    (tmp_path / "a.txt").write_text("has one")
    with pytest.raises(AudioError, match="found none for 6") as error:
        read_speech_manifest(tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message and "b.wav, c.wav, d.wav, e.wav, f.wav and 1 more" in message
    assert "g.wav" not in message


def test_folder_empty_transcript(tmp_path):
    _utterance(tmp_path / "a.wav")
    (tmp_path / "a.txt").write_text("\n  \n")
    with pytest.raises(AudioError, match="empty transcript") as error:
        read_speech_manifest(tmp_path)
    assert "a.txt" in str(error.value)


def test_no_utterances_and_missing_path(tmp_path):
    (tmp_path / "only.txt").write_text("no audio here")
    with pytest.raises(AudioError, match="no utterances"):
        read_speech_manifest(tmp_path)
    comments = tmp_path / "comments.tsv"
    comments.write_text("# nothing\n\n")
    with pytest.raises(AudioError, match="no utterances") as error:
        read_speech_manifest(comments)
    assert "comments.tsv" in str(error.value)
    with pytest.raises(AudioError, match="does not exist") as error:
        read_speech_manifest(tmp_path / "nowhere")
    assert "nowhere" in str(error.value)


def test_audio_file_given_as_manifest(tmp_path):
    path = tmp_path / "clip.wav"
    soundfile.write(path, np.full(100, 0.5), 16000, subtype="PCM_16")
    with pytest.raises(AudioError, match="UTF-8") as error:
        read_speech_manifest(path)
    assert "clip.wav" in str(error.value)
