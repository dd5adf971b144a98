"""`lstmlab info`: versions, threads, CPU features and which engine runs."""

from __future__ import annotations

import argparse
import platform

import torch

from lstmlab import __version__, engines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(args: argparse.Namespace) -> int:
    print(f"lstmlab {__version__}, torch {torch.__version__}, Python {platform.python_version()}")
    print(f"machine: {platform.machine()} {platform.processor() or ''}".rstrip())
    print(f"threads: {torch.get_num_threads()}, CPU capability: {torch.backends.cpu.get_cpu_capability()}, "
          f"oneDNN: {torch.backends.mkldnn.is_available()}")
    print(engines.describe())
    return 0
