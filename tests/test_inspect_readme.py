"""The README's inspect example runs and does what it says."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def inspect_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Inside the network: `lstmlab inspect`")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_readme_inspect_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", inspect_section(), flags=re.S)
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)  # noqa: S102 - our own README
    assert len(namespace["best"]) == 3
    assert namespace["recording"].quantity(1, "c").shape == (50, 3, 1, 8)
    assert {item.gate for item in namespace["shut_or_open"]} == {"i", "f", "o", "g"}
    assert namespace["report"] == Path("inspect-out") / "report.html" and namespace["report"].is_file()


def test_readme_names_only_existing_commands_and_options():
    from lstmlab.cli import commands
    from lstmlab.cli.inspect import add_arguments
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = {option for action in parser._actions for option in action.option_strings}
    for line in re.findall(r"^lstmlab inspect .*$", inspect_section(), flags=re.M):
        for option in re.findall(r"(--[a-z-]+)", line.split("#")[0]):
            assert option in options, line
    assert "inspect" in commands()
