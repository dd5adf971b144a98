"""`lstmlab train translation` end to end on a small user TSV: train, load, translate,
evaluate, inspect, resume exactly, and clear errors for bad data and requests."""

from __future__ import annotations

import json

import pytest
import torch

import lstmlab
from lstmlab.cli import main
from lstmlab.checkpoint import load_checkpoint

ENGLISH = ["the cat sleeps", "the dog runs", "a bird sings", "the cat runs", "a dog sleeps", "the bird runs",
           "a cat sings", "the dog sings", "a bird sleeps", "the cat eats", "a dog eats", "the bird eats"]
SPANISH = {"the": "el", "a": "un", "cat": "gato", "dog": "perro", "bird": "pájaro", "sleeps": "duerme",
           "runs": "corre", "sings": "canta", "eats": "come"}
TINY = ["--vocab_size", "300", "--embedding_size", "16", "--encoder_hidden", "16", "--decoder_hidden", "24",
        "--batch_tokens", "200", "--eval_sentences", "0", "--progress", "false", "--threads", "1"]


def write_pairs(path, repeat: int = 6):
    lines = [f"{e}\t{' '.join(SPANISH[w] for w in e.split())}" for e in ENGLISH] * repeat
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("translation")
    data = write_pairs(folder / "pairs.tsv")
    out = folder / "run"
    assert main(["train", "translation", "--data", str(data), "--out", str(out), "--max_steps", "12", *TINY]) == 0
    return data, out


def test_train_writes_a_run_folder_and_load_translates(trained, capsys):
    data, out = trained
    for name in ("best.pt", "latest.pt", "config.json", "metrics.jsonl", "learning_curve.png"):
        assert (out / name).is_file(), name
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    validation = [r for r in records if r["split"] == "validation"]
    assert validation and {"bleu", "chrf", "loss"} <= set(validation[-1])
    run = lstmlab.load(out)
    assert run.recipe == "translation"
    results = run.translate(["the cat sleeps", "", "zebra ☃ 日本 " * 80], beam=3)
    assert len(results) == 3 and all(isinstance(r.text, str) for r in results)
    assert results[2].truncated and not results[0].truncated  # cut at max_source_tokens, never a crash
    first = results[0]
    if first.attention is not None:
        assert first.attention.shape == (len(first.pieces), len(first.source_pieces))
        torch.testing.assert_close(first.attention.sum(-1), torch.ones(len(first.pieces)))
    with pytest.raises(TypeError, match="list of sentences"):
        run.translate("the cat")


def test_translate_and_evaluate_commands(trained, tmp_path, capsys, monkeypatch):
    data, out = trained
    capsys.readouterr()
    assert main(["translate", str(out), "--text", "the dog runs\nthe cat eats", "--beam", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    lines = tmp_path / "in.txt"
    lines.write_text("a bird sings\n\nthe cat\n", encoding="utf-8")
    assert main(["translate", str(out), "--file", str(lines), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["source"] for r in rows] == ["a bird sings", "", "the cat"]
    import io
    monkeypatch.setattr("sys.stdin", io.StringIO("the dog eats\na cat\n"))
    assert main(["translate", str(out)]) == 0  # lines from standard input
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["evaluate", str(out), "--data", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sentences"] == 72 and {"bleu", "chrf", "loss", "bleu_greedy", "signature"} <= set(report)
    assert main(["evaluate", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["data"].startswith("test split")


def test_inspect_writes_attention_and_gates(trained, tmp_path):
    _, out = trained
    assert main(["inspect", str(out), "--text", "the cat sleeps\nthe dog runs", "--out", str(tmp_path / "r")]) == 0
    page = (tmp_path / "r" / "report.html").read_text()
    assert "Attention, sentence 2" in page and "Decoder LSTM, layer 0" in page
    assert (tmp_path / "r" / "attention_1.png").stat().st_size > 1000


def test_resume_is_exact(tmp_path):
    data = write_pairs(tmp_path / "pairs.tsv", repeat=3)
    common = ["train", "translation", "--data", str(data), *TINY, "--eval_interval", "4"]
    assert main([*common, "--out", str(tmp_path / "straight"), "--max_steps", "8"]) == 0
    from lstmlab.recipes.translation.config import TranslationConfig
    from lstmlab.recipes.translation.task import train_translation
    from lstmlab.config import apply_overrides
    config = TranslationConfig()
    apply_overrides(config, {"data.path": str(data), "max_steps": 8, "eval_interval": 4, **dict(zip(
        [k.lstrip("-") for k in TINY[0::2]], TINY[1::2]))})
    train_translation(config, tmp_path / "halves", until_step=4)
    train_translation(config, tmp_path / "halves", resume=True)
    straight = load_checkpoint(tmp_path / "straight" / "latest.pt")["model"]
    halves = load_checkpoint(tmp_path / "halves" / "latest.pt")["model"]
    assert straight.keys() == halves.keys()
    for key in straight:
        torch.testing.assert_close(straight[key], halves[key], rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("argv,message", [
    (["translate", "{run}", "--beam", "0"], "at least 1"),
    (["train", "translation", "--data", "{bad}", "--max_steps", "1"], "line 2"),
    (["train", "translation", "--source", "{data}", "--max_steps", "1"], "--source and --target"),
])
def test_bad_requests_are_one_line_errors(trained, tmp_path, capsys, argv, message):
    data, out = trained
    bad = tmp_path / "bad.tsv"
    bad.write_text("one\tuno\ntwo without a tab\n", encoding="utf-8")
    argv = [a.format(run=out, bad=bad, data=data) for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_torchrun_two_processes_train_one_translation_model(tmp_path):
    """`torchrun --nproc_per_node=2 -m lstmlab.cli train translation`: each process trains on
    its half of every batch; one run folder, written by rank 0."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    data = write_pairs(tmp_path / "pairs.tsv")
    torchrun = Path(sys.executable).parent / "torchrun"
    command = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "lstmlab.cli", "train", "translation",
               "--data", str(data), "--out", str(tmp_path / "run"), "--max_steps", "6", *TINY]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=180,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert finished.stdout.count("run folder") == 1
    state = load_checkpoint(tmp_path / "run" / "latest.pt")
    assert state["trainer"]["world_size"] == 2 and state["trainer"]["step"] == 6
    assert len(state["per_process"]) == 2
