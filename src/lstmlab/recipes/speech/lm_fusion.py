"""A character language model trained by `lstmlab train lm`, as the CTC beam's scorer.

Shallow fusion: the prefix beam search adds ``lm_weight × log p_LM(next character | prefix)``
each time it extends a prefix (`decoding.CharLanguageModel`). Any character-level LM run
works, cased or not:

- each CTC label (a-z, apostrophe, space) maps to the LM's tokens for that character and,
  for letters, its upper case: p(label) sums them (so a Shakespeare LM that writes "The"
  after a full stop still scores "the");
- the LM's mass on what the recogniser cannot write (punctuation, digits, newlines) is
  dropped and the rest renormalised over the labels;
- the state advances with the more probable case of the chosen letter.

The utterance starts after a newline (the start of a line in the corpus) when the LM
knows one. States of several prefixes advance in one batched `LanguageModel.step`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lstmlab.data.speech_text import ALPHABET


class LMFusion:
    """`CharLanguageModel` over a loaded `lm` run (see the module docstring)."""

    def __init__(self, run: Any):
        tokenizer = getattr(run, "components", {}).get("tokenizer")
        if run.recipe != "lm" or tokenizer is None or not hasattr(tokenizer, "symbols"):
            kind = type(tokenizer).__name__ if tokenizer is not None else "no tokenizer"
            raise ValueError(f"--lm: expected a character language model run of `lstmlab train lm` "
                             f"(data.tokenizer=char), got a {run.recipe!r} run with {kind}")
        self.model = run.model.eval()
        index = tokenizer.index
        self.token_ids: list[list[int]] = [[]]  # label 0 (blank) has none
        for character in ALPHABET:
            variants = [character] + ([character.upper()] if character.isalpha() else [])
            self.token_ids.append([index[v] for v in variants if v in index])
        missing = [ALPHABET[k - 1] for k, ids in enumerate(self.token_ids) if k and not ids]
        if missing:
            raise ValueError(f"--lm: the language model's vocabulary lacks the characters {missing}; train it "
                             "on text that has them (e.g. `lstmlab train lm --data RUN/lm_text.txt`)")
        width = max(len(ids) for ids in self.token_ids)
        self._gather = torch.tensor([ids + [ids[0]] * (width - len(ids)) if ids else [0] * width
                                     for ids in self.token_ids])  # (V, width), padded by repeating
        self._valid = torch.tensor([[j < len(ids) for j in range(width)] for ids in self.token_ids])
        self._start_token = index.get("\n", index.get(" "))

    def _label_scores(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """logits (N, V_lm) -> (log p over CTC labels (N, V), which case variant to feed (N, V))."""
        log_p = logits.log_softmax(-1)
        per_variant = log_p[:, self._gather].masked_fill(~self._valid, float("-inf"))  # (N, V, width)
        scores = per_variant.logsumexp(-1)
        scores[:, 0] = float("-inf")
        return scores - scores[:, 1:].logsumexp(-1, keepdim=True), per_variant.argmax(-1)

    @torch.no_grad()
    def start(self) -> tuple[Any, Tensor]:
        token = torch.tensor([self._start_token])
        logits, state = self.model.step(token, None)
        scores, best = self._label_scores(logits)
        return (state, best[0]), scores[0]

    @torch.no_grad()
    def step(self, states: list[Any], labels: list[int]) -> tuple[list[Any], Tensor]:
        tokens = torch.tensor([self.token_ids[label][int(best[label])] for (_, best), label in zip(states, labels)])
        joined = _join_states([state for state, _ in states])
        logits, new = self.model.step(tokens, joined)
        scores, best = self._label_scores(logits)
        return [(_row_state(new, i), best[i]) for i in range(len(labels))], scores


def _join_states(states: list[Any]) -> Any:
    """Per-prefix LM states (each (h, c) with batch 1, or h) -> one batched state."""
    first = states[0]
    if isinstance(first, tuple):
        return tuple(torch.cat([s[k] for s in states], dim=1) for k in range(len(first)))
    return torch.cat(states, dim=1)


def _row_state(state: Any, row: int) -> Any:
    if isinstance(state, tuple):
        return tuple(part[:, row:row + 1] for part in state)
    return state[:, row:row + 1]
