"""`lstmlab inspect RUN [--text TEXT | --file F] [--out DIR]`: a report of an LSTM's inner workings.

RUN is a run folder (or checkpoint file) of any recipe; the recipe loads the model and
adds its own report sections. Writes DIR/report.html (self-contained: open it in any browser, offline) and the PNG
plots it shows.
"""

from __future__ import annotations

import argparse
import inspect as introspect
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run folder or checkpoint file of any recipe (language model, long-lag run, ...)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--text", help="text to run the language model on (default: a short built-in passage)")
    source.add_argument("--file", type=Path, help="read the text from this UTF-8 file")
    source.add_argument("--audio", metavar="FILE.wav", help="speech runs: the recording to inspect")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RUN's folder / inspect)")
    parser.add_argument("--max-chars", type=int, default=4000,
                        help="use at most this many characters of the text (default 4000; the trace runs step by step)")


def _default_out(run: Path) -> Path:
    return (run if run.is_dir() else run.parent) / "inspect"


def run(args: argparse.Namespace) -> int:
    import lstmlab
    from lstmlab import recipes

    run_path = Path(args.run)
    if not run_path.exists():
        raise FileNotFoundError(f"RUN not found: expected a run folder or checkpoint file at {run_path}")
    text = args.text
    if args.file is not None:
        if not args.file.is_file():
            raise FileNotFoundError(f"--file {args.file}: no such file")
        text = args.file.read_text(encoding="utf-8")
    if text is not None and args.max_chars > 0 and len(text) > args.max_chars:
        print(f"using the first {args.max_chars} of {len(text)} characters (raise --max-chars for more)")
        text = text[: args.max_chars]
    out_dir = args.out or _default_out(run_path)
    print(f"inspecting {run_path} ...", flush=True)
    loaded = lstmlab.load(run_path)
    recipe = recipes.get(loaded.recipe)
    if args.audio is not None:
        if "audio" not in introspect.signature(recipe.inspect).parameters:
            raise ValueError(f"--audio: only speech runs inspect audio; this is a {recipe.name!r} run (use --text)")
        report = recipe.inspect(loaded, text=None, out_dir=out_dir, audio=args.audio)
    else:
        report = recipe.inspect(loaded, text=text, out_dir=out_dir)
    print(f"wrote {report} (open it in a browser) and the PNG plots beside it")
    return 0
