"""A CTC acoustic model on `lstmlab.LSTM`: log-mel frames in, character posteriors out.

    features (B, T, F) ─ normalise ─ stack k frames (B, T/k, k·F) ─ LSTM stack
        (bidirectional, or unidirectional for streaming; LSTMP with proj_size)
        ─ dropout ─ linear ─ log-softmax (B, T/k, V)      V = characters + the CTC blank (0)

Normalisation is part of the model, so a saved model carries it: ``utterance`` scales
each utterance's bands to zero mean and unit variance (needs the whole utterance);
``global`` uses the training set's per-band mean and standard deviation, kept in the
buffers ``feature_mean`` / ``feature_std`` (the streaming configuration needs it).
Stacking k frames (Sak et al. 2015) shortens the sequence k times: k=3 turns 100 frames
per second into 33 steps per second, still more than the characters of fast speech.
``cell="gru"`` is torch's GRU, its hidden size scaled to the LSTM model's parameter count.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import lstmlab
from lstmlab.config import choice
from lstmlab.models import count_parameters
from lstmlab.models.recurrent import VARIANT_CHOICES, parse_variants, recurrent_stack


@dataclass
class AcousticModelConfig:
    """Sizes and options of the acoustic model."""

    cell: str = choice("lstm", ("lstm", "gru"))  # gru: the baseline, at the LSTM model's parameter count
    hidden_size: int = 320  # units per direction
    num_layers: int = 3  # stacked recurrent layers
    bidirectional: bool = True  # False: the streaming configuration (use normalization=global)
    proj_size: int = 0  # LSTMP (Sak et al. 2014): project h to this size; 0 = none
    stack: int = 3  # frames stacked into one step (subsampling by this factor)
    normalization: str = choice("utterance", ("utterance", "global"))  # per utterance, or training-set statistics
    dropout: float = 0.0  # between layers and before the output layer (off: at CPU budgets the model underfits)
    variants: str = ""  # lstmlab.LSTM variants, comma-separated: peephole,layer_norm,coupled
    variant: str = choice("", VARIANT_CHOICES)  # Greff et al.'s LSTM variant (V, NIG, ..., FGR); "" = plain cell
    match_parameters: bool = True  # gru: scale hidden_size to the LSTM model's parameter count
    engine: str = choice("fused", ("auto", "reference", "native", "fused"))  # fused: fastest with packed lengths


def check_config(config: AcousticModelConfig) -> None:
    """ValueError naming the option when `config` cannot build a model (called before any
    speech is synthesised, and by the model itself)."""
    if config.stack < 1:
        raise ValueError(f"stack: expected a positive number of frames, got {config.stack}")
    if config.cell != "lstm":
        lstm_only = {"variants": config.variants, "variant": config.variant, "proj_size": config.proj_size}
        given = [name for name, value in lstm_only.items() if value]
        if given:
            off = " ".join(f"--{name} {0 if name == 'proj_size' else repr('')}" for name in given)
            raise ValueError(f"{', '.join(f'{name}={lstm_only[name]!r}' for name in given)}: lstmlab.LSTM options, "
                             f"and cell={config.cell!r} (torch's GRU) has none; turn them off (on the command line: "
                             f"{off})")
    parse_variants(config.variants)


class AcousticModel(nn.Module):
    """``model(features (B, T, F), lengths (B,)) -> (log_probs (B, T', V), out_lengths (B,))``,
    T' = ceil(T / stack). See the module docstring."""

    def __init__(self, config: AcousticModelConfig, n_features: int, n_labels: int):
        super().__init__()
        check_config(config)
        self.config, self.n_features, self.n_labels = config, n_features, n_labels
        self.hidden_size = matched_hidden_size(config, n_features, n_labels)
        options = parse_variants(config.variants)
        if config.proj_size:
            options["proj_size"] = config.proj_size
        self.recurrent = recurrent_stack(config.cell, n_features * config.stack, self.hidden_size, config.num_layers,
                                         bidirectional=config.bidirectional, dropout=config.dropout,
                                         batch_first=True, engine=config.engine if config.cell == "lstm" else "auto",
                                         variant=config.variant, **options)
        top = (config.proj_size or self.hidden_size) * (2 if config.bidirectional else 1)
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(top, n_labels)
        self.register_buffer("feature_mean", torch.zeros(n_features))
        self.register_buffer("feature_std", torch.ones(n_features))

    @property
    def lstm(self) -> lstmlab.LSTM | None:
        return self.recurrent if isinstance(self.recurrent, lstmlab.LSTM) else None

    def set_statistics(self, mean: Tensor, std: Tensor) -> None:
        """The training set's per-band mean and standard deviation (global normalisation)."""
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std.clamp_min(1e-5))

    def normalize(self, features: Tensor, lengths: Tensor) -> Tensor:
        """(B, T, F) -> normalised (B, T, F); padding frames (beyond `lengths`) become 0."""
        valid = (torch.arange(features.shape[1], device=features.device)[None, :] < lengths[:, None]).unsqueeze(-1)
        if self.config.normalization == "global":
            normalised = (features - self.feature_mean) / self.feature_std
        else:
            count = lengths.clamp_min(1).to(features.dtype)[:, None, None]
            mean = (features * valid).sum(1, keepdim=True) / count
            var = (((features - mean) * valid) ** 2).sum(1, keepdim=True) / count
            normalised = (features - mean) / var.sqrt().clamp_min(1e-5)
        return normalised * valid

    def stack_frames(self, features: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, F) -> (B, ceil(T/k), k·F), zero-padded at the end; lengths -> ceil(lengths/k)."""
        k = self.config.stack
        batch, frames, width = features.shape
        padded = -(-frames // k) * k
        if padded != frames:
            features = torch.nn.functional.pad(features, (0, 0, 0, padded - frames))
        return features.reshape(batch, padded // k, k * width), torch.div(lengths + k - 1, k, rounding_mode="floor")

    def forward(self, features: Tensor, lengths: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """mask: optional (B, T, F) SpecAugment mask, multiplied into the normalised features."""
        if features.dim() != 3 or features.shape[-1] != self.n_features:
            raise ValueError(f"features: expected (B, T, {self.n_features}), got {tuple(features.shape)}")
        normalised = self.normalize(features, lengths)
        if mask is not None:
            normalised = normalised * mask
        steps, out_lengths = self.stack_frames(normalised, lengths)
        packed = pack_padded_sequence(steps, out_lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, _ = self.recurrent(packed)
        output, _ = pad_packed_sequence(output, batch_first=True, total_length=steps.shape[1])
        # float(): CTC needs float32 log-probabilities, also where autocast ran the output layer in bfloat16
        return self.output(self.dropout(output)).float().log_softmax(-1), out_lengths

    def step_logits(self, top: Tensor) -> Tensor:
        """The output layer on the recurrent stack's top output (..., D·P) -> log-probs (..., V)."""
        return self.output(top).log_softmax(-1)


def matched_hidden_size(config: AcousticModelConfig, n_features: int, n_labels: int) -> int:
    """hidden_size as configured for the LSTM; for the GRU with match_parameters, scaled
    (bisection) so the model has the LSTM model's parameter count."""
    if config.cell == "lstm" or not config.match_parameters:
        return config.hidden_size
    target = _parameters(dataclasses.replace(config, cell="lstm"), n_features, n_labels)
    low, high = 1, config.hidden_size * 2
    while high - low > 1:  # parameters grow with the hidden size
        middle = (low + high) // 2
        low, high = (middle, high) if _parameters(dataclasses.replace(config, hidden_size=middle), n_features,
                                                  n_labels) < target else (low, middle)
    return min((low, high), key=lambda size: abs(_parameters(dataclasses.replace(config, hidden_size=size),
                                                            n_features, n_labels) - target))


def _parameters(config: AcousticModelConfig, n_features: int, n_labels: int) -> int:
    with torch.device("meta"):
        sized = dataclasses.replace(config, match_parameters=False, engine="auto")  # the fused engine has no meta
        return count_parameters(AcousticModel(sized, n_features, n_labels))
