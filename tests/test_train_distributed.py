"""Two-process data-parallel training with torchrun (gloo, CPU), the same command as one process."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lstmlab.checkpoint import load_checkpoint
from lstmlab.metrics import read_log


def torchrun_train(data: Path, out: Path, *options: str) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node=2 -m lstmlab.cli train lm` on a tiny model; fails the test on error."""
    torchrun = Path(sys.executable).parent / "torchrun"
    command = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "lstmlab.cli", "train", "lm",
               "--data", str(data), "--out", str(out), "--hidden_size", "24", "--num_layers", "1",
               "--embedding_size", "8", "--batch_size", "8", "--bptt", "20", "--progress", "false", *options]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(command, capture_output=True, text=True, timeout=150, env=environment)
    assert finished.returncode == 0, finished.stderr[-3000:]
    return finished


def write_words(path: Path) -> Path:
    rng = random.Random(0)
    words = "to be or not that is the question whether tis nobler in the mind".split()
    path.write_text("\n".join(" ".join(rng.choice(words) for _ in range(8)) for _ in range(600)))
    return path


def test_torchrun_two_processes_train_one_model(tmp_path):
    data = write_words(tmp_path / "words.txt")
    finished = torchrun_train(data, tmp_path / "run", "--max_steps", "20", "--log_interval", "5")
    assert finished.stdout.count("run folder") == 1  # only rank 0 reports
    state = load_checkpoint(tmp_path / "run" / "latest.pt")
    assert state["trainer"]["world_size"] == 2 and state["trainer"]["step"] == 20
    assert state["trainer"]["tokens_seen"] == 20 * 8 * 20  # both halves of the batch were trained on
    records = read_log(tmp_path / "run" / "metrics.jsonl")
    train_losses = [r["loss"] for r in records if r["split"] == "train"]
    assert len(train_losses) == 4 and all(torch.isfinite(torch.tensor(train_losses)))


@pytest.mark.slow
def test_torchrun_resume_repeats_the_uninterrupted_run(tmp_path):
    """Stop after 7 steps, resume to 16 (constant LR, so the schedule does not depend on the
    budget): the same curve as 16 steps in one go, with dropout and carried state per process."""
    data = write_words(tmp_path / "words.txt")
    options = ("--log_interval", "1", "--schedule", "constant", "--dropout_input", "0.3", "--dropout_output", "0.3")
    torchrun_train(data, tmp_path / "whole", "--max_steps", "16", *options)
    torchrun_train(data, tmp_path / "split", "--max_steps", "7", *options)
    torchrun_train(data, tmp_path / "split", "--max_steps", "16", "--resume")
    curve = lambda run: [r["loss"] for r in read_log(tmp_path / run / "metrics.jsonl") if r["split"] == "train"]  # noqa: E731
    assert len(curve("split")) == 16 and curve("split") == curve("whole")


def test_leave_process_group_frees_the_ddp_wrapper_before_the_group(tmp_path, monkeypatch):
    """DDP's reducer must not hold the group's last reference when it is freed (a gloo
    shutdown hang otherwise): leave_process_group drops it, then destroys the group."""
    import weakref

    import torch.distributed as dist
    from torch import nn

    from lstmlab.train import LossOutput, TrainConfig, Trainer

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = nn.Linear(2, 1)
        loss = lambda m, batch: LossOutput(m(batch).sum(), 1, 0.0)  # noqa: E731
        trainer = Trainer(model, iter([]), loss, TrainConfig(max_steps=1, progress=False))
        wrapper = nn.parallel.DistributedDataParallel(model)
        trainer.train_model, freed = wrapper, weakref.ref(wrapper)
        del wrapper
        seen_when_destroyed = []
        destroy = dist.destroy_process_group
        monkeypatch.setattr(dist, "destroy_process_group", lambda: (seen_when_destroyed.append(freed()), destroy()))
        trainer.leave_process_group()
        assert seen_when_destroyed == [None] and trainer.train_model is model
        assert not dist.is_initialized()
        trainer.leave_process_group()  # without a group: nothing to do
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
