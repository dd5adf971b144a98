"""CTC decoding of the speech recipe: greedy best path, prefix beam search, shallow fusion, lexicon."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from lstmlab.recipes.speech.decoding import (
    BeamOptions,
    Lexicon,
    beam_decode,
    greedy_decode,
    prefix_beam_search,
)

BLANK, SPACE, A, B, C = 0, 1, 2, 3, 4
V = 5


def posteriors(frames: list[dict[int, float]], vocab: int = V, rest: float = 1e-4) -> torch.Tensor:
    """(T, V) log-probs: each frame's given probabilities, `rest` spread over the other labels."""
    rows = []
    for frame in frames:
        others = [k for k in range(vocab) if k not in frame]
        row = [frame.get(k, rest / max(1, len(others))) for k in range(vocab)]
        total = sum(row)
        rows.append([math.log(p / total) for p in row])
    return torch.tensor(rows)


def peaked(labels: list[int], vocab: int = V) -> torch.Tensor:
    """Posteriors whose argmax per frame is `labels` (0.9 on it)."""
    return posteriors([{label: 0.9} for label in labels], vocab, rest=0.1)


def brute_force(log_probs: torch.Tensor, space: int) -> dict[tuple[int, ...], float]:
    """p(label sequence) summed over every alignment, for the sequences the search may emit
    (no leading space, no double space)."""
    frames, vocab = log_probs.shape
    probs = log_probs.double().exp().tolist()
    found: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(vocab), repeat=frames):
        collapsed = tuple(label for i, label in enumerate(path) if label != 0 and (i == 0 or path[i - 1] != label))
        found[collapsed] = found.get(collapsed, 0.0) + math.prod(probs[t][k] for t, k in enumerate(path))
    return {seq: p for seq, p in found.items()
            if not (seq[:1] == (space,) or any(a == b == space for a, b in itertools.pairwise(seq)))}


def lexicon_cost(prefix: tuple[int, ...], space: int, words: set[tuple[int, ...]], penalty: float,
                 closed: bool) -> float:
    """oov_penalty per word of `prefix` outside `words`; its last word, unless `closed`, only
    when no word of the lexicon starts with it."""
    pieces = [tuple(piece) for is_space, piece in itertools.groupby(prefix, key=lambda c: c == space) if not is_space]
    finished = pieces if closed or (prefix and prefix[-1] == space) else pieces[:-1]
    cost = penalty * sum(word not in words for word in finished)
    if len(finished) < len(pieces) and not any(word[:len(pieces[-1])] == pieces[-1] for word in words):
        cost += penalty
    return cost


def reference_search(log_probs, space, options, lm=None, words=None):
    """A plain prefix beam search (tuple keys, every extension scored, full sort): the module's
    must rank the same prefixes, pruning shortcuts and all. `words`: the lexicon as a set of
    label tuples, its penalty counted afresh for each prefix (`lexicon_cost`)."""
    lse = torch.logaddexp
    neg = torch.tensor(float("-inf"), dtype=torch.float64)
    alpha, beta = options.lm_weight, options.word_bonus
    lm = lm if alpha else None

    def cost(prefix, closed=False):
        return lexicon_cost(prefix, space, words, options.oov_penalty, closed) if words else 0.0

    next_lp = {(): lm.start()} if lm else {}
    beam, fusion = {(): (torch.tensor(0.0, dtype=torch.float64), neg)}, {(): 0.0}
    for row in log_probs.double():
        ends: dict[tuple[int, ...], list] = {}
        for prefix, (p_b, p_nb) in beam.items():
            last = prefix[-1] if prefix else None
            stay = ends.setdefault(prefix, [neg, neg])
            stay[0] = lse(stay[0], lse(p_b, p_nb) + row[0])
            if last is not None:
                stay[1] = lse(stay[1], p_nb + row[last])
            for c in range(1, len(row)):
                if row[c] < options.prune or (c == space and last in (None, space)):
                    continue
                grown = prefix + (c,)
                fusion.setdefault(grown, fusion[prefix] + (alpha * next_lp[prefix][1][c].item() if lm else 0.0)
                                  + (beta if c == space else 0.0))
                entry = ends.setdefault(grown, [neg, neg])
                entry[1] = lse(entry[1], (p_b if c == last else lse(p_b, p_nb)) + row[c])
        ranked = sorted(ends, key=lambda k: lse(*ends[k]).item() + fusion[k] + cost(k), reverse=True)[:options.beam]
        beam = {k: tuple(ends[k]) for k in ranked}
        for k in beam:
            if lm and k not in next_lp:
                states, scores = lm.step([next_lp[k[:-1]][0]], [k[-1]])
                next_lp[k] = (states[0], scores[0])

    def final(k):
        end = beta + (alpha * next_lp[k][1][space].item() if lm and options.end_with_space else 0.0)
        return lse(*beam[k]).item() + fusion[k] + (end if k and k[-1] != space else 0.0) + cost(k, closed=True)

    best = list(max(beam, key=final))
    return best[:-1] if best and best[-1] == space else best


class Bigram:
    """A toy CharLanguageModel: the state is the last label (0 at the start), p(next | last) a table."""

    def __init__(self, table: torch.Tensor):
        self.log_p = table.log_softmax(-1)
        self.log_p[:, BLANK] = float("-inf")
        self.steps: list[int] = []  # batch size of each step call
        self.starts = 0

    def start(self):
        self.starts += 1
        return BLANK, self.log_p[BLANK].clone()

    def step(self, states, labels):
        assert len(states) == len(labels)
        self.steps.append(len(labels))
        return list(labels), self.log_p[torch.tensor(labels)]


def preferring(first: int, second: int) -> Bigram:
    """A bigram LM under which `first` is much likelier than `second` at the start."""
    table = torch.zeros(V, V)
    table[BLANK, first], table[BLANK, second] = 3.0, -3.0
    return Bigram(table)


def test_greedy_merges_repeats_and_drops_blanks():
    log_probs = peaked([A, A, BLANK, A, B, B, BLANK, BLANK, C])
    assert greedy_decode(log_probs) == [[A, A, B, C]]
    assert greedy_decode(log_probs[None]) == [[A, A, B, C]]


def test_greedy_batched_lengths_ignore_padding():
    rows = torch.stack([peaked([A, B, B, C, C, C]), peaked([C, BLANK, C, A, A, B])])
    assert greedy_decode(rows, torch.tensor([3, 6])) == [[A, B], [C, C, A, B]]
    assert greedy_decode(rows, torch.tensor([0, 2])) == [[], [C]]


def test_beam_equals_greedy_on_clear_posteriors():
    log_probs = peaked([A, A, BLANK, A, SPACE, B, BLANK, B, C, C])
    expected = greedy_decode(log_probs)[0]
    assert expected == [A, A, SPACE, B, B, C]
    for width in (1, 2, 8):
        assert prefix_beam_search(log_probs, SPACE, BeamOptions(beam=width)) == expected


def test_beam_sums_alignments_where_greedy_fails():
    # Each frame: blank 0.6, "a" 0.4. Best path "__" -> "" (0.36), but "a" has three
    # alignments, "aa", "a_", "_a": 0.16 + 0.24 + 0.24 = 0.64.
    log_probs = posteriors([{BLANK: 0.6, A: 0.4}] * 2, rest=1e-9)
    exact = brute_force(log_probs, SPACE)
    assert exact[(A,)] == pytest.approx(0.64, abs=1e-6) and exact[()] == pytest.approx(0.36, abs=1e-6)
    assert greedy_decode(log_probs) == [[]]
    assert prefix_beam_search(log_probs, SPACE, BeamOptions(beam=4)) == [A]


@pytest.mark.parametrize("vocab", [3, 4])
def test_wide_beam_finds_the_exact_best_sequence(vocab):
    generator = torch.Generator().manual_seed(1234 + vocab)
    greedy_wrong = 0
    for _ in range(12):
        frames = int(torch.randint(2, 6, (1,), generator=generator))
        log_probs = (torch.randn(frames, vocab, generator=generator) * 1.5).log_softmax(-1)
        exact = brute_force(log_probs, space=1)
        best = list(max(exact, key=exact.get))
        while best and best[-1] == 1:  # the search returns it without a trailing space
            best.pop()
        options = BeamOptions(beam=500, prune=float("-inf"))
        assert prefix_beam_search(log_probs, 1, options) == best
        greedy_wrong += greedy_decode(log_probs)[0] != best
    assert greedy_wrong > 0  # the cases include some where summing over alignments matters


@pytest.mark.parametrize("beam, lm_weight, word_bonus, prune", [
    (1, 0.0, 0.0, -12.0), (3, 0.0, 1.0, -12.0), (4, 0.8, 0.5, -12.0), (2, 1.5, -1.0, -3.0), (6, 0.3, 2.0, -2.0),
])
def test_narrow_beam_matches_a_plain_reference(beam, lm_weight, word_bonus, prune):
    generator = torch.Generator().manual_seed(beam)
    options = BeamOptions(beam=beam, lm_weight=lm_weight, word_bonus=word_bonus, prune=prune)
    for _ in range(4):
        log_probs = (torch.randn(25, V, generator=generator) * 2.5).log_softmax(-1)
        lm = Bigram(torch.randn(V, V, generator=generator) * 2)
        assert prefix_beam_search(log_probs, SPACE, options, lm) == reference_search(log_probs, SPACE, options, lm)


def test_lm_breaks_an_acoustic_tie():
    # "ac" and "bc" are equally probable acoustically; the LM decides the first letter.
    log_probs = posteriors([{A: 0.5, B: 0.5}, {C: 0.99}])
    options = BeamOptions(beam=8, lm_weight=0.5)
    assert prefix_beam_search(log_probs, SPACE, options, preferring(A, B)) == [A, C]
    assert prefix_beam_search(log_probs, SPACE, options, preferring(B, A)) == [B, C]


def test_lm_outweighs_weaker_acoustics_only_with_weight():
    log_probs = posteriors([{A: 0.6, B: 0.4}, {C: 0.99}])
    assert prefix_beam_search(log_probs, SPACE, BeamOptions(lm_weight=0.5), preferring(B, A)) == [B, C]
    assert prefix_beam_search(log_probs, SPACE, BeamOptions(lm_weight=0.01), preferring(B, A)) == [A, C]


def test_lm_weight_zero_is_the_same_as_no_lm():
    generator = torch.Generator().manual_seed(7)
    lm = Bigram(torch.randn(V, V, generator=generator) * 3)
    for _ in range(5):
        log_probs = (torch.randn(20, V, generator=generator) * 2).log_softmax(-1)
        options = BeamOptions(beam=4, lm_weight=0.0, word_bonus=0.5)
        assert prefix_beam_search(log_probs, SPACE, options, lm) == prefix_beam_search(log_probs, SPACE, options)
        fused = prefix_beam_search(log_probs, SPACE, BeamOptions(beam=4, lm_weight=0.0001, word_bonus=0.5), lm)
        assert fused == prefix_beam_search(log_probs, SPACE, options)  # a tiny weight changes little


def test_end_of_utterance_scored_as_a_word_boundary():
    # Acoustics favour "a" a little; the LM says a word hardly ever ends in "a".
    table = torch.zeros(V, V)
    table[A, SPACE], table[B, SPACE] = -8.0, 4.0
    log_probs = posteriors([{A: 0.55, B: 0.45}])
    with_end = BeamOptions(lm_weight=0.5, end_with_space=True)
    without = BeamOptions(lm_weight=0.5, end_with_space=False)
    assert prefix_beam_search(log_probs, SPACE, with_end, Bigram(table)) == [B]
    assert prefix_beam_search(log_probs, SPACE, without, Bigram(table)) == [A]


@pytest.mark.parametrize("p_space, bonus, expected", [
    (0.4, 0.0, [A, B]), (0.4, 1.0, [A, SPACE, B]),  # a bonus keeps the less likely space
    (0.6, 0.0, [A, SPACE, B]), (0.6, -1.0, [A, B]),  # a penalty drops the likelier one
])
def test_word_bonus_decides_an_optional_space(p_space, bonus, expected):
    log_probs = posteriors([{A: 0.99}, {SPACE: p_space, BLANK: 1 - p_space}, {B: 0.99}], rest=1e-6)
    assert prefix_beam_search(log_probs, SPACE, BeamOptions(word_bonus=bonus)) == expected


def test_word_bonus_counts_the_last_word():
    # One frame, blank 0.6 / "a" 0.4: "a" wins only with the bonus of its (final) word.
    log_probs = posteriors([{BLANK: 0.6, A: 0.4}], rest=1e-9)
    assert prefix_beam_search(log_probs, SPACE, BeamOptions()) == []
    assert prefix_beam_search(log_probs, SPACE, BeamOptions(word_bonus=1.0)) == [A]


def test_no_leading_double_or_trailing_space():
    log_probs = peaked([SPACE, A, SPACE, BLANK, SPACE, B, SPACE])
    assert prefix_beam_search(log_probs, SPACE, BeamOptions(beam=8)) == [A, SPACE, B]


def test_lm_steps_are_batched_once_per_frame():
    log_probs = (torch.randn(30, V) * 2).log_softmax(-1)
    lm = Bigram(torch.randn(V, V))
    prefix_beam_search(log_probs, SPACE, BeamOptions(beam=6, lm_weight=0.5), lm)
    assert lm.starts == 1
    assert 0 < len(lm.steps) <= len(log_probs)
    assert max(lm.steps) > 1 and max(lm.steps) <= 6  # several new prefixes in one call, at most a beam


def test_beam_decode_rows_with_lengths():
    first, second = peaked([A, BLANK, B, C, C]), peaked([C, C, BLANK, A, A])
    rows = torch.stack([first, second])
    found = beam_decode(rows, torch.tensor([3, 5]), SPACE, BeamOptions(beam=4))
    assert found == [prefix_beam_search(first[:3], SPACE, BeamOptions(beam=4)), [C, A]]
    assert found[0] == [A, B]


def test_bad_shapes_and_options_raise():
    with pytest.raises(ValueError, match=r"\(B, T, V\) or \(T, V\).*\(5,\)"):
        greedy_decode(torch.zeros(5))
    with pytest.raises(ValueError, match=r"lengths of shape \(2,\).*\(3,\)"):
        greedy_decode(torch.zeros(2, 4, V), torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"expected log_probs of shape \(T, V\).*\(1, 4, 5\)"):
        prefix_beam_search(torch.zeros(1, 4, V), SPACE)
    with pytest.raises(ValueError, match=r"expected log_probs of shape \(B, T, V\).*\(4, 5\)"):
        beam_decode(torch.zeros(4, V), torch.tensor([4]), SPACE)
    with pytest.raises(ValueError, match=r"lengths in 0\.\.4"):
        beam_decode(torch.zeros(1, 4, V), torch.tensor([9]), SPACE)
    with pytest.raises(ValueError, match="beam >= 1, got 0"):
        prefix_beam_search(peaked([A]), SPACE, BeamOptions(beam=0))
    with pytest.raises(ValueError, match=r"space in 1\.\.4"):
        prefix_beam_search(peaked([A]), 0, BeamOptions())


def test_lexicon_is_a_trie_of_words():
    lexicon = Lexicon([[A, B], [A, B, C], [A, C], [A, B]])
    assert lexicon.words == 3  # the repeated word counts once
    ab = lexicon.advance(lexicon.advance(0, A), B)
    assert ab > 0 and not lexicon.closes_outside(ab)  # "ab" is a word
    a = lexicon.advance(0, A)
    assert lexicon.closes_outside(a)  # "a" only starts words
    assert lexicon.advance(a, A) == -1 and lexicon.advance(-1, B) == -1  # no word continues "aa"
    assert not lexicon.closes_outside(-1)  # that word paid when it left the trie
    assert lexicon.closes_outside(0) and lexicon.advance(0, B) == -1


def test_lexicon_breaks_an_acoustic_tie_and_a_penalty_outweighs_acoustics():
    tie = posteriors([{A: 0.5, B: 0.5}, {C: 0.99}])
    options = BeamOptions(beam=8, oov_penalty=-1.0)
    assert prefix_beam_search(tie, SPACE, options, lexicon=Lexicon([[A, C]])) == [A, C]
    assert prefix_beam_search(tie, SPACE, options, lexicon=Lexicon([[B, C]])) == [B, C]
    leaning = posteriors([{A: 0.99}, {B: 0.6, C: 0.4}])  # "ab" acoustically, log(0.6/0.4) = 0.41 ahead
    ac = Lexicon([[A, C]])
    assert prefix_beam_search(leaning, SPACE, BeamOptions(beam=8, oov_penalty=-0.2), lexicon=ac) == [A, B]
    assert prefix_beam_search(leaning, SPACE, BeamOptions(beam=8, oov_penalty=-1.0), lexicon=ac) == [A, C]
    assert prefix_beam_search(leaning, SPACE, BeamOptions(beam=8), lexicon=ac) == [A, B]  # penalty 0: no lexicon


def test_a_word_that_only_starts_a_lexicon_word_pays_when_it_ends():
    # "ab" acoustically, but the lexicon has only "abc": closing "ab" (at the end or by a
    # space) costs the penalty, so a little acoustic evidence for "c" wins.
    log_probs = posteriors([{A: 0.99}, {B: 0.99}, {BLANK: 0.7, C: 0.3}])
    lexicon = Lexicon([[A, B, C]])
    assert prefix_beam_search(log_probs, SPACE, BeamOptions(beam=8)) == [A, B]
    assert prefix_beam_search(log_probs, SPACE, BeamOptions(beam=8, oov_penalty=-2.0), lexicon=lexicon) == [A, B, C]


def test_an_infinite_penalty_keeps_to_lexicon_words():
    generator = torch.Generator().manual_seed(11)
    words = [[A, B], [C], [B, A, C]]
    lexicon, allowed = Lexicon(words), {tuple(w) for w in words}
    for _ in range(6):
        log_probs = (torch.randn(14, V, generator=generator) * 2.5).log_softmax(-1)
        found = prefix_beam_search(log_probs, SPACE, BeamOptions(beam=6, oov_penalty=float("-inf")), lexicon=lexicon)
        spoken = [tuple(piece) for is_space, piece in itertools.groupby(found, key=lambda c: c == SPACE)
                  if not is_space]
        assert all(word in allowed for word in spoken), found


@pytest.mark.parametrize("beam, lm_weight, word_bonus, penalty", [
    (1, 0.0, 0.0, -1.0), (3, 0.0, 1.0, -2.0), (4, 0.8, 0.5, -3.0), (6, 0.3, 2.0, -0.5),
])
def test_lexicon_beam_matches_a_plain_reference(beam, lm_weight, word_bonus, penalty):
    generator = torch.Generator().manual_seed(100 + beam)
    words = [[A, B], [A, B, C], [C], [B, C, A]]
    options = BeamOptions(beam=beam, lm_weight=lm_weight, word_bonus=word_bonus, oov_penalty=penalty)
    for _ in range(4):
        log_probs = (torch.randn(20, V, generator=generator) * 2.5).log_softmax(-1)
        lm = Bigram(torch.randn(V, V, generator=generator) * 2)
        expected = reference_search(log_probs, SPACE, options, lm, {tuple(w) for w in words})
        assert prefix_beam_search(log_probs, SPACE, options, lm, Lexicon(words)) == expected


def test_a_positive_oov_penalty_is_refused():
    with pytest.raises(ValueError, match="oov_penalty <= 0"):
        prefix_beam_search(peaked([A]), SPACE, BeamOptions(oov_penalty=1.0), lexicon=Lexicon([[A]]))
