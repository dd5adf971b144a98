"""`lstmlab demo`: a small LSTM learns a toy sequence task; its gates are summarised.

The task: a stream of random digits with rare markers; the target is whether a marker
was seen within the last few steps — a job for the forget gate. Runs in seconds.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from . import LSTM, engines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def make_batch(generator: torch.Generator, steps: int = 40, batch: int = 32, window: int = 5):
    """x (T, B, 2): [marker, noise]; y (T, B): 1 if a marker fell in the last `window` steps."""
    marker = (torch.rand(steps, batch, generator=generator) < 0.05).float()
    noise = torch.rand(steps, batch, generator=generator)
    recent = torch.zeros_like(marker)
    for t in range(steps):
        recent[t] = marker[max(0, t - window + 1): t + 1].amax(dim=0)
    return torch.stack((marker, noise), dim=-1), recent


def run(args: argparse.Namespace) -> int:
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    lstm, readout = LSTM(2, 16), nn.Linear(16, 1)
    params = [*lstm.parameters(), *readout.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-2)
    print(engines.describe(lstm))
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        x, y = make_batch(generator)
        output, _ = lstm(x)
        loss = nn.functional.binary_cross_entropy_with_logits(readout(output).squeeze(-1), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == args.steps:
            print(f"step {step:4d}  loss {loss.item():.4f}")
    x, y = make_batch(generator)
    with torch.no_grad():
        output, _, trace = lstm(x, trace=True)
        accuracy = ((readout(output).squeeze(-1) > 0).float() == y).float().mean().item()
    print(f"trained {args.steps} steps in {time.perf_counter() - start:.1f}s; accuracy on new data {accuracy:.3f}")
    layer = trace[0]
    print("gate means over time, batch and units:  " + "  ".join(
        f"{name}={layer[name].mean().item():+.3f}" for name in ("i", "f", "g", "o")))
    after_marker = x[..., 0].bool()
    print(f"forget gate mean right after a marker: {layer.f[after_marker].mean().item():.3f}; "
          f"elsewhere: {layer.f[~after_marker].mean().item():.3f}")
    return 0
