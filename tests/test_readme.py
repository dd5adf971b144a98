"""The README's API examples run, and say what they claim."""

from __future__ import annotations

import re
from pathlib import Path

import lstmlab

README = Path(__file__).resolve().parents[1] / "README.md"


def api_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## The LSTM, exactly")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def test_readme_python_examples_run_in_order():
    blocks = [b for b in re.findall(r"```python\n(.*?)```", api_section(), flags=re.S)
              if not b.startswith(">>>")]  # console transcripts are checked below
    assert len(blocks) >= 4
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    trace = namespace["trace"]
    assert len(trace) == 2 and tuple(trace[1].f.shape) == (3, 5, 1, 20)
    assert tuple(namespace["y_t"].shape) == (3, 20)
    assert namespace["stream"].state[0].shape == (2, 3, 20)


def test_readme_describe_output_is_current():
    block = re.search(r"```python\n>>> (print\(.*?\))\n(.*?)```", api_section(), flags=re.S)
    expected = block.group(2).strip()
    assert lstmlab.engines.describe(lstmlab.LSTM(10, 20)) == expected
