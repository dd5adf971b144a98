"""A user's mistakes, across every command: exit status 2, one clear line, no traceback.

Each row is a bad invocation and a piece of the message it must print. They run
in-process (the same `main` as the `lstmlab` script); the two at the end run the real
script, to see what a shell user sees.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lstmlab.checkpoint import save_checkpoint
from lstmlab.cli import main

pytestmark = pytest.mark.usefixtures("single_thread")
TINY = ["--hidden_size", "8", "--embedding_size", "4", "--num_layers", "1", "--batch_size", "4", "--bptt", "16",
        "--progress", "false", "--threads", "1"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A small text, a trained language-model run, a long-lag run and some broken files."""
    folder = tmp_path_factory.mktemp("cli-errors")
    rng = random.Random(0)
    words = "to be or not that is the question whether tis nobler in the mind".split()
    small = folder / "small.txt"
    small.write_text("\n".join(" ".join(rng.choice(words) for _ in range(8)) for _ in range(600)))
    (folder / "tiny.txt").write_text("just a few words\n")
    (folder / "bad.toml").write_text("[model\nhidden_size = 3\n")
    assert main(["train", "lm", "--data", str(small), "--out", str(folder / "run"), "--max_steps", "3", *TINY]) == 0
    assert main(["train", "longlag", "--task", "adding", "--length", "20", "--hidden_size", "4", "--max_steps", "2",
                 "--eval_size", "8", "--progress", "false", "--out", str(folder / "longlag")]) == 0
    data = (folder / "run" / "latest.pt").read_bytes()
    (folder / "truncated.pt").write_bytes(data[: len(data) // 2])
    save_checkpoint({"weights": torch.zeros(2)}, folder / "foreign.pt")
    (folder / "empty-run").mkdir()
    return {"folder": folder, "small": small}


BAD_INVOCATIONS = [  # (argv with {placeholders}, a piece of the message)
    (["trian", "lm"], "did you mean 'train'"),
    (["train"], "required: RECIPE"),
    (["train", "lmm"], "did you mean 'lm'"),
    (["train", "lm", "--hiden_size", "3"], "did you mean --hidden_size"),
    (["train", "lm", "--hidden_size", "big"], "expects int, got 'big'"),
    (["train", "lm", "--tokenizer", "words"], "must be one of ['char', 'bpe']"),
    (["train", "lm", "--data", "{folder}/missing.txt"], "missing.txt"),
    (["train", "lm", "--data", "{small}", "--tokenizer", "bpe", "--max_steps", "1"], "use --vocab_size"),
    (["train", "lm", "--config", "{folder}/missing.toml"], "config file not found"),
    (["train", "lm", "--config", "{folder}/bad.toml"], "is not valid TOML"),
    (["train", "lm", "--out", "{folder}/run", "--resume", "--hidden_size", "128"], "hidden_size: 8 -> 128"),
    (["train", "lm", "--out", "{folder}/empty-run", "--resume"], "checkpoint not found"),
    (["train", "lm", "--data", "{small}", "--out", "{folder}/run", "--max_steps", "1"], "already holds a run"),
    (["train", "lm", "--data", "{folder}/tiny.txt", "--max_steps", "1", "--out", "{folder}/tiny-run"], "corpus too small"),
    (["train", "longlag", "--task", "addng"], "must be one of"),
    (["train", "longlag", "--lstm_options", "bogus", "--out", "{folder}/bogus"], "unknown or malformed lstm option"),
    (["generate", "{folder}/run", "--temperature", "-1"], "temperature must be >= 0"),
    (["generate", "{folder}/run", "--prime", "日本"], "never saw in training"),
    (["generate", "{folder}/longlag"], "samples from language models"),
    (["generate", "{folder}/nowhere"], "run not found"),
    (["evaluate", "{folder}/nowhere"], "run not found"),
    (["evaluate", "{folder}/run", "--split", "train"], "invalid choice: 'train'"),
    (["evaluate", "{folder}/truncated.pt"], "truncated, corrupt"),
    (["evaluate", "{folder}/foreign.pt"], "not an lstmlab run checkpoint"),
    (["evaluate", "{folder}/empty-run"], "no best.pt or latest.pt"),
    (["evaluate", "{folder}/longlag", "--data", "{small}"], "--data does not apply"),
    (["inspect", "{folder}/nowhere"], "RUN not found"),
    (["inspect", "{folder}/run", "--file", "{folder}/missing.txt"], "no such file"),
    (["inspect", "{folder}/longlag", "--text", "abc"], "apply to language models"),
    (["longlag", "--task", "adding", "--length", "ten"], "--length expects positive integers"),
    (["longlag", "--task", "adding", "--models", "lstm,cnn"], "--models expects"),
    (["longlag", "--suite", "quick", "--length", "10"], "--length applies to --task"),
    (["bench", "nothing"], "invalid choice: 'nothing'"),
]


@pytest.mark.parametrize("argv, message", BAD_INVOCATIONS, ids=lambda value: " ".join(value)[:50] if isinstance(value, list) else None)
def test_a_mistake_is_one_clear_line_and_exit_2(argv, message, files, capsys):
    argv = [word.format(folder=files["folder"], small=files["small"]) for word in argv]
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    error = capsys.readouterr().err
    assert code == 2, error
    assert message in error, error
    assert "Traceback" not in error
    assert len([line for line in error.splitlines() if "error:" in line]) == 1, error


def test_the_table_is_long_enough():
    assert len(BAD_INVOCATIONS) >= 25
    assert len({argv[0] for argv, _ in BAD_INVOCATIONS}) >= 6  # every command is in it


def run_script(*argv: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "lstmlab"
    return subprocess.run([str(script), *argv], capture_output=True, text=True, timeout=120)


def test_the_real_script_says_the_same(files):
    finished = run_script("train", "lm", "--out", str(files["folder"] / "run"), "--resume", "--hidden_size", "128")
    assert finished.returncode == 2 and "hidden_size: 8 -> 128" in finished.stderr
    assert "Traceback" not in finished.stderr
    version = run_script("--version")
    assert version.returncode == 0 and version.stdout.startswith("lstmlab ")
