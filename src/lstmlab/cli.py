"""The `lstmlab` command: one entry point, one sub-command per job.

Each sub-command lives in its own module that defines

    def add_arguments(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> int | None

and is listed in ``COMMANDS`` below (module imported lazily, so `lstmlab --help`
stays fast and one broken job cannot break the others' start-up).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). Add a line here to add a sub-command.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("lstmlab.demo", "run the built-in demonstration (what `make demo` runs)"),
    "info": ("lstmlab.info", "print versions, threads and which engine runs"),
    "bench": ("lstmlab.bench_cli", "run a benchmark from benchmarks/: `lstmlab bench engine|lm [options]`"),
    "longlag": ("lstmlab.experiments.longlag_cli", "LSTM vs GRU vs tanh RNN on the 1997 long-time-lag tasks"),
    "inspect": ("lstmlab.inspect_cli", "report on a trained LSTM's gates and cells: HTML page + PNG plots"),
    "train": ("lstmlab.lm_cli", "train a model: `lstmlab train lm [--data PATH] [--budget S] [--out DIR]`"),
    "generate": ("lstmlab.lm_cli", "sample text from a trained language model (streams as it samples)"),
    "evaluate": ("lstmlab.lm_cli", "evaluate a trained language model (loss, bits/char or perplexity)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lstmlab", description="LSTM networks, opened up: train, inspect, benchmark."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        command_parser.set_defaults(_module=module_name)
        if "--help" in sys.argv or "-h" in sys.argv or _wants(name):
            importlib.import_module(module_name).add_arguments(command_parser)
    return parser


def _wants(name: str) -> bool:
    """True when the command line selects sub-command `name` (import only that one)."""
    return len(sys.argv) > 1 and sys.argv[1] == name


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:])
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(args._module)
    result = module.run(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
