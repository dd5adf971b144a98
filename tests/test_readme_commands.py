"""The README's commands run, in the README's order, with small budgets.

Every `lstmlab ...` line of the README's bash blocks (the torchrun line as the plain
command it wraps) is run in-process in a scratch folder, with options appended that
shrink it to seconds: a few steps, tiny models, few held-out sequences. Later lines
use what earlier lines wrote (a trained run, a long-lag run folder), as a reader would.
A translation run is evaluated on a small TSV instead of the test books.
`lstmlab demo` is left to test_lm_demo.py, which runs it with a short budget.
"""

from __future__ import annotations

import random
import re
import shlex
from pathlib import Path

import pytest

from lstmlab.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"

TINY_LM = ["--budget", "0", "--hidden_size", "16", "--embedding_size", "8", "--num_layers", "1",
           "--batch_size", "4", "--bptt", "16", "--eval_tokens", "400", "--eval_batch_size", "64",
           "--progress", "false", "--threads", "1", "--vocab_size", "300"]
TINY_TRANSLATION = ["--embedding_size", "16", "--encoder_hidden", "16", "--decoder_hidden", "24",
                    "--batch_tokens", "300", "--eval_sentences", "5", "--progress", "false", "--threads", "1"]
TINY_SPEECH = ["--data", "my_speech", "--hidden_size", "16", "--num_layers", "1", "--batch_frames", "1500",
               "--eval_utterances", "0", "--progress", "false", "--threads", "1"]
TINY_MUSIC = ["--max_steps", "3", "--hidden_size", "16", "--batch_size", "4", "--window", "32", "--eval_interval", "0",
              "--progress", "false", "--threads", "1"]
TINY_LONGLAG = ["--max-steps", "3", "--eval-every", "3", "--eval-size", "16", "--seeds", "1", "--no-progress"]


def readme_commands() -> list[list[str]]:
    """Each README bash line that runs lstmlab, as argv after `lstmlab`."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S):
        for line in block.splitlines():
            words = shlex.split(line.split("  #")[0])
            if "lstmlab.cli" in words:  # torchrun ... -m lstmlab.cli train lm ...
                words = ["lstmlab", *words[words.index("lstmlab.cli") + 1:]]
            if words and words[0] == "lstmlab" and words[1:2] != ["demo"] and "RUN" not in words:
                commands.append(words[1:])
    return commands


def shrunk(argv: list[str], resumed_steps: int) -> list[str]:
    """`argv` with options that make it finish in seconds (appended: the last value wins)."""
    if argv[:2] == ["train", "lm"]:
        return [*argv, *TINY_LM, "--max_steps", str(resumed_steps if "--resume" in argv else 3)]
    if argv[:2] == ["train", "translation"]:
        user_data = "--data" in argv or "--source" in argv  # small files: a smaller vocabulary fits
        return [*argv, *TINY_TRANSLATION, "--vocab_size", "300" if user_data else "400",
                "--max_steps", str(resumed_steps if "--resume" in argv else 3)]
    if argv[:2] == ["train", "speech"]:  # the user's folder of recordings stands in for 6 h of synthesis
        return [*argv, *TINY_SPEECH, "--max_steps", str(resumed_steps if "--resume" in argv else 3)]
    if argv[0] == "evaluate" and "speech" in argv[1]:
        return [*argv, "--data", "my_speech"]
    if argv[0] == "evaluate" and "translation" in argv[1]:  # the test books take minutes with beam search
        return [*argv, "--data", "my_pairs.tsv"]
    if argv[:2] == ["train", "music"]:  # the chorales come from the small cache (use_small_cache)
        return [*argv, *TINY_MUSIC]
    if argv[0] == "odyssey":
        return [*argv, "--suite", "quick", "--trials", "1", "--jobs", "1", "--no-progress"]
    if argv[:2] == ["train", "longlag"]:
        return [*argv, "--max_steps", "3", "--eval_size", "16", "--progress", "false"]
    if argv[0] == "longlag":
        return [*argv, *TINY_LONGLAG]
    if argv[0] == "generate":
        return [*argv, "--length", "5"]
    return argv


def write_user_files(folder: Path) -> None:
    """The files the README's commands name: my_texts/, my_text.txt, recipe.toml."""
    rng = random.Random(0)
    words = "to be or not that is the question whether tis nobler in the mind to suffer".split()
    (folder / "my_texts").mkdir()
    (folder / "my_texts" / "a.txt").write_text("\n".join(" ".join(rng.choice(words) for _ in range(9))
                                                          for _ in range(3000)))
    (folder / "my_text.txt").write_text("HAMLET:\nTo be, or not to be (that is the question).\n")
    english = [" ".join(rng.choice(words) for _ in range(6)) for _ in range(60)]
    (folder / "my_pairs.tsv").write_text("".join(f"{e}\t{e.upper()}\n" for e in english))
    (folder / "my.en").write_text("\n".join(english) + "\n")
    (folder / "my.es").write_text("\n".join(e.upper() for e in english) + "\n")
    (folder / "my_lines.txt").write_text("to be or not\n\nthe question\n")
    from lstmlab.data import espeak

    (folder / "my_speech").mkdir()
    for index, text in enumerate(["the cat sat", "a dog ran home", "good night sweet prince", "now is the winter"]):
        espeak.synthesize(text, espeak.Voice("en-us", "m3", 170, 50), folder / "my_speech" / f"u{index}.wav")
        (folder / "my_speech" / f"u{index}.txt").write_text(text + "\n")
    espeak.synthesize("to be or not to be", espeak.Voice("en", None, 160, 50), folder / "my_recording.wav")
    (folder / "recipe.toml").write_text("[model]\nnum_layers = 1\n[train]\nlr = 0.004\n")


def test_the_readme_has_the_commands_it_should():
    commands = [" ".join(argv[:2]) for argv in readme_commands()]
    for expected in ("train lm", "train longlag", "longlag --suite", "generate runs/shakespeare",
                     "evaluate runs/shakespeare", "inspect runs/five-minutes", "train translation", "translate runs/translation",
                     "evaluate runs/translation", "inspect runs/translation",
                     "train speech", "evaluate runs/speech", "transcribe runs/speech", "inspect runs/speech", "inspect runs/longlag/checkpoints/very-long-lag-q10-p10-lstm-seed0",
                     "train music", "evaluate runs/music", "inspect runs/music", "odyssey --suite"):
        assert any(command.startswith(expected) for command in commands), expected


def test_readme_commands_run_in_order(tmp_path, monkeypatch, capsys, use_small_cache):
    monkeypatch.chdir(tmp_path)
    write_user_files(tmp_path)
    for argv in readme_commands():
        if argv[-1] == "--help":
            with pytest.raises(SystemExit) as stop:
                main(argv)
            assert stop.value.code == 0, argv
            continue
        code = main(shrunk(argv, resumed_steps=6))
        assert code == 0, f"lstmlab {' '.join(argv)} exited {code}: {capsys.readouterr().err[-2000:]}"
    assert (tmp_path / "runs" / "five-minutes" / "my-text" / "report.html").is_file()
    assert (tmp_path / "runs" / "longlag" / "checkpoints" / "very-long-lag-q10-p10-lstm-seed0" / "inspect"
            / "report.html").is_file()
    assert (tmp_path / "results" / "longlag" / "table.md").is_file()
    assert (tmp_path / "runs" / "translation" / "inspect" / "report.html").is_file()
    assert (tmp_path / "runs" / "speech" / "inspect" / "report.html").is_file()
    assert (tmp_path / "runs" / "music" / "inspect" / "report.html").is_file()
    assert (tmp_path / "runs" / "odyssey-full" / "odyssey.md").is_file()
    run = main_load(tmp_path / "runs" / "shakespeare")
    assert run.recipe == "lm" and run.config.model.hidden_size == 16


def main_load(path: Path):
    import lstmlab

    return lstmlab.load(path)
