"""`lstmlab evaluate RUN [--data PATH] [--split validation|test] [--json]`: any recipe's run
(speech runs also take `--beam K --lm LM_RUN --lm_weight A --word_bonus B --lexicon FILE
--oov_penalty P --per-voice`).

The checkpoint names its recipe, which computes the metrics (loss and bits/char for a
language model, fraction wrong and success for a long-lag run, ...).
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run folder (uses best.pt, else latest.pt) or checkpoint file")
    parser.add_argument("--data", metavar="PATH", help="evaluate on all of this file/folder "
                        "(default: the run's own held-out data, --split)")
    parser.add_argument("--split", choices=("validation", "test"), default="test",
                        help="held-out split of the run's data when --data is not given (default test)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    decoding = parser.add_argument_group("speech runs: decoding")
    decoding.add_argument("--beam", type=int, help="prefix beam width (default: the run's; 16 for runs trained now)")
    decoding.add_argument("--lm", metavar="LM_RUN", help="also decode with this character LM run (shallow fusion)")
    decoding.add_argument("--lm_weight", type=float, help="LM weight alpha (default: the run's; 0.8 for runs trained now)")
    decoding.add_argument("--word_bonus", type=float, help="per-word bonus beta (default: the run's; 0.5 for runs trained now)")
    decoding.add_argument("--lexicon", metavar="FILE", help="also decode preferring the words of this text file "
                          "(e.g. RUN/lm_text.txt), with the LM when --lm is given")
    decoding.add_argument("--oov_penalty", type=float, help="with --lexicon: cost of a word outside it (default: "
                          "the run's, -4 unless it saved another; --oov_penalty=-inf: lexicon words only)")
    decoding.add_argument("--per-voice", action="store_true", help="also CER and WER per voice variant")


DECODING_OPTIONS = ("beam", "lm", "lm_weight", "word_bonus", "lexicon", "oov_penalty", "per_voice")


def decoding_options(args: argparse.Namespace, recipe) -> dict | None:
    """The speech decoding options given, or None; refused for recipes whose evaluate takes none."""
    import inspect

    # identity, not equality: --word_bonus 0 and --lm_weight 0 are given values (0 == False)
    given = {name: value for name in DECODING_OPTIONS
             if (value := getattr(args, name, None)) is not None and value is not False}
    if not given:
        return None
    if "options" not in inspect.signature(recipe.evaluate).parameters:
        flags = ", ".join("--" + name.replace("_", "-") if name == "per_voice" else "--" + name for name in given)
        raise ValueError(f"{flags}: decoding options of speech runs; this is a {recipe.name!r} run")
    if "beam" in given and given["beam"] < 1:
        raise ValueError(f"--beam: expected a width of at least 1, got {given['beam']}")
    return given


def run(args: argparse.Namespace) -> int:
    import lstmlab
    from lstmlab import recipes

    loaded = lstmlab.load(args.run)
    recipe = recipes.get(loaded.recipe)
    options = decoding_options(args, recipe)
    if options is None:
        report = recipe.evaluate(loaded, data=args.data, split=args.split)
    else:
        report = recipe.evaluate(loaded, data=args.data, split=args.split, options=options)
    report["checkpoint"] = str(loaded.checkpoint)
    if args.json:
        print(json.dumps(report))
    else:
        print(", ".join(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in report.items()
                        if not isinstance(v, dict)))
        for key, table in ((k, v) for k, v in report.items() if isinstance(v, dict)):
            print(f"{key}:")
            for name, row in table.items():
                print(f"  {name}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                for k, v in row.items()))
    return 0
