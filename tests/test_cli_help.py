"""Help that teaches: every config option once, with its meaning, type, default and choices."""

from __future__ import annotations

import pytest

from lstmlab import __version__
from lstmlab.cli import main
from lstmlab.config import field_comments
from lstmlab.recipes.lm.config import LMDataConfig


def help_text(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


def test_train_help_explains_each_field_once(capsys):
    text = help_text(capsys, "train", "lm")
    assert text.count("--tokenizer") == 1 and text.count("--max_steps") == 1
    assert "--max-steps" not in text  # the dashed spelling is accepted, not listed again
    flat = " ".join(text.split())
    assert "characters, or sentencepiece BPE (str; default 'char'; one of char, bpe)" in flat
    assert "LSTM hidden width H" in flat and "(int; default 256)" in flat


def test_the_dashed_spelling_still_works(tmp_path, capsys):
    assert main(["train", "lm", "--hidden-size", "big"]) == 2
    assert "expects int, got 'big'" in capsys.readouterr().err


def test_field_comments_come_from_the_source():
    comments = field_comments(LMDataConfig)
    assert comments["bptt"] == "truncated-BPTT window length in tokens"
    assert set(comments) == {"path", "tokenizer", "vocab_size", "batch_size", "bptt", "variable_bptt",
                             "eval_batch_size", "eval_tokens"}


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"lstmlab {__version__}"
