"""The translation model and its decoding: shapes, baselines, beam search, overfitting, BLEU."""

from __future__ import annotations

import math

import pytest
import torch

import lstmlab
from lstmlab.metrics import translation_scores
from lstmlab.models import count_parameters
from lstmlab.models.seq2seq import DecoderState, Memory, Seq2Seq, Seq2SeqConfig, reverse_padded
from lstmlab.recipes.translation.batches import PairBatches, Specials, length_batches, make_batch
from lstmlab.recipes.translation.decoding import beam_search, greedy_search
from lstmlab.recipes.translation.loss import TranslationLoss

SPECIALS = Specials(bos=1, eos=2, pad=20)
VOCAB = 21


def small_config(**changes) -> Seq2SeqConfig:
    values = dict(embedding_size=16, encoder_hidden=12, decoder_hidden=20, dropout=0.0)
    values.update(changes)
    return Seq2SeqConfig(**values)


def random_batch(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    pairs = [(torch.randint(3, 20, (n,), generator=generator).tolist(),
              torch.randint(3, 20, (m,), generator=generator).tolist()) for n, m in ((5, 4), (2, 6), (7, 3))]
    return make_batch(pairs, SPECIALS)


@pytest.mark.parametrize("attention", ["general", "dot", "concat", "none"])
@pytest.mark.parametrize("input_feeding", [False, True])
def test_shapes_and_gradients(attention, input_feeding):
    torch.manual_seed(0)
    model = Seq2Seq(small_config(attention=attention, input_feeding=input_feeding), VOCAB, SPECIALS.pad)
    batch = random_batch()
    logits = model(batch.source, batch.lengths, batch.target_in)
    assert logits.shape == (3, batch.target_in.shape[1], VOCAB)
    TranslationLoss(SPECIALS.pad, 0.1)(model, batch).loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_padding_does_not_change_a_sentence():
    """A sentence's logits are the same alone and beside a longer, padded one."""
    torch.manual_seed(0)
    model = Seq2Seq(small_config(), VOCAB, SPECIALS.pad).eval()
    short = ([4, 5, 6], [7, 8])
    alone = make_batch([short], SPECIALS)
    together = make_batch([short, ([9] * 9, [3] * 7)], SPECIALS)
    a = model(alone.source, alone.lengths, alone.target_in)[0]
    b = model(together.source, together.lengths, together.target_in)[0, :a.shape[0]]
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_reverse_padded_keeps_padding_at_the_end():
    tokens = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    assert reverse_padded(tokens, torch.tensor([3, 2]), 0).tolist() == [[3, 2, 1, 0], [5, 4, 0, 0]]


def test_variants_and_gru_baseline():
    model = Seq2Seq(small_config(encoder_variants="layer_norm", decoder_variants="peephole,coupled"), VOCAB, 20)
    assert model.encoder.spec.layer_norm and model.decoder.spec.peephole and model.decoder.spec.coupled
    lstm = count_parameters(Seq2Seq(small_config(), VOCAB, 20))
    gru = Seq2Seq(small_config(cell="gru"), VOCAB, 20)
    assert isinstance(gru.encoder, torch.nn.GRU)
    assert abs(count_parameters(gru) - lstm) / lstm < 0.02
    with pytest.raises(ValueError, match="unknown LSTM variant"):
        Seq2Seq(small_config(encoder_variants="peepholes"), VOCAB, 20)
    with pytest.raises(ValueError, match="supports none of the LSTM options"):
        Seq2Seq(small_config(cell="gru", decoder_variants="layer_norm"), VOCAB, 20)
    assert isinstance(model.decoder, lstmlab.LSTM)


@pytest.mark.parametrize("attention,input_feeding", [("general", False), ("concat", True), ("none", False)])
def test_beam_one_equals_greedy(attention, input_feeding):
    torch.manual_seed(1)
    model = Seq2Seq(small_config(attention=attention, input_feeding=input_feeding), VOCAB, SPECIALS.pad).eval()
    batch = random_batch(3)
    greedy = greedy_search(model, batch.source, batch.lengths, SPECIALS.bos, SPECIALS.eos)
    beam = beam_search(model, batch.source, batch.lengths, SPECIALS.bos, SPECIALS.eos, beam=1)
    for g, b in zip(greedy, beam):
        assert g.tokens == b.tokens
        assert g.log_probability == pytest.approx(b.log_probability, abs=1e-5)
        if g.attention is not None:
            assert g.attention.shape == (len(g.tokens) + 1, batch.source.shape[1])
            torch.testing.assert_close(g.attention, b.attention)


class TableModel:
    """A decoder whose next-token distribution depends only on the previous token (a
    constructed case): greedy takes 'a' (0.6) but then ends at 0.6 x 0.5 = 0.30, while
    'b' (0.4) ends at 0.4 x 0.9 = 0.36: beam 2 must find 'b'."""

    TABLE = {1: {3: 0.6, 4: 0.4}, 3: {2: 0.5, 5: 0.5}, 4: {2: 0.9, 5: 0.1}, 5: {2: 1.0}}

    def encode(self, source, lengths):
        batch = source.shape[0]
        return Memory(torch.zeros(batch, 1, 1), torch.zeros(batch, 1, 1), torch.ones(batch, 1, dtype=torch.bool),
                      torch.zeros(1, batch, 1))

    def initial_state(self, memory):
        return DecoderState(memory.state, None)

    def step(self, memory, token, state):
        log_probs = torch.full((token.shape[0], 6), float("-inf"))
        for row, previous in enumerate(token.tolist()):
            for word, p in self.TABLE[previous].items():
                log_probs[row, word] = math.log(p)
        return log_probs, None, DecoderState(state.recurrent, None)


def test_beam_search_finds_the_known_best_sequence():
    source, lengths = torch.zeros(2, 1, dtype=torch.long), torch.tensor([1, 1])
    greedy = greedy_search(TableModel(), source, lengths, bos=1, eos=2)
    best = beam_search(TableModel(), source, lengths, bos=1, eos=2, beam=2, length_penalty=0.0)
    assert [h.tokens for h in greedy] == [[3], [3]]
    assert [h.tokens for h in best] == [[4], [4]]
    assert best[0].log_probability == pytest.approx(math.log(0.36))


def test_tiny_model_overfits_a_few_pairs():
    torch.manual_seed(0)
    pairs = [([3, 4, 5], [6, 7]), ([8, 9], [10, 11, 12]), ([13, 14, 15, 16], [17, 18]), ([5, 4], [19, 6, 19])]
    model = Seq2Seq(small_config(embedding_size=32, encoder_hidden=32, decoder_hidden=48), VOCAB, SPECIALS.pad)
    batches = PairBatches(pairs, SPECIALS, batch_tokens=100, seed=0)
    loss_fn = TranslationLoss(SPECIALS.pad, 0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        loss = loss_fn(model, next(batches)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    batch = make_batch(pairs, SPECIALS)
    found = beam_search(model, batch.source, batch.lengths, SPECIALS.bos, SPECIALS.eos, beam=3)
    assert [h.tokens for h in found] == [target for _, target in pairs]


def test_batches_resume_where_they_stopped():
    pairs = [([3] * (i % 7 + 1), [4] * (i % 5 + 1)) for i in range(200)]
    straight = PairBatches(pairs, SPECIALS, batch_tokens=40, seed=5)
    seen = [next(straight).source.tolist() for _ in range(straight.batches_per_epoch + 7)]
    first = PairBatches(pairs, SPECIALS, batch_tokens=40, seed=5)
    for _ in range(first.batches_per_epoch + 3):
        next(first)
    resumed = PairBatches(pairs, SPECIALS, batch_tokens=40, seed=5)
    resumed.load_state_dict(first.state_dict())
    assert [next(resumed).source.tolist() for _ in range(4)] == seen[-4:]


def test_length_batches_respect_the_token_budget():
    lengths = [(n, n) for n in (1, 2, 3, 9, 9, 30)]
    batches = length_batches(lengths, 20, range(6))
    assert sorted(i for batch in batches for i in batch) == list(range(6))
    assert all(len(b) == 1 or max(max(lengths[i]) + 1 for i in b) * len(b) <= 20 for b in batches)


def test_bleu_and_chrf_through_sacrebleu_on_a_hand_made_case():
    """Hypothesis 'a b c d e' against 'a b c d f g': n-gram precisions 4/5, 3/4, 2/3, 1/2,
    brevity penalty exp(1 - 6/5)."""
    expected = math.exp(1 - 6 / 5) * (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25 * 100
    scores = translation_scores(["a b c d e"], ["a b c d f g"])
    assert scores["bleu"] == pytest.approx(expected, abs=0.01)
    assert translation_scores(["the very same four words"], ["the very same four words"])["bleu"] == pytest.approx(100.0)
    assert 0 < scores["chrf"] < 100 and "nrefs:1" in scores["signature"]["bleu"]
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        translation_scores(["a"], [])


@pytest.mark.parametrize("reverse_source", [False, True])
def test_encode_with_trace_gives_the_same_memory(reverse_source):
    torch.manual_seed(0)
    model = Seq2Seq(small_config(reverse_source=reverse_source), VOCAB, SPECIALS.pad).eval()
    batch = random_batch(2)
    with torch.no_grad():
        plain = model.encode(batch.source, batch.lengths)
        traced, trace = model.encode(batch.source, batch.lengths, trace=True)
    torch.testing.assert_close(plain.values, traced.values)
    torch.testing.assert_close(plain.state, traced.state)
    assert trace[0].c.shape[:2] == (3, batch.source.shape[1])  # batch-first, one step per source token
