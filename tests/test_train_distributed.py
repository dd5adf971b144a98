"""Two-process data-parallel training with torchrun (gloo, CPU), the same command as one process."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import torch

from lstmlab.checkpoint import load_checkpoint
from lstmlab.metrics import read_log


def test_torchrun_two_processes_train_one_model(tmp_path):
    rng = random.Random(0)
    words = "to be or not that is the question whether tis nobler in the mind".split()
    (tmp_path / "words.txt").write_text("\n".join(" ".join(rng.choice(words) for _ in range(8)) for _ in range(600)))
    torchrun = Path(sys.executable).parent / "torchrun"
    command = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "lstmlab.cli", "train", "lm",
               "--data", str(tmp_path / "words.txt"), "--out", str(tmp_path / "run"), "--hidden_size", "24",
               "--num_layers", "1", "--embedding_size", "8", "--batch_size", "8", "--bptt", "20",
               "--max_steps", "20", "--log_interval", "5", "--progress", "false"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(command, capture_output=True, text=True, timeout=150, env=environment)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert finished.stdout.count("run folder") == 1  # only rank 0 reports
    state = load_checkpoint(tmp_path / "run" / "latest.pt")
    assert state["trainer"]["world_size"] == 2 and state["trainer"]["step"] == 20
    assert state["trainer"]["tokens_seen"] == 20 * 8 * 20  # both halves of the batch were trained on
    records = read_log(tmp_path / "run" / "metrics.jsonl")
    train_losses = [r["loss"] for r in records if r["split"] == "train"]
    assert len(train_losses) == 4 and all(torch.isfinite(torch.tensor(train_losses)))
