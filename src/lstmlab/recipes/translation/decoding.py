"""Greedy and batched beam search for `lstmlab.models.seq2seq.Seq2Seq`.

Both step the decoder one token per row with `Seq2Seq.step` (the stateful step API),
stop each hypothesis at end-of-sentence, and cap the output at
``max_length_ratio * source_length + 5`` tokens. Both are deterministic: no sampling,
and ties go to the lower token id (torch.topk's order on CPU).

Beam search keeps `beam` live hypotheses per sentence. Each step scores every
continuation of every live hypothesis, takes the best ``2 * beam`` per sentence
(so `beam` survive even when some end), moves those ending in EOS to the sentence's
finished list, and stops the sentence when it has `beam` finished ones. The answer
is the finished hypothesis with the best ``log p / length ** length_penalty``
(length normalisation; 0 = raw log-probability). With ``beam=1`` it is greedy search.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lstmlab.models.seq2seq import Memory, Seq2Seq, reorder_state, repeat_memory


@dataclass
class Hypothesis:
    """One decoded sentence: target ids (without BOS/EOS), its score, its attention."""

    tokens: list[int]
    log_probability: float  # sum of log p of the tokens and the final EOS
    attention: Tensor | None  # (len(tokens) + 1, S): one row per emitted token and EOS; None without attention

    def score(self, length_penalty: float) -> float:
        return self.log_probability / max(1, len(self.tokens) + 1) ** length_penalty


def max_output_length(lengths: Tensor, ratio: float) -> int:
    """The longest output to allow for these sources (tokens, before EOS)."""
    return int(ratio * int(lengths.max())) + 5


def forced_end(log_probs: Tensor, eos: int) -> Tensor:
    """Out of room: every hypothesis ends here (EOS at no cost, nothing else possible)."""
    forced = torch.full_like(log_probs, float("-inf"))
    forced[:, eos] = 0.0
    return forced


@torch.no_grad()
def greedy_search(model: Seq2Seq, source: Tensor, lengths: Tensor, bos: int, eos: int,
                  max_length_ratio: float = 1.5) -> list[Hypothesis]:
    """The likeliest next token at every step: source (B, S), lengths (B,) -> B hypotheses."""
    memory = model.encode(source, lengths)
    state = model.initial_state(memory)
    batch = source.shape[0]
    token = torch.full((batch,), bos, dtype=torch.long)
    tokens: list[list[int]] = [[] for _ in range(batch)]
    scores, rows = [0.0] * batch, [[] for _ in range(batch)]
    done = [False] * batch
    limit = max_output_length(lengths, max_length_ratio)
    for t in range(limit + 1):
        log_probs, weights, state = model.step(memory, token, state)
        if t == limit:
            log_probs = forced_end(log_probs, eos)
        best, token = log_probs.max(dim=-1)
        for b in range(batch):
            if done[b]:
                continue
            scores[b] += float(best[b])
            if weights is not None:
                rows[b].append(weights[b])
            if int(token[b]) == eos:
                done[b] = True
            else:
                tokens[b].append(int(token[b]))
        if all(done):
            break
    return [Hypothesis(tokens[b], scores[b], torch.stack(rows[b]) if rows[b] else None) for b in range(batch)]


@torch.no_grad()
def beam_search(model: Seq2Seq, source: Tensor, lengths: Tensor, bos: int, eos: int, beam: int = 5,
                length_penalty: float = 1.0, max_length_ratio: float = 1.5) -> list[Hypothesis]:
    """Batched beam search (see the module docstring): B sentences -> B best hypotheses."""
    if beam < 1:
        raise ValueError(f"beam: expected a width of at least 1, got {beam}")
    batch, K = source.shape[0], beam
    memory: Memory = repeat_memory(model.encode(source, lengths), K)
    state = model.initial_state(memory)
    token = torch.full((batch * K,), bos, dtype=torch.long)
    scores = torch.full((batch, K), float("-inf"))
    scores[:, 0] = 0.0  # only one live hypothesis at the start: the rest are copies
    history = torch.zeros(batch * K, 0, dtype=torch.long)  # (B*K, t) tokens so far
    attention: Tensor | None = None  # (B*K, t, S)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    limit = max_output_length(lengths, max_length_ratio)
    for t in range(limit + 1):
        log_probs, weights, state = model.step(memory, token, state)  # (B*K, V)
        if weights is not None:
            attention = weights[:, None, :] if attention is None else torch.cat([attention, weights[:, None]], 1)
        vocab = log_probs.shape[-1]
        if t == limit:
            log_probs = forced_end(log_probs, eos)
        candidates = (scores.view(-1, 1) + log_probs).view(batch, K * vocab)
        top_scores, top_index = candidates.topk(2 * K, dim=-1)  # (B, 2K)
        origin, word = top_index // vocab, top_index % vocab  # which live hypothesis, which token
        new_scores = torch.full((batch, K), float("-inf"))
        new_rows = torch.zeros(batch, K, dtype=torch.long)
        new_tokens = torch.full((batch, K), eos, dtype=torch.long)
        top_values, origins, words = top_scores.tolist(), origin.tolist(), word.tolist()  # plain numbers: fast loop
        for b in range(batch):
            kept = 0
            for value, source_row, next_word in zip(top_values[b], origins[b], words[b]):
                if kept == K or value == float("-inf") or len(finished[b]) >= K:
                    break
                row = b * K + source_row
                if next_word == eos:
                    rows = None if attention is None else attention[row].clone()
                    finished[b].append(Hypothesis(history[row].tolist(), value, rows))
                else:
                    new_scores[b, kept], new_rows[b, kept], new_tokens[b, kept] = value, row, next_word
                    kept += 1
        if all(len(done) >= K for done in finished):
            break
        order = new_rows.view(-1)
        state = reorder_state(state, order)
        history = torch.cat([history.index_select(0, order), new_tokens.view(-1, 1)], dim=1)
        attention = None if attention is None else attention.index_select(0, order)
        scores, token = new_scores, new_tokens.view(-1)
    return [max(done, key=lambda h: h.score(length_penalty)) for done in finished]
