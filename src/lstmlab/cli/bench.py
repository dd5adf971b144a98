"""`lstmlab bench NAME [options]`: run a benchmark program from `benchmarks/`.

Benchmarks are programs, not tests: they live in the repository's `benchmarks/` folder
(`engine` -> benchmarks/engine.py, `lm` -> benchmarks/lm_throughput.py, `translation` ->
benchmarks/translation_throughput.py, `speech` -> benchmarks/speech_throughput.py) and write their
tables to `benchmarks/results/`. Options after NAME go to the program (`--help` lists them).
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

BENCHMARKS = {"engine": "engine.py", "lm": "lm_throughput.py", "translation": "translation_throughput.py",
              "speech": "speech_throughput.py"}
FOLDER = Path(__file__).resolve().parents[3] / "benchmarks"  # src/lstmlab/cli -> repository root


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=sorted(BENCHMARKS), help="which benchmark")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="passed to the benchmark program")


def run(args: argparse.Namespace) -> int:
    path = FOLDER / BENCHMARKS[args.name]
    if not path.is_file():
        print(f"lstmlab bench: expected the benchmark program at {path} (benchmarks run from a source "
              "checkout of lstmlab), but it is not there", file=sys.stderr)
        return 2
    sys.argv = [str(path), *args.options]
    sys.path.insert(0, str(FOLDER))  # as `python benchmarks/X.py` would: its helpers import by name
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as stop:  # the program's own exit status
        return int(stop.code or 0)
    return 0
