"""`lstmlab inspect` end to end: a language-model run trained for a few steps, and a long-lag checkpoint."""

import sys

import pytest
import torch

from lstmlab.checkpoint import save_checkpoint
from lstmlab.cli import main

CORPUS = 'HAMLET:\nTo be, or not to be: "that" is the question (said he).\n[Exit.]\n' * 150


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm")
    corpus = folder / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    saved_argv = sys.argv
    try:
        code = main(["train", "lm", "--data", str(corpus), "--out", str(folder / "run"), "--hidden_size", "12",
                     "--embedding_size", "6", "--num_layers", "2", "--batch_size", "4", "--bptt", "20",
                     "--max_steps", "2", "--eval_tokens", "100", "--progress", "false"])
    finally:
        sys.argv = saved_argv
    assert code == 0
    return folder / "run"


def run_cli(arguments):
    saved_argv = sys.argv
    try:
        return main(arguments)
    finally:
        sys.argv = saved_argv


def test_inspect_language_model_run(lm_run, tmp_path, capsys):
    code = run_cli(["inspect", str(lm_run), "--text", 'He said "yes" (twice).\nShe said "no".\n', "--out", str(tmp_path)])
    assert code == 0
    report = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Inside a language model" in report and "best.pt" in report
    assert (tmp_path / "heatmaps_layer1.png").is_file()  # both layers are shown
    assert "wrote" in capsys.readouterr().out


def test_inspect_text_from_file_defaults_to_the_run_folder(lm_run):
    text_file = lm_run / "sample.txt"
    text_file.write_text("To be (or not) to be.\n" * 20, encoding="utf-8")
    assert run_cli(["inspect", str(lm_run), "--file", str(text_file), "--max-chars", "100"]) == 0
    assert (lm_run / "inspect" / "report.html").is_file()


def test_inspect_rejects_what_it_cannot_read(tmp_path, capsys):
    not_a_run = save_checkpoint({"something": torch.zeros(2)}, tmp_path / "other.pt")
    assert run_cli(["inspect", str(not_a_run), "--out", str(tmp_path / "out")]) == 2
    assert "not an lstmlab run checkpoint" in capsys.readouterr().err
    assert run_cli(["inspect", str(tmp_path / "missing.pt")]) == 2
    assert "RUN not found" in capsys.readouterr().err


def test_inspect_long_lag_checkpoint(tmp_path):
    assert run_cli(["train", "longlag", "--task", "adding", "--length", "20", "--hidden_size", "6",
                    "--max_steps", "5", "--eval_size", "32", "--progress", "false", "--out", str(tmp_path / "run")]) == 0
    checkpoint = tmp_path / "run"
    assert run_cli(["inspect", str(checkpoint), "--out", str(tmp_path / "report")]) == 0
    report = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "The cells that carry the answer across the lag" in report
    assert "Units that follow something in the text" not in report  # task symbols are not text
    assert (tmp_path / "report" / "longlag_cells.png").is_file()
    assert run_cli(["inspect", str(checkpoint), "--text", "abc", "--out", str(tmp_path / "x")]) == 2
