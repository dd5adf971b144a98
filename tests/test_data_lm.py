"""Corpora, tokenisers and batching for language modelling."""

from __future__ import annotations

import pytest
import torch

from lstmlab.data.batching import BPTTBatches, evaluation_windows, make_streams
from lstmlab.data.shakespeare import TEST_PLAYS, VALIDATION_PLAYS, load_plays, markdown_to_speeches, shakespeare_splits
from lstmlab.data.text import CorpusError, load_splits, read_corpus, split_text
from lstmlab.data.tokenizers import BPETokenizer, CharTokenizer, tokenizer_from_dict

SAMPLE = "ROMEO:\nBut soft, what light through yonder window breaks?\n\nJULIET:\nAy me!  O Romeo — ¿qué? 漢字\n"


def test_markdown_play_becomes_plain_speeches():
    markdown = ("# A Play\n\n## ACT I\n\n_Enter HAMLET and HORATIO,\nwith others_\n\n**HAMLET**  \n"
                "To be, or not\\--to be.  \n_[Aside]_  \nThat is the question.\n\n_Exit_\n\n**HORATIO**  \nMy lord!\n")
    assert markdown_to_speeches(markdown) == (
        "HAMLET:\nTo be, or not--to be.\nThat is the question.\n\nHORATIO:\nMy lord!\n")


def test_shakespeare_split_holds_out_whole_plays_deterministically():
    splits = shakespeare_splits()
    plays = load_plays()
    assert len(plays) >= 30
    assert 4_000_000 < len(splits.train) + len(splits.validation) + len(splits.test) < 6_000_000
    for name in VALIDATION_PLAYS:
        assert plays[name] in splits.validation and plays[name] not in splits.train
    for name in TEST_PLAYS:
        assert plays[name] in splits.test and plays[name] not in splits.train
    assert splits.validation.startswith("First Witch:\nWhen shall we three meet again\n")
    assert shakespeare_splits() == splits  # same split every time
    assert "**" not in splits.train and "\\" not in splits.train and "#" not in splits.train


@pytest.mark.parametrize("make", [lambda: CharTokenizer.train(SAMPLE),
                                  lambda: BPETokenizer.train(SAMPLE * 40 + shakespeare_splits().validation[:20000], 600)])
def test_tokenizers_round_trip_and_pieces_concatenate(make):
    tokenizer = make()
    ids = tokenizer.encode(SAMPLE)
    assert tokenizer.decode(ids) == SAMPLE
    pieces = tokenizer.pieces(SAMPLE)
    assert len(pieces) == len(ids) and "".join(pieces) == SAMPLE
    assert all(0 <= i < tokenizer.vocab_size for i in ids)
    reloaded = tokenizer_from_dict(tokenizer.to_dict())
    assert reloaded.encode(SAMPLE) == ids and reloaded.vocab_size == tokenizer.vocab_size


def test_bpe_round_trips_unseen_characters_and_merges_frequent_words():
    tokenizer = BPETokenizer.train(shakespeare_splits().validation[:50000], 800)
    unseen = "Ωμέγα 🎭 tabs\tand\r\nnewlines\n\n"
    assert tokenizer.decode(tokenizer.encode(unseen)) == unseen
    assert "".join(tokenizer.pieces(unseen)) == unseen
    text = "And the king shall come to me with my lord\n"
    assert len(tokenizer.encode(text)) < len(text) / 2  # subwords, not characters
    with pytest.raises(ValueError, match="vocab_size must exceed"):
        BPETokenizer.train("abc" * 100, 200)


def test_char_tokenizer_maps_unseen_characters_to_unknown():
    tokenizer = CharTokenizer.train("abc")
    assert tokenizer.encode("abz") == [tokenizer.index["a"], tokenizer.index["b"], 0]


def test_user_corpus_errors_are_clear(tmp_path):
    (tmp_path / "binary.dat").write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(CorpusError, match="binary"):
        read_corpus(tmp_path / "binary.dat")
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1") * 100)
    with pytest.raises(CorpusError, match="not valid UTF-8"):
        read_corpus(tmp_path / "latin1.txt")
    with pytest.raises(CorpusError, match="no such file"):
        load_splits(str(tmp_path / "missing.txt"))
    with pytest.raises(CorpusError, match="too small"):
        split_text("ab", "tiny")


def test_user_folder_is_read_in_sorted_order_and_split_contiguously(tmp_path):
    (tmp_path / "b.txt").write_text("second " * 200)
    (tmp_path / "a.txt").write_text("first " * 200)
    (tmp_path / ".hidden").write_text("never")
    text = read_corpus(tmp_path)
    assert text.startswith("first ") and "never" not in text
    splits = load_splits(str(tmp_path))
    assert splits.train + splits.validation + splits.test == text
    assert len(splits.validation) == pytest.approx(0.05 * len(text), abs=2)


def test_streams_are_time_major_columns_of_the_text():
    streams = make_streams(list(range(20)), batch_size=3)
    assert streams.shape == (6, 3)
    assert streams[:, 1].tolist() == [6, 7, 8, 9, 10, 11]
    with pytest.raises(ValueError, match="corpus too small"):
        make_streams(list(range(20)), batch_size=3, min_length=8)


def test_bptt_windows_cover_the_streams_and_wrap_with_a_new_epoch():
    streams = make_streams(list(range(100)), batch_size=2)  # (50, 2)
    batches = BPTTBatches(streams, bptt=10)
    seen = [next(batches) for _ in range(5)]
    assert seen[0].starts_epoch and not any(b.starts_epoch for b in seen[1:])
    assert torch.equal(seen[0].targets[:-1], seen[0].inputs[1:])
    assert torch.cat([b.inputs for b in seen]).shape[0] == 49  # the last row only as a target
    assert next(batches).starts_epoch and batches.epoch == 1


def test_variable_bptt_is_resumable_from_its_state():
    streams = make_streams(list(range(2000)), batch_size=4)
    batches = BPTTBatches(streams, bptt=20, variable_length=True, seed=5)
    for _ in range(3):
        next(batches)
    saved = batches.state_dict()
    expected = [next(batches).inputs for _ in range(6)]
    resumed = BPTTBatches(streams, bptt=20, variable_length=True, seed=999)
    resumed.load_state_dict(saved)
    got = [next(resumed).inputs for _ in range(6)]
    assert all(torch.equal(a, b) for a, b in zip(expected, got))
    assert len({window.shape[0] for window in expected}) > 1  # lengths do vary


def test_evaluation_windows_visit_every_target_once():
    streams = make_streams(list(range(61)), batch_size=3)  # (20, 3)
    windows = evaluation_windows(streams, bptt=7)
    assert sum(w.tokens for w in windows) == 19 * 3
