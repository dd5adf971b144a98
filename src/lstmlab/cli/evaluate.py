"""`lstmlab evaluate RUN [--data PATH] [--split validation|test] [--json]`: any recipe's run.

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


def run(args: argparse.Namespace) -> int:
    import lstmlab
    from lstmlab import recipes

    loaded = lstmlab.load(args.run)
    report = recipes.get(loaded.recipe).evaluate(loaded, data=args.data, split=args.split)
    report["checkpoint"] = str(loaded.checkpoint)
    if args.json:
        print(json.dumps(report))
    else:
        print(", ".join(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in report.items()))
    return 0
