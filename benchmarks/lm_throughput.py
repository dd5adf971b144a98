"""Training throughput of the LM recipe against a plain torch.nn.LSTM training loop.

Both train the same model (embedding 64 -> 2 x 256 LSTM -> softmax over ~81 characters,
batch 64, BPTT 100, Adam, gradient clipping, hidden state carried across batches) on
the same Shakespeare batches:

- **recipe**: `lstmlab.train.Trainer` driving `lstmlab.models.lm.LanguageModel`
  (`lstmlab.LSTM`, engine "auto"), exactly as `lstmlab train lm` / `lstmlab demo` run it;
- **baseline**: a hand-written loop around `torch.nn.LSTM`.

Rounds are interleaved (baseline, recipe, baseline, ...) after a warm-up, so a change in
machine load hits both; we report medians of characters/second and the ratio.

    .venv/bin/python benchmarks/lm_throughput.py [--rounds 7] [--steps 20] [--threads N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from lstmlab.config import apply_overrides
from lstmlab.data.batching import BPTTBatches, make_streams
from lstmlab.data.shakespeare import shakespeare_splits
from lstmlab.data.tokenizers import CharTokenizer
from lstmlab.models.lm import LanguageModel
from lstmlab.recipes.lm.config import LMConfig
from lstmlab.recipes.lm.task import LanguageModelLoss
from lstmlab.train import Trainer
from ratio_table import write_ratio_table  # benchmarks/ratio_table.py (the script's folder is on sys.path)

RESULTS = Path(__file__).parent / "results" / "lm_throughput.md"


class PlainLoop:
    """The baseline: torch.nn.LSTM in the simplest correct training loop."""

    def __init__(self, vocab_size: int, batches: BPTTBatches, lr: float):
        self.embedding = nn.Embedding(vocab_size, 64)
        self.lstm = nn.LSTM(64, 256, 2)
        self.decoder = nn.Linear(256, vocab_size)
        self.parameters = [*self.embedding.parameters(), *self.lstm.parameters(), *self.decoder.parameters()]
        self.optimizer = torch.optim.Adam(self.parameters, lr=lr)
        self.batches, self.state = batches, None

    def run(self, steps: int) -> int:
        tokens = 0
        for _ in range(steps):
            batch = next(self.batches)
            output, state = self.lstm(self.embedding(batch.inputs), self.state)
            self.state = tuple(s.detach() for s in state)
            logits = self.decoder(output)
            loss = nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), batch.targets.reshape(-1))
            self.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.parameters, 1.0)
            self.optimizer.step()
            tokens += batch.tokens
        return tokens


class Recipe:
    """The recipe: the shared Trainer and the LanguageModel, as `lstmlab train lm` runs them."""

    def __init__(self, vocab_size: int, batches: BPTTBatches, lr: float):
        config = apply_overrides(LMConfig(), {"embedding_size": 64, "hidden_size": 256, "num_layers": 2,
                                              "lr": lr, "max_steps": 10**9, "progress": False,
                                              "log_interval": 20, "schedule": "cosine"})
        model = LanguageModel(config.model, vocab_size)
        self.trainer = Trainer(model, batches, LanguageModelLoss(), config.train, unit="char")
        self.batch_tokens = batches.streams.size(1) * batches.bptt

    def run(self, steps: int) -> int:
        before = self.trainer.tokens_seen
        self.trainer.fit(until_step=self.trainer.step + steps)
        return self.trainer.tokens_seen - before


def timed(runner, steps: int) -> float:
    started = time.perf_counter()
    tokens = runner.run(steps)
    return tokens / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20, help="training steps per round")
    parser.add_argument("--warmup", type=int, default=15, help="untimed steps first (oneDNN set-up)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    text = shakespeare_splits().train
    tokenizer = CharTokenizer.train(text)
    streams = make_streams(tokenizer.encode(text), 64)
    torch.manual_seed(0)
    runners = {"baseline": PlainLoop(tokenizer.vocab_size, BPTTBatches(streams, 100), 3e-3),
               "recipe": Recipe(tokenizer.vocab_size, BPTTBatches(streams, 100), 3e-3)}
    for runner in runners.values():
        runner.run(args.warmup)
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for round_index in range(args.rounds):
        for name, runner in runners.items():
            rates[name].append(timed(runner, args.steps))
        print(f"round {round_index + 1}: " + ", ".join(f"{n} {r[-1]:,.0f} chars/s" for n, r in rates.items()), flush=True)
    ratios = [r / b for r, b in zip(rates["recipe"], rates["baseline"])]
    write_results(args, rates, ratios)


def write_results(args: argparse.Namespace, rates: dict[str, list[float]], ratios: list[float]) -> None:
    model = "Model: embedding 64 -> 2 x 256 LSTM -> softmax (81 characters); batch 64, BPTT 100, Adam, clip 1.0."
    command = (f".venv/bin/python benchmarks/lm_throughput.py --rounds {args.rounds} --steps {args.steps}"
               + (f" --threads {args.threads}" if args.threads else ""))
    print(write_ratio_table(RESULTS, "LM training throughput: recipe vs a plain torch.nn.LSTM loop", model, command,
                            "chars/s", rates, ratios))


if __name__ == "__main__":
    main()
