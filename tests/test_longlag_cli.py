"""`lstmlab longlag` end to end: table, JSON, PNG, checkpoints; the quick suite (slow)."""

import json

import pytest

from lstmlab.cli import main
import lstmlab
from lstmlab.recipes.longlag.suites import long_suite, paper_suite, quick_suite


def test_cli_single_task_writes_table_json_png_and_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["longlag", "--task", "adding", "--length", "20,30", "--models", "lstm,rnn", "--seeds", "2",
                 "--hidden", "8", "--max-steps", "20", "--eval-every", "10", "--eval-size", "64",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| adding-T20 | lstm | 8 |" in printed and "| adding-T30 | rnn |" in printed
    results = json.loads((out / "results.json").read_text())
    assert len(results["runs"]) == 2 * 2 * 2 and len(results["summaries"]) == 4
    assert {r["seed"] for r in results["runs"]} == {0, 1}
    assert results["command"].startswith("lstmlab longlag --task adding")
    assert (out / "success.png").stat().st_size > 1000
    run = lstmlab.load(out / "checkpoints" / "adding-T30-lstm-seed0")
    assert run.recipe == "longlag" and run.task.label == "adding-T30" and run.model.lstm.hidden_size == 8
    assert not (out / "checkpoints" / "adding-T30-rnn-seed0").exists()


@pytest.mark.parametrize("arguments, message", [
    (["--task", "adding", "--models", "lstm,transformer"], "--models expects"),
    (["--task", "adding", "--length", "ten"], "--length expects positive integers"),
    (["--task", "reber", "--length", "10"], "no length parameter"),
    (["--suite", "quick", "--length", "10"], "--length applies to --task"),
    (["--task", "adding", "--lstm-options", "bogus"], "unknown or malformed lstm option"),
])
def test_cli_bad_arguments_say_what_was_expected(arguments, message, tmp_path, capsys):
    assert main(["longlag", *arguments, "--out", str(tmp_path), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("lstmlab longlag: error: ") and message in error and "Traceback" not in error


def test_quick_suite_covers_every_task():
    labels = {experiment.task.name for experiment in quick_suite()}
    assert labels == {"reber", "noise-free", "very-long-lag", "adding", "multiplication", "temporal-order",
                      "modern-adding", "copy"}


@pytest.mark.slow
def test_quick_suite_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "quick"
    assert main(["longlag", "--suite", "quick", "--jobs", "2", "--out", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert len(results["runs"]) == len(quick_suite()) * 3
    assert results["wall_seconds"] < 180, "the quick suite must finish in 3 minutes"
    assert len(list((out / "checkpoints").glob("*-lstm-seed0/latest.pt"))) == len(quick_suite())


def test_paper_and_long_suites_cover_the_papers_lags():
    paper = {experiment.task.label for experiment in paper_suite()}
    assert {"noise-free-p100", "adding-T100", "multiplication-T100", "temporal-order-6a"} <= paper
    long = {experiment.task.label for experiment in long_suite()}
    assert long == {"adding-T500", "adding-T1000", "multiplication-T500", "multiplication-T1000"}
