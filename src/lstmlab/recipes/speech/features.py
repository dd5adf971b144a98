"""Log-mel features and augmentation for the speech recipe (torch only; no torchaudio).

    wave (N,) at 16 kHz ─ torch.stft (Hann 25 ms, hop 10 ms, n_fft 512, centred)
        ─ |·|² ─ HTK mel filterbank (80 triangles, 20-7600 Hz) ─ log(· + 1e-6)
        ─> (1 + N // hop, 80); a batch (B, N) -> (B, 1 + N // hop, 80)

    spec_augment(features (T, F), g)   -> (T, F) copy with bands and time spans set to 0
    frequency_warp(features (T, F), α) -> (T, F) as if every frequency were scaled by α
    augment_wave(wave (N,), g)         -> (N,) in [-1, 1]: gain, noise, channel, reverb

Normalisation and frame stacking belong to the model (`lstmlab.models.acoustic`), so a
saved model carries them. `mel_filterbank` equals torchaudio's ``melscale_fbanks(norm=None, mel_scale="htk")``.
`spec_augment` is SpecAugment's masking (Park et al. 2019); `frequency_warp` is vocal
tract length perturbation (VTLP, Jaitly & Hinton 2013) on cached features; `augment_wave` makes clean
synthesised speech look more like real recordings. Both draw every random number from
the given `torch.Generator`, so a seed reproduces them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor

LOG_FLOOR = 1e-6  # log(0) of digital silence would be -inf


@dataclass
class FeatureConfig:
    """How audio becomes log-mel frames."""

    sample_rate: int = 16000  # audio is resampled to this rate
    n_mels: int = 80  # mel bands
    window_ms: float = 25.0  # analysis window
    hop_ms: float = 10.0  # frame step
    n_fft: int = 512  # FFT size (the window is zero-padded to it)
    f_min: float = 20.0  # lowest filter edge (Hz)
    f_max: float = 7600.0  # highest filter edge (Hz)


def hz_to_mel(hz: Tensor) -> Tensor:
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def mel_to_hz(mel: Tensor) -> Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> Tensor:
    """(n_freqs, n_mels) triangles equally spaced on the HTK mel scale, peak 1 (no area norm).

    Bin k of an n_fft = 2·(n_freqs - 1) point FFT sits at k·sample_rate/n_fft Hz; filter m
    rises from edge m to its centre m+1 and falls to edge m+2."""
    if n_freqs < 2 or n_mels < 1 or not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"mel_filterbank: expected n_freqs >= 2, n_mels >= 1 and 0 <= f_min < f_max <= "
                         f"sample_rate/2, got n_freqs={n_freqs}, n_mels={n_mels}, f_min={f_min}, f_max={f_max}, "
                         f"sample_rate={sample_rate}")
    freqs = torch.arange(n_freqs, dtype=torch.float64) * (sample_rate / (2 * (n_freqs - 1)))
    low, high = hz_to_mel(torch.tensor([f_min, f_max], dtype=torch.float64)).tolist()
    edges = mel_to_hz(torch.linspace(low, high, n_mels + 2, dtype=torch.float64))  # (n_mels + 2,) Hz
    widths = edges[1:] - edges[:-1]  # (n_mels + 1,)
    offset = freqs[:, None] - edges[None, :]  # (n_freqs, n_mels + 2): f - f_m
    rising = offset[:, :-2] / widths[:-1]  # (f - f_m) / (f_{m+1} - f_m)
    falling = -offset[:, 2:] / widths[1:]  # (f_{m+2} - f) / (f_{m+2} - f_{m+1})
    return torch.minimum(rising, falling).clamp_min(0.0).to(torch.float32)


@functools.lru_cache(maxsize=8)
def _analysis(config_key: tuple) -> tuple[Tensor, Tensor]:
    """The Hann window and filterbank of a configuration, built once: log_mel runs per utterance."""
    sample_rate, n_mels, window_ms, _, n_fft, f_min, f_max = config_key
    win_length = round(window_ms * sample_rate / 1000)
    return (torch.hann_window(win_length, periodic=True),
            mel_filterbank(n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate))


def log_mel(wave: Tensor, config: FeatureConfig | None = None) -> Tensor:
    """(N,) -> (1 + N // hop, n_mels); a batch (B, N) -> (B, 1 + N // hop, n_mels)."""
    config = config or FeatureConfig()
    if wave.dim() not in (1, 2) or wave.shape[-1] == 0:
        raise ValueError(f"log_mel: expected a non-empty wave (N,) or batch (B, N), got shape {tuple(wave.shape)}")
    hop = round(config.hop_ms * config.sample_rate / 1000)
    win_length = round(config.window_ms * config.sample_rate / 1000)
    if not (hop > 0 and 0 < win_length <= config.n_fft):
        raise ValueError(f"log_mel: expected 0 < hop and 0 < window <= n_fft samples, got hop {hop}, "
                         f"window {win_length}, n_fft {config.n_fft}")
    window, filters = _analysis((config.sample_rate, config.n_mels, config.window_ms, config.hop_ms,
                                 config.n_fft, config.f_min, config.f_max))
    # centred frames: frame t covers samples t·hop ± n_fft/2. Reflection needs more samples
    # than the pad; a shorter wave (a blip, a streaming tail) is padded with zeros instead.
    mode = "reflect" if wave.shape[-1] > config.n_fft // 2 else "constant"
    spectrum = torch.stft(wave.to(torch.float32), config.n_fft, hop, win_length, window.to(wave.device),
                          center=True, pad_mode=mode, return_complex=True)  # (..., n_fft/2 + 1, frames)
    power = spectrum.real.square() + spectrum.imag.square()  # |X|² without abs's square root
    return torch.log(power.transpose(-1, -2) @ filters.to(wave.device) + LOG_FLOOR)


def band_centres(config: FeatureConfig) -> Tensor:
    """(n_mels,) float64 centre frequency (Hz) of each mel band: where its triangle peaks."""
    low, high = hz_to_mel(torch.tensor([config.f_min, config.f_max], dtype=torch.float64)).tolist()
    return mel_to_hz(torch.linspace(low, high, config.n_mels + 2, dtype=torch.float64))[1:-1]


def frequency_warp(features: Tensor, factor: float, config: FeatureConfig | None = None) -> Tensor:
    """(T, F) log-mel -> (T, F) log-mel of the same sound with every frequency scaled by `factor`.

    A longer or shorter vocal tract moves every formant by about the same ratio, which is
    most of what tells one voice from another; scaling the spectrum by a random ratio per
    training utterance (VTLP, Jaitly & Hinton 2013) shows the model voices it never heard.
    Band m of the result is the input's spectrum at centre_m / factor, interpolated
    linearly between the two bands around it (clamped at the edges: a band whose source
    lies outside the analysed range repeats the outermost band)."""
    config = config or FeatureConfig()
    if features.dim() != 2 or features.shape[1] != config.n_mels:
        raise ValueError(f"frequency_warp: expected (T, {config.n_mels}) log-mel frames, got {tuple(features.shape)}")
    if not factor > 0:
        raise ValueError(f"frequency_warp: expected a positive factor, got {factor}")
    mel_step = (hz_to_mel(torch.tensor(config.f_max, dtype=torch.float64))
                - hz_to_mel(torch.tensor(config.f_min, dtype=torch.float64))) / (config.n_mels + 1)
    source_mel = hz_to_mel(band_centres(config) / factor)  # (F,) where each band reads from
    position = ((source_mel - hz_to_mel(torch.tensor(config.f_min, dtype=torch.float64))) / mel_step - 1)
    position = position.clamp(0, config.n_mels - 1)  # fractional band index (F,)
    below = position.floor().long().clamp(max=config.n_mels - 2)
    weight = (position - below).to(features.dtype)  # (F,) share of the band above
    return features[:, below] * (1 - weight) + features[:, below + 1] * weight


def time_stretch(features: Tensor, factor: float) -> Tensor:
    """(T, F) frames -> (T', F) frames of the same speech spoken `factor` times as fast
    (T' = round(T / factor), at least 1): frame j of the result is the input at time
    j × factor, interpolated linearly between the two frames around it. A change of tempo
    alone (pitch and formants stay, unlike resampling the wave); with `frequency_warp` it
    makes the speed perturbation of Ko et al. (2015) on cached features, so each epoch
    hears a training utterance at a new speed."""
    if features.dim() != 2 or not len(features):
        raise ValueError(f"time_stretch: expected (T, F) frames with T >= 1, got {tuple(features.shape)}")
    if not factor > 0:
        raise ValueError(f"time_stretch: expected a positive factor, got {factor}")
    length = max(1, round(len(features) / factor))
    position = (torch.arange(length, dtype=torch.float64) * factor).clamp(max=len(features) - 1)
    below = position.floor().long().clamp(max=max(0, len(features) - 2))
    above = (below + 1).clamp(max=len(features) - 1)
    weight = (position - below).to(features.dtype).unsqueeze(1)  # (T', 1) share of the frame after
    return features[below] * (1 - weight) + features[above] * weight


def _randint(generator: torch.Generator, low: int, high: int) -> int:
    """A whole number in [low, high] (both included)."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def spec_augment(features: Tensor, generator: torch.Generator, freq_masks: int = 2, freq_width: int = 15,
                 time_masks: int = 2, time_width_ratio: float = 0.05) -> Tensor:
    """(T, F) -> a copy with `freq_masks` bands of 0..freq_width mel bins and `time_masks`
    spans of 0..time_width_ratio·T frames set to 0 (the mean, after normalisation).

    The width is uniform, then the start uniform among the places the mask fits (Park et
    al. 2019); the time width scales with the utterance so short ones are not wiped out."""
    if features.dim() != 2:
        raise ValueError(f"spec_augment: expected (T, F), got shape {tuple(features.shape)}")
    out = features.clone()
    frames, bands = out.shape
    for _ in range(freq_masks):
        width = _randint(generator, 0, min(freq_width, bands))
        start = _randint(generator, 0, bands - width)
        out[:, start:start + width] = 0
    for _ in range(time_masks):
        width = _randint(generator, 0, min(int(time_width_ratio * frames), frames))
        start = _randint(generator, 0, frames - width)
        out[start:start + width] = 0
    return out


def augment_wave(wave: Tensor, generator: torch.Generator, sample_rate: int = 16000,
                 noise_snr_db: tuple[float, float] = (5.0, 40.0), gain_db: tuple[float, float] = (-12.0, 6.0),
                 telephone_prob: float = 0.15, reverb_prob: float = 0.2) -> Tensor:
    """(N,) -> a recording-like (N,) copy in [-1, 1]: reverb, noise, channel, gain, clipping.

    The steps run in the order a recording meets them: the room's echo, the room's noise,
    the microphone's or phone line's band, the input gain, and clipping at full scale."""
    if wave.dim() != 1:
        raise ValueError(f"augment_wave: expected a wave (N,), got shape {tuple(wave.shape)}")
    out = wave.detach().to(torch.float32, copy=True)
    length = len(out)
    if length == 0:
        return out
    # the decisions first, so that each seed makes the same choices whatever the wave's length
    reverb = float(torch.rand((), generator=generator)) < reverb_prob
    telephone = float(torch.rand((), generator=generator)) < telephone_prob and sample_rate > 8000
    pink = float(torch.rand((), generator=generator)) < 0.5
    snr_db, gain = _uniform(generator, *noise_snr_db), _uniform(generator, *gain_db)
    peak = out.abs().max()

    if reverb:  # a room: exponentially decaying noise, 60 dB down after 0.1-0.4 s (the RT60)
        taps = max(2, int(_uniform(generator, 0.1, 0.4) * sample_rate))
        response = torch.randn(taps, generator=generator) * torch.exp(-6.9 * torch.arange(taps) / taps)
        # linear, not circular, convolution: zero-pad both to at least N + taps - 1, and to a
        # power of two, which FFTs fastest (an odd length with a large prime factor is ~10x slower)
        size = 1 << (length + taps - 2).bit_length()
        wet = torch.fft.irfft(torch.fft.rfft(out, size) * torch.fft.rfft(response, size), size)[:length]
        wet = wet * (out.norm() / wet.norm().clamp_min(1e-8))  # as loud as the dry signal
        mix = _uniform(generator, 0.2, 0.7)
        out = (1 - mix) * out + mix * wet
        out = out * (peak / out.abs().max().clamp_min(1e-8))  # keep the original peak level

    noise = torch.randn(length, generator=generator)
    if pink:  # pink-ish: a leaky integrator y[n] = x[n] + 0.98·y[n-1] tilts the spectrum down
        from scipy.signal import lfilter

        noise = torch.from_numpy(lfilter([1.0], [1.0, -0.98], noise.numpy())).to(torch.float32)
    signal_power = out.square().mean()
    if signal_power > 0:  # digital silence has no SNR; it stays silent
        scale = torch.sqrt(signal_power / (10 ** (snr_db / 10)) / noise.square().mean().clamp_min(1e-12))
        out = out + scale * noise

    if telephone:  # a phone line: through 8 kHz and back, nothing above 4 kHz survives
        from lstmlab.data.audio import resample

        out = resample(resample(out, sample_rate, 8000), 8000, sample_rate)[:length]
        out = torch.nn.functional.pad(out, (0, length - len(out)))

    out = out * (10 ** (gain / 20))
    return out.clamp_(-1.0, 1.0)  # a too-hot input clips, as a real one would
