"""Training throughput of the translation recipe against a plain torch.nn.LSTM seq2seq loop.

Both train the same model (the recipe's default sizes: embedding 256, bidirectional
encoder 2 x 256, decoder 512, Luong `general` attention, tied softmax over the joint BPE
vocabulary, label smoothing 0.1, AdamW, clipping 1.0) on the same batches of Bible
verse pairs (the recipe's `PairBatches`):

- **recipe**: `lstmlab.train.Trainer` driving `lstmlab.models.seq2seq.Seq2Seq`
  (`lstmlab.LSTM`, engine "auto"), as `lstmlab train translation` runs it;
- **baseline**: the same network written by hand around `torch.nn.LSTM`.

Rounds are interleaved after a warm-up; we report medians of target tokens/second and
the median of the per-round ratios.

    .venv/bin/python benchmarks/translation_throughput.py [--rounds 5] [--steps 8] [--threads N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lstmlab.config import apply_overrides
from lstmlab.data.parallel import bible_splits
from lstmlab.data.tokenizers import BPETokenizer
from lstmlab.models.seq2seq import Seq2Seq
from lstmlab.recipes.translation.batches import PairBatches, Specials
from lstmlab.recipes.translation.config import TranslationConfig
from lstmlab.recipes.translation.loss import TranslationLoss
from lstmlab.train import Trainer
from ratio_table import interleaved_rates, write_ratio_table  # benchmarks/ratio_table.py (the script's folder is on sys.path)

RESULTS = Path(__file__).parent / "results" / "translation_throughput.md"


class PlainSeq2Seq(nn.Module):
    """The baseline network: what one writes around torch.nn.LSTM without lstmlab."""

    def __init__(self, vocab: int, pad: int, E: int = 256, H_enc: int = 256, H_dec: int = 512):
        super().__init__()
        self.embedding = nn.Embedding(vocab, E, padding_idx=pad)
        self.encoder = nn.LSTM(E, H_enc, batch_first=True, bidirectional=True)
        self.decoder = nn.LSTM(E, H_dec, batch_first=True)
        self.bridge_h, self.bridge_c = nn.Linear(2 * H_enc, H_dec), nn.Linear(2 * H_enc, H_dec)
        self.memory = nn.Linear(2 * H_enc, H_dec, bias=False)
        self.keys = nn.Linear(H_dec, H_dec, bias=False)
        self.combine = nn.Linear(2 * H_dec, E, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab))
        self.dropout = nn.Dropout(0.2)

    def forward(self, source, lengths, target_in):
        outputs, (h, c) = self.encoder(self.dropout(self.embedding(source)))  # equal lengths: no packing
        state = (torch.tanh(self.bridge_h(torch.cat([h[0], h[1]], -1)))[None],
                 self.bridge_c(torch.cat([c[0], c[1]], -1))[None])
        values = self.memory(outputs)
        hidden, _ = self.decoder(self.dropout(self.embedding(target_in)), state)
        weights = torch.softmax(torch.bmm(hidden, self.keys(values).transpose(1, 2)), dim=-1)
        attentional = torch.tanh(self.combine(torch.cat([torch.bmm(weights, values), hidden], -1)))
        return F.linear(self.dropout(attentional), self.embedding.weight, self.bias)


class PlainLoop:
    def __init__(self, model: nn.Module, batches: PairBatches, pad: int):
        self.model, self.batches, self.pad = model, batches, pad
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def run(self, steps: int) -> int:
        tokens = 0
        for _ in range(steps):
            batch = next(self.batches)
            logits = self.model(batch.source, batch.lengths, batch.target_in)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.target_out.reshape(-1),
                                   ignore_index=self.pad, label_smoothing=0.1)
            self.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            tokens += batch.tokens
        return tokens


class RecipeLoop:
    def __init__(self, config: TranslationConfig, vocab: int, batches: PairBatches, pad: int):
        model = Seq2Seq(config.model, vocab, pad)
        self.trainer = Trainer(model, batches, TranslationLoss(pad, config.model.label_smoothing), config.train)

    def run(self, steps: int) -> int:
        before = self.trainer.tokens_seen
        self.trainer.fit(until_step=self.trainer.step + steps)
        return self.trainer.tokens_seen - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8, help="training steps per round")
    parser.add_argument("--warmup", type=int, default=4, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = apply_overrides(TranslationConfig(), {"max_steps": 10**9, "progress": False, "warmup_steps": 0})
    pairs = bible_splits(max_words=config.data.max_train_words).train
    tokenizer = BPETokenizer.train("\n".join(side for pair in pairs for side in pair), config.data.vocab_size)
    encoded = [(tokenizer.encode(s), tokenizer.encode(t)) for s, t in pairs]
    specials, vocab = Specials.of(tokenizer), tokenizer.vocab_size + 1
    torch.manual_seed(0)
    runners = {"baseline": PlainLoop(PlainSeq2Seq(vocab, specials.pad), PairBatches(encoded, specials, 3000, 0),
                                     specials.pad),
               "recipe": RecipeLoop(config, vocab, PairBatches(encoded, specials, 3000, 0), specials.pad)}
    rates, ratios = interleaved_rates(runners, args.rounds, args.steps, args.warmup, "tokens/s")
    write_results(args, rates, ratios, vocab)


def write_results(args, rates, ratios, vocab: int) -> None:
    model = (f"Model: embedding 256, BiLSTM 2 x 256, LSTM decoder 512, general attention, tied softmax over {vocab} "
             "ids; batches of ~3000 target tokens (the recipe's PairBatches, both runners the same); AdamW, clip 1.0.")
    command = (f".venv/bin/python benchmarks/translation_throughput.py --rounds {args.rounds} --steps {args.steps}"
               + (f" --threads {args.threads}" if args.threads else ""))
    print(write_ratio_table(RESULTS, "Translation training throughput: recipe vs a plain torch.nn.LSTM seq2seq loop",
                            model, command, "target tokens/s", rates, ratios))


if __name__ == "__main__":
    main()
