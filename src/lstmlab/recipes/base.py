"""What a recipe is: the hooks the shared command line and `lstmlab.load` call.

A recipe subclasses `Recipe`, sets ``name`` and ``summary``, and implements:

- ``default_config()``: its typed config (a dataclass with a ``train`` section, a
  `lstmlab.train.TrainConfig`; a ``data.path`` field, if any, becomes ``--data``);
- ``train(config, out_dir, resume)``: build data, model, loss and evaluation, run the
  shared `Trainer` (which writes the run folder), print what came out;
- ``load(state, path)``: a `lstmlab.runs.Run` (the ready model and its components)
  from a checkpoint in the shared schema;
- ``evaluate(run, data, split)``: metrics as a dict; ``inspect(run, text, out_dir)``:
  the HTML report (`lstmlab.inspect.write_report` with the recipe's own sections);
- ``commands()``: extra sub-commands of its own (``generate``, ``demo``, ``longlag``),
  name -> (module, one-line help), each module with ``add_arguments`` and ``run``.

Everything here is generic: `run_train` serves ``lstmlab train <name>`` for any recipe.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from lstmlab.checkpoint import CheckpointError, load_checkpoint, upgrade
from lstmlab.config import add_config_options, config_from_args, field_paths, from_dict


def new_run_folder(recipe: str) -> Path:
    """runs/<recipe>-<date>-<time>, with -2, -3, ... when that folder exists already."""
    base = Path("runs") / f"{recipe}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder, number = base, 1
    while folder.exists():
        number += 1
        folder = base.with_name(f"{base.name}-{number}")
    return folder


class Recipe:
    """Base class of every recipe; see the module docstring for the hooks."""

    name: str = ""
    summary: str = ""  # one line, shown by `lstmlab train --help`

    # ----------------------------------------------------------------- hooks
    def default_config(self) -> Any:
        raise NotImplementedError

    def train(self, config: Any, out_dir: Path, *, resume: bool) -> dict[str, Any]:
        raise NotImplementedError

    def load(self, state: dict[str, Any], path: Path) -> Any:
        raise NotImplementedError

    def evaluate(self, run: Any, *, data: str | None, split: str) -> dict[str, Any]:
        raise NotImplementedError

    def inspect(self, run: Any, *, text: str | None, out_dir: Path) -> Path:
        raise NotImplementedError(f"the {self.name!r} recipe has no inspection report")

    def commands(self) -> dict[str, tuple[str, str]]:
        return {}

    def default_budget(self, config: Any) -> None:
        """Called when neither a step nor a time budget is given: five minutes."""
        config.train.budget = 300.0

    # ----------------------------------------------------------------- `lstmlab train <name>`
    def add_train_arguments(self, parser: argparse.ArgumentParser) -> None:
        config = self.default_config()
        if "data.path" in field_paths(config):
            parser.add_argument("--data", metavar="PATH", help="the data to train on (default: the bundled data)")
        parser.add_argument("--config", metavar="FILE.toml", help="TOML config (its sections are the config's)")
        parser.add_argument("--out", metavar="DIR", help=f"run folder for checkpoints and logs (default runs/{self.name}-<time>)")
        parser.add_argument("--resume", action="store_true", help="continue the run in --out from latest.pt")
        add_config_options(parser, config, skip={"data.path"},
                           title=f"config fields (type-checked; see {type(config).__module__})")

    def config_from_state(self, state: dict[str, Any]) -> Any:
        """The config a checkpoint was trained with (for --resume)."""
        config = from_dict(type(self.default_config()), state["config"])
        config.train = from_dict(type(config.train), state["train_config"])
        return config

    def run_train(self, args: argparse.Namespace) -> int:
        out_dir = Path(args.out) if args.out else new_run_folder(self.name)
        base = self.default_config()
        if args.resume:
            path = out_dir / "latest.pt"
            state = upgrade(load_checkpoint(path), path)
            if state.get("recipe") != self.name:
                raise CheckpointError(f"{path} is a {state.get('recipe')!r} run, not a {self.name!r} run")
            base = self.config_from_state(state)
        data = getattr(args, "data", None)
        config = config_from_args(args, base, {"data.path": data} if data else None)
        if not config.train.max_steps and not config.train.budget:
            self.default_budget(config)
        self.train(config, out_dir, resume=args.resume)
        return 0
