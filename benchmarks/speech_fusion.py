"""What the character LM adds to a speech run: CER and WER on the validation voices for a
grid of beam widths, shallow-fusion weights α (--lm_weight) and word bonuses β (--word_bonus),
and with --lexicon FILE, penalties for words outside the lexicon (--oov_penalty; 0 = none).

The acoustic posteriors are computed once; each (beam, α, β) then reruns only the prefix
beam search with the LM. α = 0 is the beam without the LM. The validation voices and plays
are held out from training and from the test set, so choosing α and β here leaves the
test set unseen. Writes the table to results/speech_fusion.md.

    .venv/bin/python benchmarks/speech_fusion.py RUN LM_RUN [--weights 0,0.3,0.5,0.8] [--bonuses 0,1,2] [--beams 8,16]
        [--lexicon RUN/lm_text.txt --penalties 0,-4,-8]
"""

from __future__ import annotations

import argparse
import itertools
import platform
import subprocess
import time
from pathlib import Path
from typing import Callable

import torch

import lstmlab
from lstmlab.data.batching import spread_sample
from lstmlab.metrics import speech_scores
from lstmlab.recipes.speech.decoding import BeamOptions
from lstmlab.recipes.speech.recognizer import load_fusion, load_lexicon
from lstmlab.recipes.speech.task import beam_decoder, decode_posteriors, load_splits, posteriors

RESULTS = Path(__file__).resolve().parents[1] / "results" / "speech_fusion.md"


def numbers(kind: type) -> Callable[[str], list]:
    """An argparse type: "0,0.5,1" -> [0.0, 0.5, 1.0]; a bad item is a usage error (exit 2)."""
    def parse(text: str) -> list:
        try:
            return [kind(item) for item in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, got {text!r}") from None
    return parse


def listed(values: list) -> str:
    """The command-line spelling of a parsed list: [0.0, 0.5] -> "0,0.5"."""
    return ",".join(f"{v:g}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("lm")
    parser.add_argument("--weights", default="0,0.3,0.5,0.8", type=numbers(float),
                        help="α values, comma-separated (0 = no LM)")
    parser.add_argument("--bonuses", default="0,1,2", type=numbers(float), help="β values, comma-separated")
    parser.add_argument("--beams", default="8", type=numbers(int), help="beam widths, comma-separated")
    parser.add_argument("--lexicon", metavar="FILE", help="a text file of words (e.g. RUN/lm_text.txt) for --penalties")
    parser.add_argument("--penalties", default="0", type=numbers(float),
                        help="oov_penalty values with --lexicon, comma-separated (0 = no lexicon; -inf = its words only)")
    parser.add_argument("--split", choices=("validation", "test"), default="validation")
    parser.add_argument("--utterances", type=int, default=0, help="decode this many, spread over the split; 0 = all")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = lstmlab.load(args.run)
    data = getattr(load_splits(run.config), args.split)
    if args.utterances:
        data = data.take(spread_sample(len(data), args.utterances))
    fusion = load_fusion(args.lm)
    if any(penalty != 0 for penalty in args.penalties) and not args.lexicon:
        parser.error("--penalties other than 0 need --lexicon FILE")
    lexicon = load_lexicon(args.lexicon)
    batches = list(posteriors(run.model, data))
    rows = []
    for beam in args.beams:
        for weight in args.weights:
            for bonus, penalty in itertools.product([0.0] if weight == 0 else args.bonuses, args.penalties):
                started = time.perf_counter()
                options = BeamOptions(beam=beam, lm_weight=weight, word_bonus=bonus, oov_penalty=penalty)
                decoder = beam_decoder(options, fusion if weight > 0 else None, lexicon if penalty else None)
                found = decode_posteriors(batches, len(data), {"beam": decoder})["beam"]
                scores = speech_scores(found, data.texts)
                rows.append((beam, weight, bonus, penalty, scores["cer"], scores["wer"], time.perf_counter() - started))
                print(f"beam {beam} α {weight:.2f} β {bonus:.2f} oov {penalty:g}: CER {scores['cer']:.4f} "
                      f"WER {scores['wer']:.4f}", flush=True)
    best = min(rows, key=lambda row: (row[5], row[4]))
    without_lm = [row for row in rows if row[1] == 0 and row[3] == 0]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    lines = [f"# LM fusion on the {args.split} voices: beam (--beam) × α (--lm_weight) × β (--word_bonus)"
             f"{' × oov_penalty (--lexicon)' if lexicon else ''}", "",
             f"Run `{args.run}`, LM `{args.lm}`, {len(data)} utterances "
             f"({data.hours * 60:.1f} min of audio). Machine: {cpu}, torch threads: {args.threads}; torch "
             f"{torch.__version__}; commit {commit}.", "",
             f"Command: `.venv/bin/python benchmarks/speech_fusion.py {args.run} {args.lm} "
             f"--weights {listed(args.weights)} --bonuses {listed(args.bonuses)} --beams {listed(args.beams)}"
             f"{f' --lexicon {args.lexicon} --penalties {listed(args.penalties)}' if args.lexicon else ''}"
             f" --split {args.split} --threads {args.threads}"
             f"{f' --utterances {args.utterances}' if args.utterances else ''}`", "",
             *([f"Lexicon: {lexicon.words:,} words of `{args.lexicon}`.", ""] if lexicon else []),
             "| beam | α (lm_weight) | β (word_bonus) | oov_penalty (0 = no lexicon) | CER | WER | decoding seconds |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {k} | {w:.2f} | {b:.2f} | {o:g} | {c:.4f} | {x:.4f} | {s:.1f} |" for k, w, b, o, c, x, s in rows]
    lines += ["", f"Lowest WER: beam {best[0]}, α {best[1]:.2f}, β {best[2]:.2f}, oov_penalty {best[3]:g} "
              f"(CER {best[4]:.4f}, WER {best[5]:.4f})"
              + "".join(f"; beam {k} without the LM: CER {c:.4f}, WER {x:.4f}" for k, _, _, _, c, x, _ in without_lm)
              + "."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
