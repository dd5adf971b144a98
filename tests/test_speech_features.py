"""Speech features: the mel filterbank by hand, log-mel against numpy, normalisation, frame
stacking, SpecAugment and wave augmentation (reproducible, shape- and range-preserving)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lstmlab.recipes.speech.features import (FeatureConfig, augment_wave, band_centres, frequency_warp, hz_to_mel,
                                             log_mel, mel_filterbank, mel_to_hz, spec_augment)


def test_filterbank_equals_hand_computed_triangles():
    # n_fft = 8 at 8 kHz: 5 bins at 0, 1000, 2000, 3000, 4000 Hz. Two filters between 0 and
    # 4000 Hz need 4 points equally spaced in mel: 0, M/3, 2M/3, M with M = mel(4000), so
    # in Hz f1 = 700·((1 + 4000/700)^(1/3) - 1) and f2 = 700·((1 + 4000/700)^(2/3) - 1).
    f1, f2, f3 = 700 * ((1 + 4000 / 700) ** (1 / 3) - 1), 700 * ((1 + 4000 / 700) ** (2 / 3) - 1), 4000.0
    assert f1 == pytest.approx(620.58, abs=0.01) and f2 == pytest.approx(1791.33, abs=0.01)
    expected = [
        # filter 0 rises 0 -> f1, falls f1 -> f2;  filter 1 rises f1 -> f2, falls f2 -> 4000
        [0.0, 0.0],  # 0 Hz: the start of filter 0's rise
        [(f2 - 1000) / (f2 - f1), (1000 - f1) / (f2 - f1)],  # 1000 Hz: between f1 and f2
        [0.0, (f3 - 2000) / (f3 - f2)],  # 2000 Hz: beyond f2, filter 1 falling
        [0.0, (f3 - 3000) / (f3 - f2)],
        [0.0, 0.0],  # 4000 Hz: filter 1's end
    ]
    filters = mel_filterbank(5, 0.0, 4000.0, 2, 8000)
    assert filters.shape == (5, 2) and filters.dtype == torch.float32
    torch.testing.assert_close(filters, torch.tensor(expected, dtype=torch.float32))
    torch.testing.assert_close(filters, torch.tensor([[0, 0], [0.6759, 0.3241], [0, 0.9055], [0, 0.4528], [0, 0]]),
                               atol=1e-4, rtol=0)


def test_filterbank_peaks_are_one_at_the_centres():
    # the default 80 filters: each triangle reaches 1 where a bin falls on its centre, never above
    filters = mel_filterbank(257, 20.0, 7600.0, 80, 16000)
    assert filters.shape == (257, 80) and filters.min() == 0 and filters.max() <= 1 + 1e-6
    assert (filters.sum(0) > 0).all()  # no empty band at 512-point resolution
    assert mel_to_hz(hz_to_mel(torch.tensor(1000.0))).item() == pytest.approx(1000.0, rel=1e-5)
    assert hz_to_mel(torch.tensor(1000.0)).item() == pytest.approx(2595 * math.log10(1 + 1000 / 700))


def test_filterbank_rejects_bad_ranges():
    with pytest.raises(ValueError, match="f_max"):
        mel_filterbank(257, 20.0, 9000.0, 80, 16000)  # above Nyquist


def test_sine_peaks_in_the_band_centred_nearest_its_frequency():
    config = FeatureConfig()
    t = torch.arange(16000) / 16000
    features = log_mel(0.5 * torch.sin(2 * math.pi * 1000 * t), config)
    edges = mel_to_hz(torch.linspace(hz_to_mel(torch.tensor(config.f_min)).item(),
                                     hz_to_mel(torch.tensor(config.f_max)).item(), config.n_mels + 2))
    nearest = int((edges[1:-1] - 1000).abs().argmin())
    assert int(features[5:-5].mean(0).argmax()) == nearest


@pytest.mark.parametrize("n", [1, 5, 159, 160, 256, 257, 1000, 16000, 16159])
def test_frame_count(n):
    # very short waves (shorter than n_fft/2 + 1) take the zero-padded path
    assert log_mel(torch.randn(n)).shape == (1 + n // 160, 80)


def _numpy_log_mel(wave: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The definition written out: centred frames, periodic Hann window zero-padded to n_fft
    in the middle, |rfft|², the filterbank, log(· + 1e-6)."""
    hop = round(config.hop_ms * config.sample_rate / 1000)
    win_length = round(config.window_ms * config.sample_rate / 1000)
    pad = config.n_fft // 2
    padded = np.pad(wave, pad, mode="reflect" if len(wave) > pad else "constant").astype(np.float64)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win_length) / win_length)  # periodic
    window = np.zeros(config.n_fft)
    left = (config.n_fft - win_length) // 2
    window[left:left + win_length] = hann
    frames = np.stack([padded[t * hop:t * hop + config.n_fft] * window for t in range(1 + len(wave) // hop)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    filters = mel_filterbank(config.n_fft // 2 + 1, config.f_min, config.f_max, config.n_mels,
                             config.sample_rate).double().numpy()
    return np.log(power @ filters + 1e-6)


@pytest.mark.parametrize("n", [20, 5])  # reflect padding, and the zero padding of a wave shorter than n_fft/2 + 1
def test_log_mel_equals_numpy(n):
    # a tiny configuration: window 8 samples, hop 4, n_fft 16, 4 bands over 0-8000 Hz
    config = FeatureConfig(sample_rate=16000, n_mels=4, window_ms=0.5, hop_ms=0.25, n_fft=16, f_min=0.0,
                           f_max=8000.0)
    wave = np.array([0.1, -0.4, 0.3, 0.9, -0.2, 0.05, -0.7, 0.6, 0.2, -0.1,
                     0.4, -0.3, 0.8, -0.9, 0.0, 0.25, -0.55, 0.35, 0.15, -0.6], dtype=np.float32)[:n]
    expected = _numpy_log_mel(wave, config)
    got = log_mel(torch.from_numpy(wave), config)
    assert got.shape == (1 + n // 4, 4)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_batch_equals_each_utterance():
    waves = 0.1 * torch.randn(3, 8000)
    batch = log_mel(waves)
    assert batch.shape == (3, 51, 80)
    for row in range(3):
        torch.testing.assert_close(batch[row], log_mel(waves[row]), atol=1e-4, rtol=1e-4)


def test_log_mel_rejects_empty_and_3d():
    for bad in (torch.zeros(0), torch.zeros(2, 2, 100)):
        with pytest.raises(ValueError, match="log_mel"):
            log_mel(bad)


def test_log_mel_of_silence_is_the_floor():
    assert torch.allclose(log_mel(torch.zeros(1600)), torch.tensor(math.log(1e-6)))


def test_spec_augment_masks_whole_bands_and_frames_reproducibly():
    features = torch.randn(100, 80) + 5  # no zeros of its own
    before = features.clone()
    first = spec_augment(features, torch.Generator().manual_seed(7))
    again = spec_augment(features, torch.Generator().manual_seed(7))
    assert torch.equal(first, again)
    assert torch.equal(features, before)  # the input is untouched
    masked_any = False
    for seed in range(20):
        out = spec_augment(features, torch.Generator().manual_seed(seed), freq_masks=2, freq_width=15,
                           time_masks=2, time_width_ratio=0.05)
        zero = out == 0
        bands, frames = zero.all(0), zero.all(1)
        assert torch.equal(zero, bands[None, :] | frames[:, None])  # only whole bands and frames
        assert torch.equal(out[~zero], features[~zero])  # the rest unchanged
        assert int(bands.sum()) <= 2 * 15 and int(frames.sum()) <= 2 * 5
        masked_any |= bool(zero.any())
    assert masked_any
    assert not torch.equal(spec_augment(features, torch.Generator().manual_seed(1)),
                           spec_augment(features, torch.Generator().manual_seed(2)))


@pytest.mark.parametrize("factor", [0.85, 0.92, 1.1, 1.2])
def test_frequency_warp_moves_a_tone_as_scaling_its_frequency_would(factor):
    """A 1 kHz tone's features warped by a factor peak in the band of the tone at 1 kHz × factor."""
    config = FeatureConfig()
    t = torch.arange(16000) / 16000
    tone = log_mel(0.5 * torch.sin(2 * math.pi * 1000 * t), config)[5:-5]
    scaled = log_mel(0.5 * torch.sin(2 * math.pi * 1000 * factor * t), config)[5:-5]
    warped = frequency_warp(tone, factor, config)
    assert int(warped.mean(0).argmax()) == int(scaled.mean(0).argmax())
    assert int(warped.mean(0).argmax()) != int(tone.mean(0).argmax())


def test_frequency_warp_by_one_is_the_identity_and_stays_within_the_input_range():
    features = torch.randn(30, 80)
    assert torch.equal(frequency_warp(features, 1.0), features)
    for factor in (0.8, 1.25):
        warped = frequency_warp(features, factor)
        assert warped.shape == features.shape
        assert warped.min() >= features.min() and warped.max() <= features.max()  # interpolation only


def test_frequency_warp_band_by_hand():
    """Band m reads the spectrum at centre_m / factor: between two bands, linearly."""
    config = FeatureConfig(n_mels=10)
    centres = band_centres(config)
    features = torch.arange(10, dtype=torch.float64)[None, :].repeat(2, 1)  # value = band index
    factor = float(centres[6] / centres[4])  # band 6 reads exactly band 4's centre
    warped = frequency_warp(features, factor, config)
    assert warped[0, 6].item() == pytest.approx(4.0)
    assert warped[0, 0].item() == 0.0  # below the lowest band: clamped to it
    low = hz_to_mel(centres[5] / factor)
    between = (low - hz_to_mel(centres[3])) / (hz_to_mel(centres[4]) - hz_to_mel(centres[3]))
    assert warped[0, 5].item() == pytest.approx(3 + between.item())


def test_frequency_warp_rejects_bad_input():
    with pytest.raises(ValueError, match="expected \\(T, 80\\)"):
        frequency_warp(torch.zeros(5, 40), 1.1)
    with pytest.raises(ValueError, match="positive factor"):
        frequency_warp(torch.zeros(5, 80), 0.0)


def test_spec_augment_on_a_tiny_utterance():
    out = spec_augment(torch.ones(3, 4), torch.Generator().manual_seed(0), freq_width=15)
    assert out.shape == (3, 4)


def _sine(seconds: float = 1.0, rate: int = 16000) -> torch.Tensor:
    return 0.5 * torch.sin(2 * math.pi * 300 * torch.arange(int(seconds * rate)) / rate)


@pytest.mark.parametrize("telephone, reverb", [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (0.15, 0.2)])
def test_augment_wave_reproducible_same_length_in_range(telephone, reverb):
    wave = _sine()
    before = wave.clone()
    for seed in range(3):
        out = augment_wave(wave, torch.Generator().manual_seed(seed), telephone_prob=telephone, reverb_prob=reverb)
        again = augment_wave(wave, torch.Generator().manual_seed(seed), telephone_prob=telephone,
                             reverb_prob=reverb)
        assert torch.equal(out, again)
        assert out.shape == wave.shape and out.dtype == torch.float32
        assert out.abs().max() <= 1.0 and torch.isfinite(out).all()
        assert not torch.equal(out, wave)
    assert torch.equal(wave, before)
    assert not torch.equal(augment_wave(wave, torch.Generator().manual_seed(1)),
                           augment_wave(wave, torch.Generator().manual_seed(2)))


@pytest.mark.parametrize("n", [1, 7, 16001])  # odd lengths: 8 kHz and back gives one sample more
def test_augment_wave_keeps_odd_lengths(n):
    out = augment_wave(torch.rand(n) - 0.5, torch.Generator().manual_seed(0), telephone_prob=1.0, reverb_prob=1.0)
    assert out.shape == (n,)


def test_augment_wave_telephone_band_limits():
    wave = 0.1 * torch.randn(16000)
    out = augment_wave(wave, torch.Generator().manual_seed(0), noise_snr_db=(60.0, 60.0), gain_db=(0.0, 0.0),
                       telephone_prob=1.0, reverb_prob=0.0)
    power = np.abs(np.fft.rfft(out.numpy())) ** 2
    freqs = np.fft.rfftfreq(len(out), 1 / 16000)
    assert power[freqs > 4200].sum() < 0.01 * power.sum()  # white noise kept ~half its power above 4 kHz


def test_augment_wave_snr_and_gain():
    # with the SNR and the gain fixed, the added noise has the asked power
    wave = _sine()
    out = augment_wave(wave, torch.Generator().manual_seed(0), noise_snr_db=(10.0, 10.0), gain_db=(-6.0, -6.0),
                       telephone_prob=0.0, reverb_prob=0.0)
    noise = out / 10 ** (-6 / 20) - wave
    snr = 10 * math.log10(float(wave.square().mean() / noise.square().mean()))
    assert snr == pytest.approx(10.0, abs=0.01)


def test_augment_wave_of_silence_stays_finite():
    out = augment_wave(torch.zeros(1600), torch.Generator().manual_seed(0), telephone_prob=1.0, reverb_prob=1.0)
    assert torch.isfinite(out).all() and out.shape == (1600,)


@pytest.mark.parametrize("length", [100, 256, 257, 300, 1000, 16000])
@pytest.mark.parametrize("chunk", [7, 160, 1234, 100000])
def test_streaming_features_equal_the_whole_file(length, chunk):
    from lstmlab.recipes.speech.streaming import StreamingFeatures

    wave = torch.rand(length, generator=torch.Generator().manual_seed(length)) * 2 - 1
    streaming = StreamingFeatures(FeatureConfig())
    parts = [streaming.accept(wave[i:i + chunk]) for i in range(0, length, chunk)] + [streaming.finish()]
    torch.testing.assert_close(torch.cat(parts), log_mel(wave, FeatureConfig()), atol=1e-3, rtol=1e-4)
