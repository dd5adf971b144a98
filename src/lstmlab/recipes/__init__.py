"""Recipes: one folder per application, found by the registry below.

A recipe (``recipes/<name>/``) wires data, a model from `lstmlab.models`, its loss, its
metrics, its decoding and its report sections onto the shared services (`lstmlab.train`,
`lstmlab.checkpoint`, `lstmlab.inspect`). Its package exposes ``RECIPE``, an instance of
`lstmlab.recipes.base.Recipe`. The command line (`lstmlab train <recipe>`, `lstmlab
evaluate RUN`, `lstmlab inspect RUN`) and `lstmlab.load` dispatch through `get`, so
adding a recipe is adding a folder: no shared module names it. Recipes from other
packages register through the ``lstmlab.recipes`` entry-point group.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import pkgutil

from lstmlab.recipes.base import Recipe

ENTRY_POINT_GROUP = "lstmlab.recipes"


@functools.cache
def registry() -> dict[str, Recipe]:
    """Every recipe by name: the folders of this package, then installed entry points."""
    found: dict[str, Recipe] = {}
    candidates = [importlib.import_module(f"{__name__}.{info.name}").RECIPE
                  for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name) if info.ispkg]
    candidates += [entry.load() for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]
    for recipe in candidates:
        if not isinstance(recipe, Recipe):
            raise TypeError(f"a recipe must be a lstmlab.recipes.base.Recipe, got {type(recipe).__name__}")
        if recipe.name in found:
            raise ValueError(f"two recipes are named {recipe.name!r}")
        found[recipe.name] = recipe
    return found


def get(name: str) -> Recipe:
    """The recipe called `name`; ValueError naming the known ones otherwise."""
    recipes = registry()
    if name not in recipes:
        raise ValueError(f"unknown recipe {name!r}; expected one of: {', '.join(recipes)}")
    return recipes[name]


__all__ = ["Recipe", "get", "registry"]
