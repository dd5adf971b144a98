"""Checkpoint files and the run-folder schema shared by every recipe.

Files are written atomically and loaded without executing code.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts saved with
`torch.save`. It is written to a temporary file in the same folder, flushed to disk,
then renamed over the target, so a crash mid-write never leaves a half-written file
where a good one was. It is loaded with `torch.load(weights_only=True)`, which refuses
to unpickle arbitrary objects (no code runs on load).

Every recipe's trainer writes the same schema (``RUN_FORMAT``), in a run folder
(``best.pt``, ``latest.pt``, ``metrics.jsonl``):

- ``format``: "lstmlab.run/2"; ``recipe``: its name in `lstmlab.recipes` ("lm", "longlag", ...);
- ``config``: the recipe's whole config (``dataclasses.asdict``), training section included;
- ``components``: what rebuilding the model needs beyond the config (a tokenizer, a task, ...);
- ``metadata``: for people (corpus, parameter count, ...);
- ``model``; and, for resuming, ``optimizer``, ``trainer`` (step, history, best value),
  ``rng``, ``batches`` (data position), ``loss_fn`` (carried state), ``per_process``.

Checkpoints of the two earlier layouts (language-model runs, "lstmlab.train/1", and
long-lag model files, ``{"kind": "longlag"}``) are read and upgraded by `upgrade`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


RUN_FORMAT = "lstmlab.run/2"
_TRAINER_V1 = "lstmlab.train/1"  # language-model runs before recipes


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupt or not an lstmlab checkpoint."""


@dataclass
class RunInfo:
    """What a recipe's trainer records about the run beside the weights (see the schema above)."""

    recipe: str  # the recipe's registered name
    config: dict[str, Any] | None  # dataclasses.asdict of the recipe's config
    components: dict[str, Any] = field(default_factory=dict)  # tokenizer, task, ...: plain types
    metadata: dict[str, Any] = field(default_factory=dict)  # for people: corpus, parameters, ...


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[tuple[int, str]]:
    """A temporary file beside `path` (its descriptor and name) for the block to write:
    renamed onto `path` when the block ends, removed when it fails or is interrupted."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        yield fd, tmp_name
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def write_text_atomically(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` through a temporary file and a rename: a reader sees the
    old file or the whole new one, and an interrupted write leaves no temporary file behind."""
    path = Path(path)
    with _replacing(path) as (fd, tmp_name):
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp_name, 0o644)  # mkstemp makes it private; a text file is an ordinary file
    return path


def save_checkpoint(obj: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write `obj` to `path` atomically (temp file + fsync + rename). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _replacing(path) as (fd, _):
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by `save_checkpoint`, without executing code.

    Raises `CheckpointError` naming the file and what is wrong with it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: expected a file at {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for damaged files
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is truncated, corrupt or not a "
            f"torch checkpoint ({type(error).__name__}: {str(error).splitlines()[0][:200]})"
        ) from error
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, expected a dict")
    return obj


def find_checkpoint(path: str | os.PathLike) -> Path:
    """A run folder's best.pt, else latest.pt; or `path` itself when it is a file."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "latest.pt"):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"run folder {path} holds no best.pt or latest.pt checkpoint")
    if not path.exists():
        raise CheckpointError(f"run not found: expected a run folder or a checkpoint file at {path}")
    return path


def upgrade(state: dict[str, Any], path: str | os.PathLike) -> dict[str, Any]:
    """`state` in the current schema (RUN_FORMAT); earlier layouts are converted in memory."""
    if state.get("format") == RUN_FORMAT:
        return state
    if state.get("format") == _TRAINER_V1 and (state.get("metadata") or {}).get("task") == "lm":
        metadata = dict(state["metadata"])
        config, tokenizer = metadata.pop("config"), metadata.pop("tokenizer")
        metadata.pop("task")
        trainer = dict(state["trainer"])
        trainer.setdefault("best_value", trainer.pop("best_loss", None))
        return {**state, "format": RUN_FORMAT, "recipe": "lm", "config": config,
                "components": {"tokenizer": tokenizer}, "metadata": metadata, "trainer": trainer}
    if state.get("kind") == "longlag":
        metadata = {key: value for key, value in state.items()
                    if key not in ("kind", "task", "task_config", "model_config", "state_dict")}
        return {"format": RUN_FORMAT, "recipe": "longlag", "config": None, "model": state["state_dict"],
                "components": {"task": state["task_config"], "model": state["model_config"]},
                "metadata": {"task": state["task"], **metadata}}
    raise CheckpointError(f"{path} is not an lstmlab run checkpoint (format {state.get('format')!r}, "
                          f"expected {RUN_FORMAT!r}; no recipe recorded)")


def read_run_checkpoint(path: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """(checkpoint file, its state in the current schema) for a run folder or checkpoint file."""
    checkpoint_path = find_checkpoint(path)
    return checkpoint_path, upgrade(load_checkpoint(checkpoint_path), checkpoint_path)
