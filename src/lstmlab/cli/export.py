"""`lstmlab export RUN --format onnx [--out DIR] [--no-check]`: a trained run's graphs as ONNX.

Writes each of the run's inference graphs (see `lstmlab.export.recipes`) to DIR/NAME.onnx
(default RUN/onnx), then runs each one in ONNX Runtime against the PyTorch model at
several batch sizes and lengths and prints the max abs errors (exit 1 above 1e-5).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run folder (uses best.pt, else latest.pt) or checkpoint file")
    parser.add_argument("--format", choices=("onnx",), default="onnx", help="export format (default onnx)")
    parser.add_argument("--out", metavar="DIR", help="folder for the graphs (default RUN/onnx)")
    parser.add_argument("--no-check", action="store_true",
                        help="skip the ONNX Runtime comparison with the PyTorch model")


def run(args: argparse.Namespace) -> int:
    from lstmlab.export.run import export_run

    results = export_run(args.run, args.out, check=not args.no_check)
    failed = False
    for path, report in results:
        if report is None:
            print(f"wrote {path} (not checked)")
            continue
        print(f"wrote {path}; ONNX Runtime vs PyTorch: {report.summary().split(': ', 1)[1]}")
        failed = failed or not report.passed
    if failed:
        print("lstmlab export: some graphs differ from the PyTorch model by more than the tolerance")
        return 1
    return 0
