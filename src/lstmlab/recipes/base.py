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
  name -> (module, one-line help), each module with ``add_arguments`` and ``run``;
- ``onnx_graphs(run)``: its inference graphs for ``lstmlab export``, name ->
  `lstmlab.export.ExportSpec` (built on `lstmlab.export.graph` and `lstmlab.export.lstm`,
  each with a sampler and a PyTorch reference for the check; see `lstmlab.export.recipes`).

Everything here is generic: `run_train` serves ``lstmlab train <name>`` for any recipe.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
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
        raise ValueError(f"the {self.name!r} recipe has no inspection report yet (`lstmlab inspect` reports on "
                         "lm, longlag, music, translation and speech runs)")

    def commands(self) -> dict[str, tuple[str, str]]:
        return {}

    def onnx_graphs(self, run: Any) -> dict[str, Any]:
        """The run's inference graphs as `lstmlab.export.ExportSpec`s, by file stem."""
        raise ValueError(f"recipe {self.name!r} has no ONNX export (its Recipe.onnx_graphs is not implemented)")

    def next_commands(self, out_dir: Path) -> list[str]:
        """What to run next on a finished run (printed after training)."""
        return [f"lstmlab evaluate {out_dir} --split validation", f"lstmlab inspect {out_dir}",
                f"lstmlab train {self.name} --out {out_dir} --resume --max_steps 0 --budget 600   # on, to 600 s of training in all"]

    def default_budget(self, config: Any) -> None:
        """Called when neither a step nor a time budget is given: five minutes."""
        config.train.budget = 300.0

    # ----------------------------------------------------------------- `lstmlab train <name>`
    def add_train_arguments(self, parser: argparse.ArgumentParser) -> None:
        config = self.default_config()
        has_data = "data.path" in field_paths(config)
        parser.usage = (f"lstmlab train {self.name} {'[--data PATH] ' if has_data else ''}[--config FILE.toml] "
                        "[--out DIR] [--resume] [--FIELD VALUE ...]")
        if has_data:
            parser.add_argument("--data", metavar="PATH", help="the data to train on (default: the bundled data)")
        parser.add_argument("--config", metavar="FILE.toml", help="TOML config (its sections are the config's)")
        parser.add_argument("--out", metavar="DIR", help=f"run folder for checkpoints and logs (default runs/{self.name}-<time>)")
        parser.add_argument("--resume", action="store_true", help="continue the run in --out from latest.pt")
        add_config_options(parser, config, skip={"data.path"},
                           title=f"config fields (type-checked; see {type(config).__module__})")

    def saved_config(self, values: dict[str, Any]) -> Any:
        """The config a checkpoint saved (`dataclasses.asdict`); a recipe whose defaults
        changed after runs were saved overrides it to fill those runs' missing fields."""
        return from_dict(type(self.default_config()), values)

    def config_from_state(self, state: dict[str, Any]) -> Any:
        """The config a checkpoint was trained with (for --resume)."""
        config = self.saved_config(state["config"])
        config.train = from_dict(type(config.train), state["train_config"])
        return config

    def run_train(self, args: argparse.Namespace) -> int:
        """`lstmlab train <name>`: config, training, then the run folder's curve and next steps."""
        from lstmlab.stopping import TrainingInterrupted

        out_dir = Path(args.out) if args.out else new_run_folder(self.name)
        base = saved = None
        if args.resume:
            path = out_dir / "latest.pt"
            state = upgrade(load_checkpoint(path), path)
            if state.get("recipe") != self.name:
                raise CheckpointError(f"{path} is a {state.get('recipe')!r} run, not a {self.name!r} run")
            base = self.config_from_state(state)
            saved = dataclasses.asdict(base)
        data = getattr(args, "data", None)
        config = config_from_args(args, base or self.default_config(), {"data.path": data} if data else None)
        if saved is not None:
            refuse_model_changes(saved, dataclasses.asdict(config))
        if not config.train.max_steps and not config.train.budget:
            self.default_budget(config)
        main_process = os.environ.get("RANK", "0") == "0"
        if main_process:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
        try:
            self.train(config, out_dir, resume=args.resume)
        except TrainingInterrupted as stop:
            if main_process:
                print(f"\n{stop}; latest.pt holds it. Resume with: lstmlab train {self.name} --out {out_dir} --resume",
                      file=sys.stderr)
            return stop.exit_code
        if main_process:
            self.finish_run(out_dir)
        return 0

    def finish_run(self, out_dir: Path) -> None:
        """The learning curve (learning_curve.png) and the next commands for this run."""
        from lstmlab.curves import plot_learning_curve

        logs = [out_dir / name for name in ("metrics.jsonl", "metrics.csv") if (out_dir / name).is_file()]
        curve = plot_learning_curve(logs[0], out_dir / "learning_curve.png", f"lstmlab train {self.name}: {out_dir.name}") \
            if logs else None
        print(f"run folder: {out_dir}/ (best.pt, latest.pt, config.json{', ' + logs[0].name if logs else ''}"
              f"{', ' + curve.name if curve else ''})")
        print("next:\n" + "\n".join(f"  {command}" for command in self.next_commands(out_dir)))


def refuse_existing_run(out_dir: str | Path | None, resume: bool) -> None:
    """A new run never overwrites one: out_dir holding latest.pt needs --resume (or another --out)."""
    if out_dir is not None and not resume and (Path(out_dir) / "latest.pt").exists():
        raise ValueError(f"{out_dir} already holds a run (latest.pt); continue it with --resume "
                         "or choose another --out")


RESUME_FIXED_DATA = ("path", "tokenizer", "vocab_size")  # data fields that the saved model depends on


def refuse_model_changes(saved: dict, new: dict) -> None:
    """--resume continues the run as saved: options that change its model (or the data and
    vocabulary it was built for) are refused, naming each change."""
    fixed = [("model", key) for key in new.get("model", {})]
    fixed += [("data", key) for key in RESUME_FIXED_DATA if key in new.get("data", {})]
    changes = [f"{key}: {saved[section][key]!r} -> {new[section][key]!r}"
               for section, key in fixed if saved.get(section, {}).get(key) != new[section][key]]
    if changes:
        raise ValueError("--resume continues the run as it was saved, but these options would change its model "
                         f"or data: {'; '.join(changes)}. Start a new run (another --out) to change them")
