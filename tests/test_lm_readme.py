"""The README's language-modelling commands are current: each one parses with today's CLI."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from lstmlab.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def lm_commands() -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Language modelling")
    end = text.find("\n## ", start + 1)
    section = text[start:end if end != -1 else None]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        for line in block.splitlines():
            words = shlex.split(line.split("  #")[0])
            if "lstmlab.cli" in words:  # torchrun ... -m lstmlab.cli train lm ...
                words = ["lstmlab", *words[words.index("lstmlab.cli") + 1:]]
            if words and words[0] == "lstmlab":
                commands.append(words[1:])
    return commands


def test_the_section_has_commands():
    assert len(lm_commands()) >= 6


@pytest.mark.parametrize("argv", lm_commands(), ids=lambda argv: " ".join(argv[:3]))
def test_readme_command_parses(argv, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["lstmlab", *argv])
    build_parser().parse_args(argv)  # argparse exits (SystemExit) on an unknown option
