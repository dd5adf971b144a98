"""The music recipe: piano rolls from music21 scores (a hand-made score), the split rule,
batches (shifted inputs, masks, windows, exact resume), the frame NLL against a hand
computation, a tiny model that learns, and `lstmlab train/evaluate music` end to end on
a small cache of real chorales."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from lstmlab.cli import main
from lstmlab.data import chorales
from lstmlab.models.music import MusicModelConfig, PianoRollModel
from lstmlab.recipes.music.task import ChoraleBatches, evaluate_rolls, frame_nll, make_batch


def test_a_hand_made_score_becomes_the_expected_roll():
    from music21 import chord, note, stream

    part = stream.Stream()
    part.append(chord.Chord(["C4", "E4", "G4"], quarterLength=1.0))  # frames 0-1
    part.append(note.Rest(quarterLength=0.5))  # frame 2
    part.append(note.Note("A0", quarterLength=0.5))  # frame 3, the lowest key
    part.append(note.Note("C8", quarterLength=1.5))  # frames 4-6, the highest key
    roll = chorales.score_to_roll(part)
    assert roll.shape == (7, 88) and roll.dtype == np.uint8
    c4, e4, g4 = 60 - 21, 64 - 21, 67 - 21
    expected = np.zeros((7, 88), dtype=np.uint8)
    expected[0:2, [c4, e4, g4]] = 1
    expected[3, 0] = 1
    expected[4:7, 87] = 1
    np.testing.assert_array_equal(roll, expected)


def test_split_rule_is_fixed_by_name_and_roughly_three_one_one():
    names = [f"bwv{k}.{j}" for k in range(200) for j in range(3)]
    splits = [chorales.split_of(name) for name in names]
    assert splits == [chorales.split_of(name) for name in names]
    shares = {split: splits.count(split) / len(splits) for split in chorales.SPLITS}
    assert abs(shares["train"] - 0.6) < 0.06 and abs(shares["test"] - 0.2) < 0.05


def test_batch_inputs_are_the_targets_shifted_with_silence_first_and_padding_masked():
    a = np.eye(88, dtype=np.uint8)[:3]  # 3 frames
    b = np.eye(88, dtype=np.uint8)[10:15]  # 5 frames
    batch = make_batch([a, b])
    assert batch.inputs.shape == (5, 2, 88) and batch.frames == 8
    assert not batch.inputs[0].any()
    torch.testing.assert_close(batch.inputs[1:4, 1], batch.targets[0:3, 1])
    assert batch.mask[:, 0].tolist() == [True] * 3 + [False] * 2
    assert not batch.targets[3:, 0].any()


def test_frame_nll_is_the_summed_bernoulli_nll_over_real_frames():
    batch = make_batch([np.array([[1] + [0] * 87, [0] * 88], dtype=np.uint8), np.zeros((1, 88), dtype=np.uint8)])
    logits = torch.randn(2, 2, 88)
    expected = 0.0
    for t, column in ((0, 0), (1, 0), (0, 1)):
        p = torch.sigmoid(logits[t, column])
        y = batch.targets[t, column]
        expected += float(-(y * torch.log(p) + (1 - y) * torch.log(1 - p)).sum())
    assert math.isclose(float(frame_nll(logits, batch)), expected, rel_tol=1e-5)


def test_batches_resume_exactly_and_windows_cut_long_chorales():
    rolls = [np.random.default_rng(k).integers(0, 2, (20 + 7 * k, 88)).astype(np.uint8) for k in range(6)]
    first = ChoraleBatches(rolls, 4, seed=3, window=16)
    for _ in range(3):
        next(first)
    saved = first.state_dict()
    expected = [next(first).targets for _ in range(4)]
    again = ChoraleBatches(rolls, 4, seed=99, window=16)
    again.load_state_dict(saved)
    for want in expected:
        got = next(again).targets
        torch.testing.assert_close(got, want)
        assert got.shape[0] == 16
    with pytest.raises(ValueError, match="data.window"):
        ChoraleBatches(rolls, 4, seed=0, window=-1)


def test_a_tiny_model_learns_a_repeating_pattern():
    torch.manual_seed(0)
    pattern = np.zeros((32, 88), dtype=np.uint8)
    for t in range(32):
        pattern[t, [40 + t % 4, 50 + (t // 2) % 3]] = 1
    model = PianoRollModel(MusicModelConfig(hidden_size=32))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = make_batch([pattern] * 4)
    before = evaluate_rolls(model, [pattern], 4)["loss"]
    for _ in range(150):
        loss = frame_nll(model(batch.inputs), batch) / batch.frames
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = evaluate_rolls(model, [pattern], 4)["loss"]
    assert before > 50 and after < before / 10, (before, after)  # 88 keys at p = 1/2 give 61 nats


def test_model_errors_name_what_was_expected():
    model = PianoRollModel(MusicModelConfig(hidden_size=8))
    with pytest.raises(ValueError, match=r"expected frames of shape \(T, B, 88\)"):
        model(torch.zeros(3, 2, 12))
    with pytest.raises(ValueError, match="is an LSTM variant"):
        PianoRollModel(MusicModelConfig(cell="gru", variant="NFG"))
    assert "no_forget_gate" in repr(PianoRollModel(MusicModelConfig(hidden_size=8, variant="NFG")).recurrent)


def test_train_evaluate_and_resume_music_end_to_end(use_small_cache, tmp_path, capsys):
    common = ["--hidden_size", "16", "--batch_size", "4", "--window", "32", "--progress", "false",
              "--schedule", "constant"]  # a cosine decay over 3 steps would differ from one over 6
    assert main(["train", "music", "--out", str(tmp_path / "straight"), "--max_steps", "6", *common]) == 0
    assert "nats/frame" in capsys.readouterr().out
    assert main(["train", "music", "--out", str(tmp_path / "split"), "--max_steps", "3", *common]) == 0
    assert main(["train", "music", "--out", str(tmp_path / "split"), "--resume", "--max_steps", "6",
                 "--progress", "false"]) == 0
    straight = torch.load(tmp_path / "straight" / "latest.pt")["model"]
    resumed = torch.load(tmp_path / "split" / "latest.pt")["model"]
    for name, value in straight.items():
        torch.testing.assert_close(resumed[name], value, msg=name)
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "straight"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["chorales"] >= 1 and report["frames"] > 0 and 0 < report["nll_per_frame"] < 88 * math.log(2) * 2
    assert main(["evaluate", str(tmp_path / "straight"), "--data", "x.txt"]) == 2
    assert "music21 chorales only" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "straight"), "--out", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "report.html").read_text()
    for needle in ("The chorale and what the model predicts", "best-tracking cell", "soprano (highest key)",
                   "Layer 0: gates and cells"):
        assert needle in page
    assert (tmp_path / "report" / "music.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["inspect", str(tmp_path / "straight"), "--text", "hello"]) == 2
    assert "inspected on a test chorale" in capsys.readouterr().err


def test_score_signals_and_soprano_letters():
    from lstmlab.recipes.music.inspect import score_signals, soprano_pieces

    roll = np.zeros((4, 88), dtype=np.uint8)
    roll[0, [60 - 21, 64 - 21]] = 1  # C4 + E4
    roll[1, [60 - 21, 61 - 21]] = 1  # C4 held, C#4 new
    roll[3, 48 - 21] = 1  # frame 2 silent, then C3
    assert soprano_pieces(roll) == ["E", "c", "·", "C"]
    signals = score_signals(roll)
    assert signals["soprano (highest key)"].tolist() == [43, 40, 40, 27]  # a silent frame keeps the key before
    assert signals["bass (lowest key)"].tolist() == [39, 39, 39, 27]
    assert signals["notes sounding"].tolist() == [2, 2, 0, 1] and signals["new notes"].tolist() == [2, 1, 0, 1]
    assert signals["beat (even frames)"].tolist() == [1, 0, 1, 0]
