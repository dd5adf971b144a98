"""`lstmlab translate RUN [--text "..." | --file F | standard input] [--beam K] [--json]`.

Prints one translation per input line, in order (an empty line gives the model's
translation of an empty source). With --json: one JSON object per line, with the
pieces, the attention weights, the log-probability and the time taken.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run folder (uses best.pt, else latest.pt) or checkpoint file")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--text", help="one sentence (or several, one per line) to translate")
    source.add_argument("--file", metavar="F", help="translate every line of this UTF-8 file")
    parser.add_argument("--beam", type=int, help="beam width; 1 = greedy (default: the run's, 5)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line, with attention and timings")


def read_lines(args: argparse.Namespace) -> list[str]:
    if args.text is not None:
        return args.text.split("\n")
    if args.file is not None:
        try:
            return open(args.file, encoding="utf-8").read().splitlines()
        except UnicodeDecodeError as error:
            raise ValueError(f"{args.file}: not UTF-8 text (byte {error.start}: {error.reason})") from None
    if sys.stdin.isatty():
        print("reading lines to translate from standard input (end with Ctrl-D)", file=sys.stderr)
    return sys.stdin.read().splitlines()


def run(args: argparse.Namespace) -> int:
    import lstmlab

    loaded = lstmlab.load(args.run)
    if loaded.recipe != "translation":
        raise ValueError(f"{args.run} is a {loaded.recipe!r} run; `lstmlab translate` needs a translation run")
    if args.beam is not None and args.beam < 1:
        raise ValueError(f"--beam: expected a width of at least 1, got {args.beam}")
    lines = read_lines(args)
    started = time.perf_counter()
    translations = loaded.translate(lines, beam=args.beam)
    seconds = time.perf_counter() - started
    for translation in translations:
        if not args.json:
            print(translation.text)
            continue
        attention = None if translation.attention is None else [[round(float(w), 4) for w in row]
                                                                 for row in translation.attention]
        print(json.dumps({"source": translation.source, "translation": translation.text,
                          "source_pieces": translation.source_pieces, "pieces": translation.pieces,
                          "attention": attention, "log_probability": translation.log_probability,
                          "truncated": translation.truncated, "seconds": seconds / max(1, len(lines))},
                         ensure_ascii=False))
    if args.json is False and any(t.truncated for t in translations):
        print(f"note: lines longer than {loaded.config.data.max_source_tokens} tokens were cut there",
              file=sys.stderr)
    return 0
