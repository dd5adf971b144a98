"""Decoding CTC posteriors: best path (greedy) and prefix beam search with an optional
character LM (shallow fusion) and an optional lexicon.

Conventions: label 0 is the CTC blank, labels 1..V-1 are characters, one of them the
space that separates words. Posteriors are log-softmax outputs, (T, V) for one utterance
or (B, T, V) with `lengths` (B,) valid frames per row.

Greedy (`greedy_decode`): argmax per frame, merge repeats, drop blanks.

Prefix beam search (`prefix_beam_search`, after Hannun et al. 2014): a label sequence
(a prefix) has many alignments, and its probability is their sum. Per prefix we keep, in
log space, p_b (alignments so far that end in a blank) and p_nb (that end in its last
label). At frame t, with y = log_probs[t] (V,):

- a blank keeps the prefix:               p_b(l)    += (p_b(l) + p_nb(l)) * y[0]
- repeating the last label keeps it too:  p_nb(l)   += p_nb(l) * y[last]
- a new label c extends it:               p_nb(l+c) += (p_b(l) + p_nb(l)) * y[c]
  (only p_b(l) when c is the last label: a repeat needs a blank in between).

A prefix ranks by log(p_b + p_nb) plus its fusion score, fixed when it is created:
lm_weight * log p_LM(c | l) per label and word_bonus per space. The `beam` best survive
each frame, and the LM states of the new survivors are computed in one batched `lm.step`.
Bookkeeping is in Python floats: a frame costs O(beam * V) small operations, far less
than tensor calls that small would.

With a `Lexicon`, each prefix also knows where its last word stands in the lexicon's trie
of words, and a word the lexicon does not have costs oov_penalty (<= 0), once: when a label
leaves every lexicon word, or when a space (or the end) closes a word that is only the
start of lexicon words. oov_penalty = -inf keeps the transcript inside the lexicon.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Any, Iterable, Protocol, Sequence

import torch
from torch import Tensor

_NEG = float("-inf")


def greedy_decode(log_probs: Tensor, lengths: Tensor | None = None) -> list[list[int]]:
    """Best path of (B, T, V) or (T, V) posteriors: one label list per utterance."""
    if log_probs.dim() == 2:
        log_probs = log_probs[None]
    elif log_probs.dim() != 3:
        raise ValueError(f"greedy_decode: expected log_probs of shape (B, T, V) or (T, V), "
                         f"got shape {tuple(log_probs.shape)}")
    limits = _check_lengths(lengths, log_probs.shape[0], log_probs.shape[1], "greedy_decode")
    best = log_probs.detach().argmax(-1).cpu()  # (B, T)
    first = torch.ones_like(best, dtype=torch.bool)
    first[:, 1:] = best[:, 1:] != best[:, :-1]  # the first frame of each run of one label
    keep = first & (best != 0)
    return [best[b, :n][keep[b, :n]].tolist() for b, n in enumerate(limits)]


class CharLanguageModel(Protocol):
    """A character LM over the CTC labels, for shallow fusion (the blank's log-prob is -inf)."""

    def start(self) -> tuple[Any, Tensor]:
        """(state, log p(first label) (V,)) at the start of an utterance."""
        ...

    def step(self, states: list[Any], labels: list[int]) -> tuple[list[Any], Tensor]:
        """Each state advanced by its label: (new states, log p(next label) (N, V))."""
        ...


@dataclass
class BeamOptions:
    beam: int = 8  # prefixes kept per frame
    lm_weight: float = 0.0  # alpha: shallow fusion weight of the LM's log-probability
    word_bonus: float = 0.0  # beta: added per word (each space emitted, and the final word)
    prune: float = -12.0  # skip labels whose frame log-prob is below this (speed)
    end_with_space: bool = True  # with an LM, score the end as a word boundary: + alpha * log p(space | prefix)
    oov_penalty: float = 0.0  # with a lexicon: added once per word outside it (<= 0; -inf = lexicon words only)


class Lexicon:
    """Words as a trie over CTC labels, for the prefix beam search.

    A state is a trie node: 0 the start of a word, -1 a word already outside the lexicon.
    ``Lexicon([[3, 1, 20], [3, 1, 21]])`` holds two words that share the node of [3, 1].
    """

    def __init__(self, words: Iterable[Sequence[int]]):
        self.next: list[dict[int, int]] = [{}]  # node -> {label: node}
        self.is_word: list[bool] = [False]
        self.words = 0
        for word in words:
            node = 0
            for label in word:
                found = self.next[node].get(label)
                if found is None:
                    found = self.next[node][label] = len(self.next)
                    self.next.append({})
                    self.is_word.append(False)
                node = found
            if node and not self.is_word[node]:
                self.is_word[node] = True
                self.words += 1

    def advance(self, state: int, label: int) -> int:
        """The state after `label` within a word (-1: no lexicon word continues so)."""
        return self.next[state].get(label, -1) if state >= 0 else -1

    def closes_outside(self, state: int) -> bool:
        """True when ending the word here makes it one the lexicon lacks, and the penalty
        was not paid yet (a state of -1 paid it when it left the trie)."""
        return state >= 0 and not self.is_word[state]


def _lse(a: float, b: float) -> float:
    """log(exp(a) + exp(b)), safe for -inf."""
    if a < b:
        a, b = b, a
    return a if b == _NEG else a + math.log1p(math.exp(b - a))


class _Trie:
    """Prefixes as trie nodes (node 0 the empty one): small int keys, where a tuple key would
    re-hash its whole length at each lookup. A node caches its fusion score and, with an LM,
    its state, log p(next label) and an upper bound of the fusion any next label adds."""

    def __init__(self, vocab: int):
        self.vocab = vocab
        self.parent, self.label, self.fusion = [-1], [0], [0.0]  # label 0: the empty prefix ends in none
        self.word = [0]  # the prefix's last word as a Lexicon state (0 without a lexicon)
        self.state: list[Any] = [None]
        self.next_lp: list[list[float] | None] = [None]
        self.children: dict[int, int] = {}  # parent * V + label -> node

    def child(self, node: int, label: int, fusion: float, word: int) -> int:
        key = node * self.vocab + label
        found = self.children.get(key)
        if found is None:  # (a prefix pruned earlier keeps its node and its cached LM state)
            found = self.children[key] = len(self.parent)
            self.parent.append(node)
            self.label.append(label)
            self.fusion.append(fusion)
            self.word.append(word)
            self.state.append(None)
            self.next_lp.append(None)
        return found

    def labels(self, node: int) -> list[int]:
        out = []
        while node > 0:
            out.append(self.label[node])
            node = self.parent[node]
        return out[::-1]


def prefix_beam_search(log_probs: Tensor, space: int, options: BeamOptions = BeamOptions(),  # noqa: B008
                       lm: CharLanguageModel | None = None, lexicon: Lexicon | None = None) -> list[int]:
    """The best label sequence of (T, V) posteriors, without leading or trailing spaces."""
    if log_probs.dim() != 2:
        raise ValueError(f"prefix_beam_search: expected log_probs of shape (T, V), got shape {tuple(log_probs.shape)}")
    vocab = log_probs.shape[1]
    if not 1 <= space < vocab:
        raise ValueError(f"prefix_beam_search: expected space in 1..{vocab - 1} (0 is the blank), got {space}")
    if options.beam < 1:
        raise ValueError(f"prefix_beam_search: expected beam >= 1, got {options.beam}")
    if not options.oov_penalty <= 0:
        raise ValueError(f"prefix_beam_search: expected oov_penalty <= 0 (a cost per word outside the lexicon; "
                         f"-inf = lexicon words only), got {options.oov_penalty}")
    alpha, beta, width, penalty = options.lm_weight, options.word_bonus, options.beam, options.oov_penalty
    if penalty == 0.0:
        lexicon = None  # it could not change a score
    if alpha == 0.0:
        lm = None  # it could not change a score (and 0 * -inf is nan): skip its calls
    trie = _Trie(vocab)
    parent_of, label_of, fusion_of, next_lp, word_of = trie.parent, trie.label, trie.fusion, trie.next_lp, trie.word
    top_fusion = max(beta, 0.0)  # no label adds more fusion than this (LM part added per node; a lexicon only costs)
    if lm is not None:
        state, first = lm.start()
        trie.state[0], next_lp[0] = state, _rows(first[None], 1, vocab, "start")[0]
    beam: dict[int, tuple[float, float]] = {0: (0.0, _NEG)}  # node -> (log p_b, log p_nb)
    for row in log_probs.detach().cpu().double().tolist():
        labels = sorted((c for c in range(1, vocab) if row[c] >= options.prune), key=row.__getitem__, reverse=True)
        totals = {node: _lse(p_b, p_nb) for node, (p_b, p_nb) in beam.items()}
        # Prefixes that stay (a blank, or their last label repeated) ...
        stay = {node: [totals[node] + row[0], p_nb + row[label_of[node]] if node else _NEG]
                for node, (_, p_nb) in beam.items()}
        # ... and extensions into another beam prefix: the only way two paths meet in one prefix,
        # so every other extension's score is exact when it is made.
        inside: dict[int, set[int]] = {}
        for node in beam:
            parent = parent_of[node]
            if parent in beam:
                c = label_of[node]
                inside.setdefault(parent, set()).add(c)
                if row[c] >= options.prune:
                    source = beam[parent][0] if c == label_of[parent] else totals[parent]
                    stay[node][1] = _lse(stay[node][1], source + row[c])
        kept = [(_lse(*ends) + fusion_of[node], node) for node, ends in stay.items()]
        floor_heap = heapq.nlargest(width, (s for s, _ in kept))  # the beam's entry score so far
        heapq.heapify(floor_heap)
        floor = floor_heap[0] if len(floor_heap) >= width else _NEG
        grown: list[tuple[float, int, int, float, float, int]] = []  # (score, parent, label, log p_nb, fusion, word)
        for node in sorted(beam, key=totals.__getitem__, reverse=True):  # best first: the floor rises fast
            total, p_b, last, base = totals[node], beam[node][0], label_of[node], fusion_of[node]
            lm_row, skip = next_lp[node], inside.get(node, ())
            lm_top = 0.0 if lm_row is None else alpha * (max(lm_row[1:]) if alpha > 0 else min(lm_row[1:]))
            bound = total + base + top_fusion + lm_top  # no extension of this prefix scores above bound + y[c]
            no_space = node == 0 or last == space  # no space at the start or twice in a row
            for c in labels:
                p = row[c]
                if bound + p < floor:
                    break  # labels come by falling y[c]: none of the rest can enter the beam
                if (c == space and no_space) or c in skip:
                    continue
                ctc = (p_b if c == last else total) + p
                fusion = base + (alpha * lm_row[c] if lm_row is not None else 0.0) + (beta if c == space else 0.0)
                word = 0
                if lexicon is not None:
                    if c == space:
                        fusion += penalty if lexicon.closes_outside(word_of[node]) else 0.0
                    else:
                        word = lexicon.advance(word_of[node], c)
                        fusion += penalty if word < 0 <= word_of[node] else 0.0
                score = ctc + fusion
                if score < floor or score == _NEG:
                    continue
                grown.append((score, node, c, ctc, fusion, word))
                if len(floor_heap) < width:
                    heapq.heappush(floor_heap, score)
                else:
                    heapq.heapreplace(floor_heap, score)
                floor = floor_heap[0] if len(floor_heap) >= width else _NEG
        ranked = heapq.nlargest(width, [(s, 0, n) for s, n in kept] + [(g[0], 1, i) for i, g in enumerate(grown)],
                                key=lambda item: item[0])
        beam, new = {}, []
        for _, is_new, index in ranked:
            if is_new:
                _, parent, c, ctc, fusion, word = grown[index]
                node = trie.child(parent, c, fusion, word)
                beam[node] = (_NEG, ctc)
                if lm is not None and next_lp[node] is None:
                    new.append(node)
            else:
                beam[index] = tuple(stay[index])
        if new:  # one batched LM call per frame, for the new survivors only
            states, scores = lm.step([trie.state[parent_of[n]] for n in new], [label_of[n] for n in new])
            for node, state, lp in zip(new, states, _rows(scores, len(new), vocab, "step")):
                trie.state[node], next_lp[node] = state, lp

    def final(node: int) -> float:
        score = _lse(*beam[node]) + fusion_of[node]
        if node and label_of[node] != space:  # the last word is not closed by a space yet
            score += beta
            if lm is not None and options.end_with_space:
                score += alpha * next_lp[node][space]
            if lexicon is not None and lexicon.closes_outside(word_of[node]):
                score += penalty
        return score

    best = trie.labels(max(beam, key=final))
    while best and best[-1] == space:
        best.pop()
    return best


def _rows(scores: Tensor, count: int, vocab: int, method: str) -> list[list[float]]:
    if tuple(scores.shape) != (count, vocab):
        want = f"({vocab},)" if method == "start" else f"({count}, {vocab})"
        raise ValueError(f"CharLanguageModel.{method}: expected log-probs of shape {want}, "
                         f"got {tuple(scores.shape)}")
    return scores.detach().cpu().double().tolist()


def beam_decode(log_probs: Tensor, lengths: Tensor, space: int, options: BeamOptions = BeamOptions(),  # noqa: B008
                lm: CharLanguageModel | None = None, lexicon: Lexicon | None = None) -> list[list[int]]:
    """`prefix_beam_search` on each row log_probs[b, :lengths[b]] of (B, T, V) posteriors."""
    if log_probs.dim() != 3:
        raise ValueError(f"beam_decode: expected log_probs of shape (B, T, V), got shape {tuple(log_probs.shape)}")
    limits = _check_lengths(lengths, log_probs.shape[0], log_probs.shape[1], "beam_decode")
    rows = log_probs.detach().cpu()
    return [prefix_beam_search(rows[b, :n], space, options, lm, lexicon) for b, n in enumerate(limits)]


def _check_lengths(lengths: Tensor | None, batch: int, frames: int, caller: str) -> list[int]:
    """Valid frames per row as ints (all T when None)."""
    if lengths is None:
        return [frames] * batch
    if tuple(lengths.shape) != (batch,):
        raise ValueError(f"{caller}: expected lengths of shape ({batch},), one per utterance, "
                         f"got shape {tuple(lengths.shape)}")
    limits = [int(n) for n in lengths.tolist()]
    if any(n < 0 or n > frames for n in limits):
        raise ValueError(f"{caller}: expected lengths in 0..{frames} (the frames given), got {limits}")
    return limits
