"""The `lstmlab` command: one entry point, one sub-command per job.

Shared sub-commands live in this folder (`train`, `evaluate`, `inspect`, `info`,
`bench`); each recipe adds its own (`generate` and `demo` from `lm`, `longlag` from
`longlag`) through `Recipe.commands()`. A sub-command module defines

    def add_arguments(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> int | None

and is imported only when its command is used (or for --help). A user's mistake (a bad
option value, a missing file, a damaged checkpoint) ends with one line on stderr and
exit status 2, not a traceback; a bug still shows its traceback, with a line asking
for a report. A misspelt option or command gets a "did you mean" (`cli.parser`).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from lstmlab.checkpoint import CheckpointError
from lstmlab.cli.parser import Parser
from lstmlab.config import ConfigError
from lstmlab.data.espeak import EspeakError
from lstmlab.data.flite import FliteError

# what a user's mistake raises (a bad value, a missing or damaged file): one line, exit 2
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError,
               UnicodeDecodeError, CheckpointError, ConfigError,
               EspeakError, FliteError)  # the synthesisers: missing or failed

# name -> (module, one-line help) of the shared sub-commands
SHARED_COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("lstmlab.cli.train", "train a recipe's model: `lstmlab train RECIPE [--data PATH] [--budget S] [--out DIR]`"),
    "evaluate": ("lstmlab.cli.evaluate", "evaluate a trained run of any recipe on its held-out data or a file"),
    "inspect": ("lstmlab.cli.inspect", "report on a trained LSTM's gates and cells: HTML page + PNG plots"),
    "info": ("lstmlab.cli.info", "print versions, threads and which engine runs"),
    "export": ("lstmlab.cli.export", "export a trained run's inference graphs: `lstmlab export RUN --format onnx [--out DIR]`"),
    "odyssey": ("lstmlab.odyssey.cli", "Greff et al.'s LSTM variant study on lstmlab's tasks: `lstmlab odyssey --suite quick|full`"),
    "bench": ("lstmlab.cli.bench", "run a benchmark from benchmarks/: `lstmlab bench engine|lm [options]`"),
}


def commands() -> dict[str, tuple[str, str]]:
    """The shared sub-commands and every recipe's own."""
    from lstmlab import recipes

    found = dict(SHARED_COMMANDS)
    for recipe in recipes.registry().values():
        for name, entry in recipe.commands().items():
            if name in found:
                raise ValueError(f"recipe {recipe.name!r} adds command {name!r}, which exists already")
            found[name] = entry
    return found


def build_parser() -> argparse.ArgumentParser:
    from lstmlab import __version__

    parser = Parser(prog="lstmlab", description="LSTM networks, opened up: train, inspect, benchmark.")
    parser.add_argument("--version", action="version", version=f"lstmlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, (module_name, help_text) in commands().items():
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
    try:
        result = module.run(args)
    except USER_ERRORS as error:  # the user's mistake: say what, no traceback
        print(f"lstmlab {args.command}: error: {error}", file=sys.stderr)
        return 2
    except Exception:
        print(f"lstmlab {args.command}: this is a bug in lstmlab, not a mistake of yours; please report it "
              "with the traceback below and the command you ran", file=sys.stderr)
        raise
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
