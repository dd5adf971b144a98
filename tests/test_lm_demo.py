"""`lstmlab demo` (what `make demo` runs), for a few seconds instead of five minutes."""

from __future__ import annotations

import json

import torch

from lstmlab.cli import main
import lstmlab


def test_demo_trains_reports_samples_and_writes_its_run_folder(tmp_path, capsys):
    threads = torch.get_num_threads()
    try:
        assert main(["demo", "--budget", "3", "--threads", "1", "--out", str(tmp_path / "demo"),
                     "--sample-length", "40"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "bits/char" in out and "ROMEO:" in out and f"Run folder: {tmp_path / 'demo'}" in out
    for name in ("best.pt", "latest.pt", "metrics.jsonl", "loss_curve.png", "summary.json"):
        assert (tmp_path / "demo" / name).is_file(), name
    assert (tmp_path / "demo" / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert 0 < summary["validation_nats_per_char"] < 5 and summary["training_seconds"] >= 3
    report = tmp_path / "demo" / "inspect" / "report.html"  # the gate report of `lstmlab inspect`
    assert report.is_file() and "saturat" in report.read_text(encoding="utf-8").lower()
    assert f"Gate report: {report}" in out
    run = lstmlab.load(tmp_path / "demo")
    assert run.recipe == "lm" and run.tokenizer.vocab_size > 70 and run.model.lstm.hidden_size == 256
