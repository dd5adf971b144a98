"""Exp. 1 of Hochreiter & Schmidhuber (1997): the embedded Reber grammar."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from .task_base import LongLagTask, SequenceBatch, check_int, one_hot_sequences

REBER_SYMBOLS = "BTPSXVE"

# The Reber grammar as a finite automaton: state → [(symbol, next state), ...]; each
# transition has probability 1/2. State 1 follows the leading B; state 6 is final (E).
REBER_TRANSITIONS: dict[int, list[tuple[str, int]]] = {
    1: [("T", 2), ("P", 3)],
    2: [("S", 2), ("X", 4)],
    3: [("T", 3), ("V", 5)],
    4: [("X", 3), ("S", 6)],
    5: [("P", 4), ("V", 6)],
}


def _coin(generator: torch.Generator) -> int:
    return int(torch.randint(0, 2, (1,), generator=generator))


def reber_string(generator: torch.Generator) -> tuple[str, list[set[str]]]:
    """One Reber string and, for each of its symbols, the set of legal next symbols."""
    text, legal, state = "B", [{"T", "P"}], 1
    while state != 6:
        symbol, state = REBER_TRANSITIONS[state][_coin(generator)]
        text += symbol
        legal.append({"E"} if state == 6 else {s for s, _ in REBER_TRANSITIONS[state]})
    return text + "E", legal + [set()]


def embedded_reber_string(generator: torch.Generator) -> tuple[str, list[set[str]]]:
    """B, T|P, a Reber string, the same T|P, E; with the legal next symbols per symbol.

    The legal set after the inner string's E is the single symbol chosen at position 2:
    predicting it needs the memory of a symbol seen the whole inner string ago.
    """
    outer = "TP"[_coin(generator)]
    inner, inner_legal = reber_string(generator)
    text = "B" + outer + inner + outer + "E"
    legal = [{"T", "P"}, {"B"}] + inner_legal[:-1] + [{outer}, {"E"}, set()]
    return text, legal


@dataclass
class EmbeddedReber(LongLagTask):
    """Exp. 1: next-symbol prediction on the embedded Reber grammar.

    Paper: 7 symbols B, T, P, S, X, V, E, coded locally. Strings are B, then T or P,
    then a string of the Reber grammar, then the same T or P, then E. The net reads one
    symbol at a time and predicts the next. A training set and a test set of 256 strings
    each are drawn at random. A trial succeeds if all string symbols of all sequences in
    both sets are predicted correctly, i.e. "the output unit(s) corresponding to the
    possible next symbol(s) is (are) always the most active ones".

    Here: outputs are a softmax over 7 symbols trained towards the uniform distribution
    over the legal next symbols; a string is right when at every step the k most active
    outputs are exactly the k legal next symbols. Training batches are drawn from the
    training set; success is judged on training and test set together.
    """

    train_size: int = 256  # strings in the fixed training set
    test_size: int = 256  # strings in the fixed test set
    data_seed: int = 0  # seed of the two fixed sets
    _sets: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    name = "reber"
    kind = "step_multilabel"
    criterion = "legal next symbols are the most active outputs at every step, all 512 strings"

    def __post_init__(self) -> None:
        check_int("train_size", self.train_size, 1)
        check_int("test_size", self.test_size, 1)

    def config(self) -> dict:
        return {"task": self.name, "train_size": self.train_size, "test_size": self.test_size,
                "data_seed": self.data_seed}

    @property
    def input_size(self) -> int:
        return len(REBER_SYMBOLS)

    @property
    def output_size(self) -> int:
        return len(REBER_SYMBOLS)

    @property
    def lag(self) -> int:
        """The grammar sets no length; we report the median string length of the sets."""
        lengths = sorted(len(text) for text, _ in self.strings("train") + self.strings("test"))
        return lengths[len(lengths) // 2]

    @property
    def label(self) -> str:
        return "reber"

    def strings(self, which: str) -> list[tuple[str, list[set[str]]]]:
        """The fixed training ("train") or test ("test") strings with their legal sets."""
        if not self._sets:
            generator = torch.Generator().manual_seed(self.data_seed)
            self._sets["train"] = [embedded_reber_string(generator) for _ in range(self.train_size)]
            self._sets["test"] = [embedded_reber_string(generator) for _ in range(self.test_size)]
        return self._sets[which]

    def sample(self, batch_size: int, generator: torch.Generator) -> SequenceBatch:
        train = self.strings("train")
        picks = torch.randint(0, len(train), (batch_size,), generator=generator).tolist()
        return self.encode([train[i] for i in picks])

    def evaluation_batch(self, size: int, generator: torch.Generator) -> SequenceBatch:
        return self.encode(self.strings("train") + self.strings("test"))

    def encode(self, strings: list[tuple[str, list[set[str]]]]) -> SequenceBatch:
        """Strings → inputs (all symbols but the last) and multi-hot legal-next targets."""
        lengths = torch.tensor([len(text) - 1 for text, _ in strings])  # predictions per string
        total, batch_size = int(lengths.max()), len(strings)
        symbols = torch.zeros(total, batch_size, dtype=torch.long)
        targets = torch.zeros(total, batch_size, len(REBER_SYMBOLS))  # (T, B, 7)
        for b, (text, legal) in enumerate(strings):
            for t in range(len(text) - 1):
                symbols[t, b] = REBER_SYMBOLS.index(text[t])
                for symbol in legal[t]:
                    targets[t, b, REBER_SYMBOLS.index(symbol)] = 1.0
        mask = torch.arange(total).unsqueeze(1) < lengths.unsqueeze(0)  # (T, B)
        inputs = one_hot_sequences(symbols, lengths, self.input_size)
        return SequenceBatch(inputs, lengths, targets, mask)

    def wrong(self, outputs: Tensor, batch: SequenceBatch) -> Tensor:
        legal_count = batch.targets.sum(-1).long()  # (T, B) how many symbols are legal
        rank = outputs.argsort(-1, descending=True).argsort(-1)  # (T, B, 7) 0 = most active
        predicted = rank < legal_count.unsqueeze(-1)  # the k most active outputs
        step_wrong = (predicted != batch.targets.bool()).any(-1) & batch.mask  # (T, B)
        return step_wrong.any(0)
