"""`lstmlab generate RUN`: sample text from a trained language model, streaming as it samples."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run folder (uses best.pt, else latest.pt) or checkpoint file")
    parser.add_argument("--prime", default="\n", help="text to start from (default: a newline)")
    parser.add_argument("--length", type=int, default=500, help="tokens to sample (default 500)")
    parser.add_argument("--temperature", type=float, default=0.8, help="softmax temperature; 0 = greedy (default 0.8)")
    parser.add_argument("--top-k", type=int, default=0, help="sample among the K likeliest tokens; 0 = all (default)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")


def run(args: argparse.Namespace) -> int:
    import lstmlab
    from lstmlab.recipes.lm.generation import check_request, generate

    loaded = lstmlab.load(args.run)
    if loaded.recipe != "lm":
        raise ValueError(f"{args.run} is a {loaded.recipe!r} run; `lstmlab generate` samples from language models")
    check_request(loaded.tokenizer, args.prime, args.length, args.temperature, args.top_k)
    sys.stdout.write(args.prime)

    def show(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    generate(loaded.model, loaded.tokenizer, args.prime, args.length, args.temperature, args.top_k, args.seed,
             on_text=show)
    sys.stdout.write("\n")
    return 0
