"""`lstmlab train RECIPE [options]`: train any registered recipe (see `lstmlab.recipes`).

Every field of the recipe's config is an option (``--hidden_size 512``, or the dotted
``--model.hidden_size 512`` where a name repeats across sections), type-checked;
unknown options are errors. ``--config FILE.toml`` sets many at once.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from lstmlab import recipes

    sub = parser.add_subparsers(dest="recipe", metavar="RECIPE", required=True)
    for name, recipe in recipes.registry().items():
        recipe_parser = sub.add_parser(name, help=recipe.summary, description=recipe.summary)
        recipe.add_train_arguments(recipe_parser)


def run(args: argparse.Namespace) -> int:
    from lstmlab import recipes

    return recipes.get(args.recipe).run_train(args)
