"""An attention encoder-decoder for translation (Luong et al. 2015) on `lstmlab.LSTM`.

    source (B, S) ─ embedding ─ bidirectional LSTM (packed) ─ memory (B, S, H_dec)
                                       └ final states ─ bridge ─ decoder's initial state
    target (B, T) ─ embedding ─ LSTM decoder ─ h_t ─ attention over memory ─ context c_t
                    ↑ (input feeding: h̃_{t-1})    h̃_t = tanh(W_c [c_t; h_t]) ─ logits

Attention scores (Luong's three): ``dot`` h_t·m_s, ``general`` h_t·(W_a m_s), ``concat``
v·tanh(W_q h_t + W_k m_s); ``none`` drops attention (h̃_t = tanh(W_c h_t)): with
``reverse_source`` it is Sutskever et al. (2014)'s sequence-to-sequence model.

The attentional vector h̃ has the embedding's width, so the softmax reuses the target
embedding (``tie_embeddings``); with a joint vocabulary the source shares it too
(``share_embeddings``). ``cell="gru"`` is torch's GRU with the hidden sizes scaled so the
model keeps the LSTM model's parameter count (``match_parameters``).

All tensors are batch-first: tokens (B, T) int64, logits (B, T, V), attention (B, T, S).
Without input feeding the decoder runs over the whole target in one call (training and
scoring); with it, step by step. Decoding goes through `step`, one token per row.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstmlab.config import choice
from lstmlab.models import count_parameters
from lstmlab.models.recurrent import parse_variants, recurrent_stack


@dataclass
class Seq2SeqConfig:
    """Encoder, decoder and attention sizes and options."""

    cell: str = choice("lstm", ("lstm", "gru"))  # gru: the baseline, at the LSTM model's parameter count
    embedding_size: int = 256  # token embedding width E (also h̃'s width: the softmax reuses the embedding)
    encoder_hidden: int = 256  # encoder units per direction
    encoder_layers: int = 1  # stacked encoder layers
    bidirectional: bool = True  # bidirectional encoder
    decoder_hidden: int = 512  # decoder units
    decoder_layers: int = 1  # stacked decoder layers
    attention: str = choice("general", ("general", "dot", "concat", "none"))  # Luong score; none = no attention
    input_feeding: bool = False  # feed h̃_{t-1} to the decoder (Luong): slower, the decoder runs step by step
    reverse_source: bool = False  # read the source backwards (Sutskever et al. 2014)
    tie_embeddings: bool = True  # the softmax reuses the target embedding
    share_embeddings: bool = True  # source and target share one embedding (joint vocabulary)
    dropout: float = 0.2  # on embeddings, between layers and on h̃
    label_smoothing: float = 0.1  # training loss: this much probability spread over the vocabulary
    encoder_variants: str = ""  # lstmlab.LSTM variants of the encoder, comma-separated: peephole,layer_norm,coupled
    decoder_variants: str = ""  # ... of the decoder
    match_parameters: bool = True  # gru: scale the hidden sizes to the LSTM model's parameter count
    engine: str = choice("auto", ("auto", "reference", "native", "fused"))  # lstmlab.LSTM engine


class Memory(NamedTuple):
    """The encoded source, for attention: what `Seq2Seq.encode` returns."""

    values: Tensor  # (B, S, H_dec): encoder outputs in the decoder's width (attention reads these)
    keys: Tensor  # (B, S, K): what the decoder's h_t is scored against (K = H_dec, or A for concat)
    mask: Tensor  # (B, S) bool: True at real source tokens
    state: Any  # the decoder's initial recurrent state ((h, c) for the LSTM, h for the GRU)


class DecoderState(NamedTuple):
    """What carries from one decoder step to the next."""

    recurrent: Any  # (h, c) of shapes (L, B, H_dec), or h for the GRU
    feed: Tensor | None  # (B, E): h̃_{t-1} with input feeding, else None


class Seq2Seq(nn.Module):
    """See the module docstring. ``model(source, lengths, target_in) -> logits (B, T, V)``."""

    def __init__(self, config: Seq2SeqConfig, vocab_size: int, pad_id: int):
        super().__init__()
        self.config, self.vocab_size, self.pad_id = config, vocab_size, pad_id
        encoder_hidden, decoder_hidden = matched_hidden_sizes(config, vocab_size)
        self.encoder_hidden, self.decoder_hidden = encoder_hidden, decoder_hidden
        E, directions = config.embedding_size, 2 if config.bidirectional else 1
        self.source_embedding = nn.Embedding(vocab_size, E, padding_idx=pad_id)
        self.target_embedding = self.source_embedding if config.share_embeddings else \
            nn.Embedding(vocab_size, E, padding_idx=pad_id)
        self.encoder = recurrent_stack(config.cell, E, encoder_hidden, config.encoder_layers,
                                       bidirectional=config.bidirectional, dropout=config.dropout, batch_first=True,
                                       engine=config.engine, **parse_variants(config.encoder_variants))
        decoder_input = E + (E if config.input_feeding else 0)
        self.decoder = recurrent_stack(config.cell, decoder_input, decoder_hidden, config.decoder_layers,
                                       dropout=config.dropout, batch_first=True, engine=config.engine,
                                       **parse_variants(config.decoder_variants))
        encoded = directions * encoder_hidden
        states = 2 if config.cell == "lstm" else 1  # the bridge maps (h[, c]) of the top encoder layer
        self.bridge = nn.ModuleList(nn.Linear(encoded, config.decoder_layers * decoder_hidden)
                                    for _ in range(states))
        attending = config.attention != "none"
        self.memory = nn.Linear(encoded, decoder_hidden, bias=False) if attending and encoded != decoder_hidden \
            else nn.Identity()
        self.score_keys = self.score_query = self.score_vector = None
        if config.attention == "general":
            self.score_keys = nn.Linear(decoder_hidden, decoder_hidden, bias=False)
        elif config.attention == "concat":
            self.score_keys = nn.Linear(decoder_hidden, decoder_hidden, bias=False)
            self.score_query = nn.Linear(decoder_hidden, decoder_hidden)
            self.score_vector = nn.Linear(decoder_hidden, 1, bias=False)
        self.combine = nn.Linear(decoder_hidden * (2 if attending else 1), E, bias=False)  # W_c
        self.output_bias = nn.Parameter(torch.zeros(vocab_size))
        self.output_weight = None if config.tie_embeddings else nn.Parameter(torch.empty(vocab_size, E))
        if self.output_weight is not None:
            nn.init.normal_(self.output_weight, std=E ** -0.5)
        self.dropout = nn.Dropout(config.dropout)

    # ----------------------------------------------------------------- encoder
    def encode(self, source: Tensor, lengths: Tensor, *, trace: bool = False):
        """source (B, S) int64 padded with pad_id, lengths (B,) -> Memory; with trace=True
        (LSTM encoder) -> (Memory, the encoder's `lstmlab.Trace`, in its reading order)."""
        check_tokens("source", source)
        if self.config.reverse_source:
            source = reverse_padded(source, lengths, self.pad_id)
        embedded = self.dropout(self.source_embedding(source))  # (B, S, E)
        extra = {"trace": True} if trace else {}
        if bool((lengths == source.shape[1]).all()):  # no padding: unpacked runs on the fused kernels
            outputs, final, *encoder_trace = self.encoder(embedded, **extra)  # (B, S, D*H)
        else:
            packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
            outputs, final, *encoder_trace = self.encoder(packed, **extra)
            outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=source.shape[1])
        values = self.memory(outputs)
        keys = values if self.score_keys is None else self.score_keys(values)
        mask = torch.arange(source.shape[1], device=source.device)[None, :] < lengths.to(source.device)[:, None]
        memory = Memory(values, keys, mask, self._bridge(final))
        return (memory, encoder_trace[0]) if trace else memory

    def _bridge(self, final: Any) -> Any:
        """The top encoder layer's final states, both directions -> the decoder's initial state."""
        parts = final if isinstance(final, tuple) else (final,)
        directions = 2 if self.config.bidirectional else 1
        layers, hidden = self.config.decoder_layers, self.decoder_hidden
        states = []
        for index, (part, linear) in enumerate(zip(parts, self.bridge)):
            top = part[-directions:].transpose(0, 1).reshape(part.shape[1], -1)  # (B, D*H_enc)
            mapped = linear(top).view(-1, layers, hidden).transpose(0, 1).contiguous()  # (L, B, H_dec)
            states.append(torch.tanh(mapped) if index == 0 else mapped)  # h in (-1, 1); c unbounded
        return tuple(states) if len(states) == 2 else states[0]

    # ----------------------------------------------------------------- decoder
    def attend(self, memory: Memory, hidden: Tensor) -> tuple[Tensor, Tensor | None]:
        """hidden (B, T, H_dec) -> (h̃ (B, T, E), attention weights (B, T, S) or None)."""
        if self.config.attention == "none":
            return torch.tanh(self.combine(hidden)), None
        if self.config.attention == "concat":
            query = self.score_query(hidden)  # (B, T, H)
            scores = self.score_vector(torch.tanh(query[:, :, None, :] + memory.keys[:, None, :, :])).squeeze(-1)
        else:
            scores = torch.bmm(hidden, memory.keys.transpose(1, 2))  # (B, T, S)
        scores = scores.masked_fill(~memory.mask[:, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        context = torch.bmm(weights, memory.values)  # (B, T, H)
        return torch.tanh(self.combine(torch.cat([context, hidden], dim=-1))), weights

    def logits(self, attentional: Tensor) -> Tensor:
        """h̃ (..., E) -> logits (..., V)."""
        weight = self.target_embedding.weight if self.output_weight is None else self.output_weight
        return F.linear(self.dropout(attentional), weight, self.output_bias)

    def decode(self, memory: Memory, target_in: Tensor) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: target_in (B, T) (starting with BOS) -> (logits (B, T, V), attention)."""
        check_tokens("target", target_in)
        embedded = self.dropout(self.target_embedding(target_in))  # (B, T, E)
        if not self.config.input_feeding:
            hidden, _ = self.decoder(embedded, memory.state)  # (B, T, H)
            attentional, weights = self.attend(memory, hidden)
            return self.logits(attentional), weights
        state, steps, attention = self.initial_state(memory), [], []
        for t in range(target_in.shape[1]):
            attentional, weights, state = self._step(memory, embedded[:, t], state)
            steps.append(attentional)
            attention.append(weights)
        weights = None if attention[0] is None else torch.stack(attention, dim=1)
        return self.logits(torch.stack(steps, dim=1)), weights

    def initial_state(self, memory: Memory) -> DecoderState:
        batch = memory.values.shape[0]
        feed = memory.values.new_zeros(batch, self.config.embedding_size) if self.config.input_feeding else None
        return DecoderState(memory.state, feed)

    def _step(self, memory: Memory, embedded: Tensor, state: DecoderState):
        """embedded (B, E) -> (h̃ (B, E), weights (B, S) or None, next state)."""
        x = embedded if state.feed is None else torch.cat([embedded, state.feed], dim=-1)
        hidden, recurrent = self.decoder(x[:, None, :], state.recurrent)  # (B, 1, H)
        attentional, weights = self.attend(memory, hidden)
        attentional = attentional[:, 0]
        feed = attentional if self.config.input_feeding else None
        return attentional, None if weights is None else weights[:, 0], DecoderState(recurrent, feed)

    def step(self, memory: Memory, token: Tensor, state: DecoderState) -> tuple[Tensor, Tensor | None, DecoderState]:
        """One decoder step for decoding: token (B,) -> (log-probabilities (B, V), attention
        (B, S) or None, next state). The padding token is never predicted."""
        attentional, weights, state = self._step(memory, self.target_embedding(token), state)
        logits = self.logits(attentional)
        logits[:, self.pad_id] = float("-inf")
        return torch.log_softmax(logits, dim=-1), weights, state

    def forward(self, source: Tensor, lengths: Tensor, target_in: Tensor) -> Tensor:
        """source (B, S), lengths (B,), target_in (B, T) -> logits (B, T, V)."""
        logits, _ = self.decode(self.encode(source, lengths), target_in)
        return logits


def check_tokens(name: str, tokens: Tensor) -> None:
    if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.dtype != torch.long:
        got = f"{tuple(tokens.shape)} {tokens.dtype}" if isinstance(tokens, Tensor) else type(tokens).__name__
        raise ValueError(f"{name}: expected token ids of shape (B, T) and dtype int64, got {got}")


def reverse_padded(tokens: Tensor, lengths: Tensor, pad_id: int) -> Tensor:
    """Each row's first lengths[b] tokens reversed, padding left at the end: (B, S) -> (B, S)."""
    positions = torch.arange(tokens.shape[1], device=tokens.device)[None, :]
    lengths = lengths.to(tokens.device)[:, None]
    index = torch.where(positions < lengths, lengths - 1 - positions, positions)
    return tokens.gather(1, index)


def reorder_state(state: DecoderState, order: Tensor) -> DecoderState:
    """The rows `order` (B',) of a decoder state (beam search keeps the surviving hypotheses)."""
    recurrent = state.recurrent
    recurrent = tuple(part.index_select(1, order) for part in recurrent) if isinstance(recurrent, tuple) \
        else recurrent.index_select(1, order)
    return DecoderState(recurrent, None if state.feed is None else state.feed.index_select(0, order))


def repeat_memory(memory: Memory, times: int) -> Memory:
    """Each sentence's memory `times` times in a row (B*times, ...), for beam search."""
    state = memory.state
    state = tuple(s.repeat_interleave(times, dim=1) for s in state) if isinstance(state, tuple) \
        else state.repeat_interleave(times, dim=1)
    return Memory(memory.values.repeat_interleave(times, 0), memory.keys.repeat_interleave(times, 0),
                  memory.mask.repeat_interleave(times, 0), state)


def matched_hidden_sizes(config: Seq2SeqConfig, vocab_size: int) -> tuple[int, int]:
    """(encoder_hidden, decoder_hidden): as configured for the LSTM; for the GRU with
    match_parameters, both scaled by one factor so the model has the LSTM model's count."""
    if config.cell == "lstm" or not config.match_parameters:
        return config.encoder_hidden, config.decoder_hidden
    target = _parameters_with(config, "lstm", 1.0, vocab_size)
    low, high = 0.5, 3.0
    for _ in range(30):  # bisection: parameters grow with the scale
        middle = (low + high) / 2
        low, high = (middle, high) if _parameters_with(config, "gru", middle, vocab_size) < target else (low, middle)
    return max(1, round(config.encoder_hidden * low)), max(1, round(config.decoder_hidden * low))


def _parameters_with(config: Seq2SeqConfig, cell: str, scale: float, vocab_size: int) -> int:
    sized = dataclasses.replace(config, cell=cell, match_parameters=False,
                                encoder_hidden=max(1, round(config.encoder_hidden * scale)),
                                decoder_hidden=max(1, round(config.decoder_hidden * scale)))
    with torch.device("meta"):
        return count_parameters(Seq2Seq(sized, vocab_size, 0))
