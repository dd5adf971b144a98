"""Ctrl-C (SIGINT) and SIGTERM during `lstmlab train`: a real process gets a real signal,
finishes its step, saves latest.pt, says how to resume, exits 130 / 143; the run resumes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lstmlab.checkpoint import load_checkpoint


def start_training(data: Path, out: Path) -> subprocess.Popen:
    script = Path(sys.executable).parent / "lstmlab"
    command = [str(script), "train", "lm", "--data", str(data), "--out", str(out), "--max_steps", "100000",
               "--hidden_size", "16", "--embedding_size", "8", "--num_layers", "1", "--batch_size", "8",
               "--bptt", "20", "--log_interval", "1", "--progress", "false", "--threads", "1"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def wait_for_steps(out: Path, process: subprocess.Popen, steps: int = 5, timeout: float = 120.0) -> None:
    """Until the metrics log holds `steps` training records (the loop is running)."""
    log = out / "metrics.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if log.is_file() and len(log.read_text().splitlines()) >= steps:
            return
        time.sleep(0.2)
    process.kill()
    raise AssertionError("training did not start within the timeout")


@pytest.mark.parametrize("signal_number, exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_the_run_and_says_how_to_resume(tmp_path, signal_number, exit_code):
    data = tmp_path / "words.txt"
    rng = random.Random(0)
    words = "to be or not that is the question whether tis nobler in the mind".split()
    data.write_text("\n".join(" ".join(rng.choice(words) for _ in range(8)) for _ in range(600)))
    out = tmp_path / "run"
    process = start_training(data, out)
    wait_for_steps(out, process)
    process.send_signal(signal_number)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == exit_code, stderr
    assert "Traceback" not in stderr
    assert f"Resume with: lstmlab train lm --out {out} --resume" in stderr
    step = load_checkpoint(out / "latest.pt")["trainer"]["step"]
    logged = len([line for line in (out / "metrics.jsonl").read_text().splitlines() if '"train"' in line])
    assert step >= 5 and step == logged  # every finished step is in the checkpoint, none half-done
    assert not list(out.glob(".*.tmp")), "no half-written checkpoint left behind"
    script = Path(sys.executable).parent / "lstmlab"
    resumed = subprocess.run([str(script), "train", "lm", "--out", str(out), "--resume", "--max_steps", str(step + 3),
                              "--progress", "false"], capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from step {step} of {out / 'latest.pt'}" in resumed.stdout
    assert load_checkpoint(out / "latest.pt")["trainer"]["step"] == step + 3
