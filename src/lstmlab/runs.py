"""`lstmlab.load(RUN)`: a trained run of any recipe, ready to use.

    run = lstmlab.load("runs/demo-20261203")   # a run folder (best.pt, else latest.pt) or a .pt file
    run.recipe, run.model, run.config           # "lm", the nn.Module in eval mode, the recipe's config
    run.tokenizer                               # a component: whatever the recipe needs to run the model

The checkpoint names its recipe; the recipe rebuilds the model and its components
(tokenizers, tasks, featurisers) from the shared schema of `lstmlab.checkpoint`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from lstmlab.checkpoint import CheckpointError, read_run_checkpoint


@dataclass
class Run:
    """A loaded run: the model and what it needs. Components read as attributes too."""

    recipe: str  # the recipe's name
    model: nn.Module  # in eval mode
    config: Any  # the recipe's config (dataclass), or the saved dict where the recipe keeps one
    checkpoint: Path  # the file it came from
    components: dict[str, Any] = field(default_factory=dict)  # tokenizer, task, ...
    metadata: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        components = self.__dict__.get("components", {})
        if name in components:
            return components[name]
        raise AttributeError(f"this {self.__dict__.get('recipe')!r} run has no {name!r}; "
                             f"its components are: {', '.join(components) or 'none'}")


def load_weights(model: nn.Module, state: dict[str, Any], path: Path) -> nn.Module:
    """`model` with the checkpoint's weights, in eval mode; CheckpointError if they do not fit."""
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not fit the saved config ({error})") from error
    return model.eval()


def load(path: str | Path) -> Run:
    """The run at `path` (run folder or checkpoint file), for any recipe."""
    from lstmlab import recipes

    checkpoint_path, state = read_run_checkpoint(path)
    return recipes.get(state["recipe"]).load(state, checkpoint_path)
