"""Speech training batches: the frequency warp (VTLP) and the time stretch drawn per
utterance, reproducibly, the time stretch's interpolation, and the shortest-first (SortaGrad) order of the first epochs, and out-of-range augmentation
settings refused with the setting named."""

from __future__ import annotations

import pytest
import torch

from lstmlab.recipes.speech.batches import AugmentOptions, UtteranceBatches, make_batch
from lstmlab.recipes.speech.corpus import FeatureSet
from lstmlab.recipes.speech.features import frequency_warp, time_stretch


def _feature_set(count: int = 60, seed: int = 0) -> FeatureSet:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(20, 200, (count,), generator=generator)
    features = torch.randn(int(lengths.sum()), 80, generator=generator).to(torch.float16)
    texts = [("ab " * (1 + i % 5)).strip() for i in range(count)]
    return FeatureSet(features, lengths, texts, ["en+m3"] * count, [n / 100 for n in lengths.tolist()])


def test_warp_is_drawn_per_utterance_within_its_range_and_reproducibly():
    data = _feature_set()
    options = AugmentOptions(freq_masks=0, time_masks=0, freq_warp=0.2)
    indices = [3, 7, 11]
    first = make_batch(data, indices, augment=options, generator=torch.Generator().manual_seed(5))
    again = make_batch(data, indices, augment=options, generator=torch.Generator().manual_seed(5))
    other = make_batch(data, indices, augment=options, generator=torch.Generator().manual_seed(6))
    assert torch.equal(first.features, again.features)
    assert not torch.equal(first.features, other.features)
    factors = 1 + 0.2 * (2 * torch.rand(3, generator=torch.Generator().manual_seed(5), dtype=torch.float64) - 1)
    for row, (index, factor) in enumerate(zip(indices, factors.tolist())):
        assert 0.8 <= factor <= 1.2
        length = int(data.lengths[index])
        torch.testing.assert_close(first.features[row, :length], frequency_warp(data.frames(index), factor))
        assert not first.features[row, length:].any()  # padding stays zero


def test_no_warp_leaves_the_features_as_they_are():
    data = _feature_set()
    batch = make_batch(data, [0, 1], augment=AugmentOptions(freq_warp=0.0), generator=torch.Generator().manual_seed(1))
    assert torch.equal(batch.features[0, :int(data.lengths[0])], data.frames(0))



def test_time_stretch_reads_the_frames_at_the_scaled_times():
    frames = torch.arange(10, dtype=torch.float32).unsqueeze(1).repeat(1, 3)  # frame t holds t
    assert torch.equal(time_stretch(frames, 1.0), frames)
    assert time_stretch(frames, 2.0)[:, 0].tolist() == [0, 2, 4, 6, 8]  # twice as fast: every other frame
    slower = time_stretch(frames, 0.5)[:, 0]
    assert len(slower) == 20 and slower[:4].tolist() == [0, 0.5, 1, 1.5] and slower[-1] == 9  # clamped at the end
    assert time_stretch(frames, 1 / 1.1)[:, 0].tolist()[:3] == pytest.approx([0, 1 / 1.1, 2 / 1.1])
    assert time_stretch(frames[:1], 0.8).shape == (1, 3)  # a single frame stays one
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="positive factor"):
            time_stretch(frames, bad)
    with pytest.raises(ValueError, match=r"expected \(T, F\) frames"):
        time_stretch(frames[:0], 1.0)


def test_time_stretch_is_drawn_per_utterance_after_the_warp():
    data, indices = _feature_set(), [3, 7, 11]
    warped = make_batch(data, indices, augment=AugmentOptions(freq_masks=0, time_masks=0, freq_warp=0.2),
                        generator=torch.Generator().manual_seed(5))
    options = AugmentOptions(freq_masks=0, time_masks=0, freq_warp=0.2, time_stretch=0.1)
    both = make_batch(data, indices, augment=options, generator=torch.Generator().manual_seed(5))
    again = make_batch(data, indices, augment=options, generator=torch.Generator().manual_seed(5))
    assert torch.equal(both.features, again.features) and torch.equal(both.lengths, again.lengths)
    draws = torch.rand(6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    stretches = 1 + 0.1 * (2 * draws[3:] - 1)  # the three after the warp's three
    for row, (index, factor) in enumerate(zip(indices, stretches.tolist())):
        length = int(warped.lengths[row])
        assert int(both.lengths[row]) == round(length / factor) and 0.9 <= factor <= 1.1
        torch.testing.assert_close(both.features[row, :int(both.lengths[row])],
                                   time_stretch(warped.features[row, :length], factor))
    assert torch.equal(both.targets, warped.targets)  # the transcript is the same, however fast it is said

def _longest(data: FeatureSet, batch: list[int]) -> int:
    return max(int(data.lengths[i]) for i in batch)


def test_shortest_first_epochs_keep_length_order_then_shuffle():
    data = _feature_set(200)
    batches = UtteranceBatches(data, 600, seed=3, shortest_first_epochs=1)
    first = [_longest(data, b) for b in batches._epoch_batches(0)]
    assert len(first) > 10 and first == sorted(first)
    second = [_longest(data, b) for b in batches._epoch_batches(1)]
    assert second != sorted(second)
    plain = UtteranceBatches(data, 600, seed=3)
    assert [_longest(data, b) for b in plain._epoch_batches(0)] != first  # off by default
    # the same utterances in each epoch, whatever the order
    assert sorted(i for b in batches._epoch_batches(0) for i in b) == list(range(len(data)))


@pytest.mark.parametrize("setting, value", [("--freq_warp", "-0.1"), ("--freq_warp", "1.0"), ("--freq_masks", "-1"),
                                            ("--time_width_ratio", "1.5"), ("--time_stretch", "1.0"),
                                            ("--generated_voices", "2")])
def test_out_of_range_augmentation_is_refused_before_any_speech_is_made(tmp_path, capsys, setting, value):
    from lstmlab.cli import main

    assert main(["train", "speech", setting, value, "--budget", "1", "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert setting.lstrip("-") in error and value in error
    assert not (tmp_path / "run" / "latest.pt").exists()


@pytest.mark.parametrize("spec_augment", [False, True])
def test_the_throughput_benchmark_trains_every_runner(spec_augment, monkeypatch):
    """benchmarks/speech_throughput.py: the plain torch.nn.LSTM baseline and the recipe's
    runners, in float32 and under bfloat16 autocast, take training steps on the recipe's
    batches, with SpecAugment off (the default: no mask) and on."""
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "benchmarks"))
    monkeypatch.delitem(sys.modules, "speech_throughput", raising=False)
    from speech_throughput import make_runners

    runners = make_runners(_feature_set(40), {"spec_augment": spec_augment, "batch_frames": 400})
    assert len(runners) == 5
    for name, runner in runners.items():
        assert runner.run(2) > 0, name
