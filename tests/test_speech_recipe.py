"""`lstmlab train speech` end to end on a small folder of espeak-ng recordings: train, load,
transcribe (files, --json, streaming), evaluate, inspect, resume exactly, and clear errors
for bad audio, bad manifests and bad requests."""

from __future__ import annotations

import io
import json
import shutil

import pytest
import torch

import lstmlab
from lstmlab.checkpoint import load_checkpoint
from lstmlab.cli import main
from lstmlab.data import espeak
from lstmlab.data.audio import SAMPLE_RATE, read_audio, write_wav

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (make espeak)")

PHRASES = ["the cat sat", "a dog ran home", "good night sweet prince", "to be or not to be",
           "all the world's a stage", "now is the winter"]
TINY = ["--bidirectional", "false", "--normalization", "global", "--hidden_size", "24", "--num_layers", "1",
        "--batch_frames", "1500", "--eval_utterances", "0", "--progress", "false", "--threads", "1",
        "--spec_augment", "false", "--log_interval", "2"]


def speak_folder(folder, phrases=PHRASES, variant="m3"):
    folder.mkdir(parents=True, exist_ok=True)
    for index, text in enumerate(phrases):
        espeak.synthesize(text, espeak.Voice("en-us", variant, 170, 50), folder / f"u{index}.wav")
        (folder / f"u{index}.txt").write_text(text + "\n")
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("speech")
    data = speak_folder(folder / "data", PHRASES * 2)  # 12 utterances: 10 train, 1 validation, 1 test
    out = folder / "run"
    assert main(["train", "speech", "--data", str(data), "--out", str(out), "--max_steps", "8", *TINY]) == 0
    return data, out


def test_train_writes_a_run_folder_and_load_transcribes(trained):
    data, out = trained
    for name in ("best.pt", "latest.pt", "config.json", "metrics.jsonl", "learning_curve.png", "lm_text.txt"):
        assert (out / name).is_file(), name
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"cer", "wer", "loss"} <= set([r for r in records if r["split"] == "validation"][-1])
    run = lstmlab.load(out)
    assert run.recipe == "speech" and run.alphabet == " abcdefghijklmnopqrstuvwxyz'"
    wave = read_audio(data / "u0.wav")
    text = run.transcribe(wave, SAMPLE_RATE)
    assert isinstance(text, str) and set(text) <= set(run.alphabet)
    stereo_44k = torch.stack([wave, wave])  # any rate and channel count
    assert isinstance(run.transcribe(stereo_44k, 44100, beam=4), str)
    with pytest.raises(ValueError, match="non-empty"):
        run.transcribe(torch.zeros(0), SAMPLE_RATE)


def test_transcribe_command_prints_one_line_per_file(trained, capsys):
    data, out = trained
    capsys.readouterr()
    files = [str(data / f"u{i}.wav") for i in range(3)]
    assert main(["transcribe", str(out), *files, "--beam", "4"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["transcribe", str(out), files[0], "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["file"] == files[0] and row["audio_seconds"] > 0.3 and row["real_time_factor"] > 0


def test_streaming_matches_the_whole_file(trained, capsys, monkeypatch):
    from lstmlab.recipes.speech.streaming import StreamingRecognizer

    data, out = trained
    run = lstmlab.load(out)
    wave = read_audio(data / "u3.wav")
    recognizer = StreamingRecognizer(run)
    for start in range(0, len(wave), 1234):  # uneven chunks, not a multiple of the hop
        recognizer.accept(wave[start:start + 1234])
    streamed = recognizer.finish()
    whole = run.posteriors(wave, SAMPLE_RATE)
    torch.testing.assert_close(torch.stack(recognizer.log_probs), whole, atol=2e-4, rtol=1e-4)
    assert streamed == run.transcribe(wave, SAMPLE_RATE)
    words = out / "lm_text.txt"
    with_lexicon = StreamingRecognizer(run, beam=4, lexicon=words, oov_penalty=float("-inf"))
    with_lexicon.accept(wave)
    final = with_lexicon.finish()
    assert final == run.transcribe(wave, SAMPLE_RATE, beam=4, lexicon=words,
                                   oov_penalty=float("-inf"))
    assert set(final.split()) <= set(words.read_text().split())
    capsys.readouterr()
    at_16k = write_wav(data.parent / "u3-16k.wav", wave)  # the command reads blocks: no resampling at 16 kHz
    assert main(["transcribe", str(out), "--stream", str(at_16k), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    again = StreamingRecognizer(run)
    again.accept(read_audio(at_16k))
    assert report["transcript"] == again.finish() and report["real_time_factor"] > 0
    pcm = (wave * 32767).to(torch.int16).numpy().tobytes()  # raw s16le on standard input
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(pcm)))
    assert main(["transcribe", str(out), "--stream", "-", "--json"]) == 0
    from_pcm = StreamingRecognizer(run)
    from_pcm.accept(torch.frombuffer(bytearray(pcm), dtype=torch.int16).float() / 32768.0)
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["transcript"] == from_pcm.finish()


def test_evaluate_reports_wer_and_cer(trained, capsys):
    data, out = trained
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", str(data), "--json", "--beam", "3", "--per-voice"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["utterances"] == 12 and 0 <= report["cer"] and 0 <= report["wer"]
    assert {"wer_greedy", "cer_greedy", "wer_beam", "cer_beam", "per_voice"} <= set(report)
    assert main(["evaluate", str(out), "--json"]) == 0  # the run's own test split
    assert json.loads(capsys.readouterr().out)["utterances"] == 1
    words = out / "lm_text.txt"
    assert main(["evaluate", str(out), "--data", str(data), "--json", "--beam", "3", "--lexicon", str(words),
                 "--oov_penalty=-inf"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["decoder"] == "beam_lexicon" and report["cer"] == report["cer_beam_lexicon"]
    assert report["oov_penalty"] == float("-inf") and report["lexicon_words"] > 0
    assert main(["transcribe", str(out), str(data / "u0.wav"), "--lexicon", str(words), "--oov_penalty=-inf"]) == 0
    assert set(capsys.readouterr().out.split()) <= set(words.read_text().split())


def test_a_lexicon_file_is_normalised_and_bad_files_are_refused(tmp_path):
    from lstmlab.data.speech_text import encode_transcript
    from lstmlab.recipes.speech.recognizer import load_lexicon

    text = tmp_path / "words.txt"
    text.write_text("O, Romeo! 'Tis thee.\nthee ROMEO\n", encoding="utf-8")
    lexicon = load_lexicon(text)
    assert lexicon.words == 4 and load_lexicon(text) is lexicon  # o romeo tis thee; loaded once
    state = 0
    for label in encode_transcript("romeo"):
        state = lexicon.advance(state, label)
    assert state > 0 and not lexicon.closes_outside(state)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_lexicon(tmp_path / "missing.txt")
    with pytest.raises(FileNotFoundError, match="is a folder"):
        load_lexicon(tmp_path)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        load_lexicon(tmp_path / "latin1.txt")
    (tmp_path / "digits.txt").write_text("1 2 3 !!\n")
    with pytest.raises(ValueError, match="no words"):
        load_lexicon(tmp_path / "digits.txt")


def test_per_voice_groups_espeak_variants_and_files_named_voice_dash_index():
    from types import SimpleNamespace

    from lstmlab.recipes.speech.recipe import per_voice, voice_group

    assert [voice_group(v) for v in ("en-us+m3", "en+Andy", "en-us", "/data/wav/ked-0012.wav",
                                     "wav/slt_hts-0002.wav", "talk.flac")] == ["m3", "Andy", "en-us", "ked",
                                                                                "slt_hts", "talk"]
    utterances = SimpleNamespace(voices=["set/wav/kal-0000.wav", "set/wav/ked-0001.wav", "set/wav/kal-0003.wav"],
                                 texts=["to be", "or not", "to be"])
    scores = per_voice(utterances, ["to be", "or nod", "to bee"])
    assert sorted(scores) == ["kal", "ked"] and scores["kal"]["utterances"] == 2
    assert scores["ked"]["cer"] == pytest.approx(1 / 6) and scores["kal"]["wer"] == pytest.approx(0.25)


def test_an_lm_path_is_loaded_once_and_reloaded_when_retrained(trained, tmp_path, monkeypatch):
    """`run.transcribe(wave, rate, lm="runs/lm")` per utterance reuses the loaded LM; the
    fusion benchmark grids beams, weights and bonuses over the same LM."""
    from lstmlab.recipes.speech.recognizer import load_fusion

    data, out = trained
    lm = tmp_path / "lm"
    lm_options = ["--hidden_size", "8", "--embedding_size", "4", "--num_layers", "1", "--batch_size", "2",
                  "--bptt", "8", "--progress", "false", "--threads", "1"]
    assert main(["train", "lm", "--data", str(out / "lm_text.txt"), "--out", str(lm), "--max_steps", "2",
                 *lm_options]) == 0
    first = load_fusion(str(lm))
    assert load_fusion(lm) is first  # same run, same checkpoint: not loaded again
    run = lstmlab.load(out)
    assert isinstance(run.transcribe(read_audio(data / "u0.wav"), SAMPLE_RATE, beam=3, lm=str(lm)), str)
    assert main(["train", "lm", "--out", str(lm), "--resume", "--max_steps", "4", *lm_options]) == 0
    assert load_fusion(lm) is not first  # the checkpoint changed: loaded afresh
    with pytest.raises(FileNotFoundError, match="no such language model"):
        load_fusion(tmp_path / "missing")
    fusion_grid_has_a_row_per_beam_weight_and_bonus(out, lm, tmp_path, monkeypatch)


def fusion_grid_has_a_row_per_beam_weight_and_bonus(out, lm, tmp_path, monkeypatch):
    """benchmarks/speech_fusion.py: one table row per beam × (α = 0, or α × β) × oov penalty, the best named."""
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "benchmarks"))
    monkeypatch.delitem(sys.modules, "speech_fusion", raising=False)
    from speech_fusion import main as fusion_main

    table = tmp_path / "fusion.md"
    monkeypatch.setattr(sys, "argv", ["speech_fusion.py", str(out), str(lm), "--weights", "0,0.5", "--bonuses",
                                      "0,1", "--beams", "2,3", "--lexicon", str(out / "lm_text.txt"), "--penalties",
                                      "0,-4", "--threads", "1", "--out", str(table)])
    fusion_main()
    rows = [line.split("|")[1:-1] for line in table.read_text().splitlines() if line.startswith("| ") and
            line.split("|")[1].strip().isdigit()]
    assert [(int(r[0]), float(r[1]), float(r[2]), float(r[3])) for r in rows] == [
        (beam, weight, bonus, penalty) for beam in (2, 3) for weight, bonus in ((0, 0), (0.5, 0), (0.5, 1))
        for penalty in (0, -4)]
    assert all(0 <= float(r[4]) and 0 <= float(r[5]) for r in rows)
    assert "Lowest WER: beam" in table.read_text() and "beam 3 without the LM" in table.read_text()
    assert "--weights 0,0.5 --bonuses 0,1 --beams 2,3 --lexicon" in table.read_text()  # the command as typed
    assert "Lexicon: " in table.read_text()
    monkeypatch.setattr(sys, "argv", ["speech_fusion.py", str(out), str(lm), "--penalties", "-4"])
    with pytest.raises(SystemExit) as exited:
        fusion_main()  # a penalty without a lexicon
    assert exited.value.code == 2
    monkeypatch.setattr(sys, "argv", ["speech_fusion.py", str(out), str(lm), "--beams", "8,x"])
    with pytest.raises(SystemExit) as exited:
        fusion_main()
    assert exited.value.code == 2


def test_inspect_writes_the_audio_report(trained, tmp_path):
    data, out = trained
    assert main(["inspect", str(out), "--audio", str(data / "u1.wav"), "--out", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "report.html").read_text()
    assert "CTC posteriors" in page and "speaking rate" in page
    assert (tmp_path / "report" / "audio.png").is_file() and (tmp_path / "report" / "gates_layer0.png").is_file()


def test_resume_is_exact(trained, tmp_path):
    data, _ = trained
    straight, split = tmp_path / "straight", tmp_path / "split"
    common = ["train", "speech", "--data", str(data), *TINY, "--spec_augment", "true", "--freq_warp", "0.2",
              "--shortest_first_epochs", "1"]
    assert main([*common, "--out", str(straight), "--max_steps", "6"]) == 0
    assert main([*common, "--out", str(split), "--max_steps", "3"]) == 0
    assert main(["train", "speech", "--out", str(split), "--resume", "--max_steps", "6", "--progress", "false"]) == 0
    a, b = load_checkpoint(straight / "latest.pt")["model"], load_checkpoint(split / "latest.pt")["model"]
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)


def test_bad_data_and_requests_give_clear_errors(trained, tmp_path, capsys):
    data, out = trained
    bad = speak_folder(tmp_path / "bad", PHRASES[:3])
    (bad / "u1.wav").write_text("not audio")
    assert main(["evaluate", str(out), "--data", str(bad)]) == 2
    assert "u1.wav: not readable as audio" in capsys.readouterr().err
    manifest = tmp_path / "list.tsv"
    manifest.write_text(f"{data / 'u0.wav'}\tthe cat sat\nmissing.wav\tsome words\n")
    assert main(["evaluate", str(out), "--data", str(manifest)]) == 2
    assert "line 2" in capsys.readouterr().err
    assert main(["transcribe", str(out)]) == 2
    assert "give audio files" in capsys.readouterr().err
    assert main(["transcribe", str(out), str(data / "u0.wav"), "--beam", "0"]) == 2
    assert "--beam" in capsys.readouterr().err
    assert main(["evaluate", str(out), "--lm", str(out)]) == 2  # a speech run is not a character LM
    assert "character language model" in capsys.readouterr().err
    assert main(["transcribe", str(out), str(data / "u0.wav"), "--lexicon", str(tmp_path / "none.txt")]) == 2
    assert "--lexicon" in capsys.readouterr().err
    assert main(["evaluate", str(out), "--data", str(data), "--lexicon", str(out / "lm_text.txt"),
                 "--oov_penalty", "2"]) == 2
    assert "oov_penalty <= 0" in capsys.readouterr().err


def test_streaming_refuses_a_bidirectional_run(trained, tmp_path, capsys):
    data, _ = trained
    out = tmp_path / "bi"
    tiny = [a for a in TINY]
    tiny[tiny.index("--bidirectional") + 1] = "true"
    assert main(["train", "speech", "--data", str(data), "--out", str(out), "--max_steps", "1", *tiny]) == 0
    capsys.readouterr()
    assert main(["transcribe", str(out), "--stream", str(data / "u0.wav")]) == 2
    assert "unidirectional" in capsys.readouterr().err


def test_decoding_options_of_zero_are_given_values():
    """`lstmlab evaluate --word_bonus 0 --lm_weight 0` overrides the run's 0.5 and 0.8 (0 == False
    in Python; the options are told apart by identity)."""
    import argparse

    from lstmlab import recipes
    from lstmlab.cli.evaluate import decoding_options

    args = argparse.Namespace(beam=None, lm="runs/lm", lm_weight=0.0, word_bonus=0.0, lexicon=None, oov_penalty=None,
                              per_voice=False)
    assert decoding_options(args, recipes.get("speech")) == {"lm": "runs/lm", "lm_weight": 0.0, "word_bonus": 0.0}
    args.lm_weight = args.word_bonus = None
    assert decoding_options(args, recipes.get("speech")) == {"lm": "runs/lm"}
