"""The `lstmlab` argument parser: errors that say what to do, with a "did you mean".

argparse (Python 3.11) answers a misspelt option with the top-level usage and no hint.
`Parser` keeps every parser of the command tree reachable from the top one, so an
unknown option is matched against the options of the sub-command it was given to, and
an unknown sub-command against the commands there are.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from typing import NoReturn


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors name the closest valid spelling."""

    def error(self, message: str) -> NoReturn:
        hint = self._suggestion(message)
        # unknown options surface at the top parser: show the usage of the command they were given to
        chosen = self._chosen_parsers()[-1] if message.startswith("unrecognized arguments") else self
        chosen.print_usage(sys.stderr)
        self.exit(2, f"{chosen.prog}: error: {message}{hint}\n")

    def _suggestion(self, message: str) -> str:
        unknown = re.match(r"unrecognized arguments: (.*)", message)
        if unknown:
            options = self._options_of_chosen_command()
            hints = [match[0] for word in unknown.group(1).split()
                     if word.startswith("--") and (match := difflib.get_close_matches(word.split("=")[0], options, 1, cutoff=0.75))]
            return f" (did you mean {' '.join(hints)}?)" if hints else f" (see: {self._chosen_prog()} --help)"
        choice = re.match(r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            choices = [word.strip("' ") for word in choice.group(3).split(",")]
            match = difflib.get_close_matches(choice.group(2), choices, 1)
            return f" (did you mean {match[0]!r}?)" if match else ""
        return ""

    def _chosen_parsers(self) -> list[argparse.ArgumentParser]:
        """This parser and the sub-command parsers that the command line selects."""
        chain: list[argparse.ArgumentParser] = [self]
        words = sys.argv[1:]
        while True:
            subparsers = [a for a in chain[-1]._actions if isinstance(a, argparse._SubParsersAction)]
            chosen = next((subparsers[0].choices[w] for w in words if subparsers and w in subparsers[0].choices), None)
            if chosen is None:
                return chain
            chain.append(chosen)

    def _options_of_chosen_command(self) -> list[str]:
        return [option for parser in self._chosen_parsers() for action in parser._actions
                for option in action.option_strings]

    def _chosen_prog(self) -> str:
        return self._chosen_parsers()[-1].prog
