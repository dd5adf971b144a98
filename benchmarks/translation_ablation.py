"""The translation ablation: attention vs none (source reversed or not), LSTM vs GRU, beam vs
greedy, at (nearly) equal parameters and equal training time, beside copying the source.

Each configuration trains with `lstmlab train translation` for the same --budget (seconds
of training, evaluation excluded) and the same threads, two at a time (one thread each
on a 2-core machine), and is scored by `lstmlab evaluate` on the test books (Luke +
Acts) with beam 5 and greedy. Writes the table to results/translation_ablation.md.

    .venv/bin/python benchmarks/translation_ablation.py [--budget 300] [--jobs 2] [--out runs/ablation]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lstmlab.data.parallel import bible_splits
from lstmlab.metrics import translation_scores

RESULTS = Path(__file__).resolve().parents[1] / "results" / "translation_ablation.md"
LSTMLAB = str(Path(sys.executable).with_name("lstmlab"))
# name -> (what it is, extra options). decoder_hidden 571 gives the attention-free models
# the default model's parameter count (5.73 M); --cell gru scales its sizes itself.
CONFIGURATIONS = {
    "attention": ("LSTM, Luong general attention (the default)", []),
    "no-attention-reversed": ("LSTM, no attention, source reversed (Sutskever et al. 2014)",
                              ["--attention", "none", "--reverse_source", "true", "--decoder_hidden", "571"]),
    "no-attention": ("LSTM, no attention, source in order", ["--attention", "none", "--decoder_hidden", "571"]),
    "gru": ("GRU, general attention, same parameter count", ["--cell", "gru"]),
}


def train_and_evaluate(name: str, options: list[str], budget: float, threads: int, out: Path) -> dict:
    folder = out / name
    if not (folder / "latest.pt").exists():
        subprocess.run([LSTMLAB, "train", "translation", "--budget", str(budget), "--out", str(folder),
                        "--threads", str(threads), "--progress", "false", *options],
                       check=True, stdout=(out / f"{name}.log").open("w"), stderr=subprocess.STDOUT)
    evaluation = folder / "evaluate-test.json"
    if not evaluation.exists():
        result = subprocess.run([LSTMLAB, "evaluate", str(folder), "--json"], check=True, capture_output=True,
                                text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        evaluation.write_text(result.stdout)
    report = json.loads(evaluation.read_text())
    report["parameters"] = _parameters(folder)
    return report


def _parameters(folder: Path) -> int:
    from lstmlab.checkpoint import load_checkpoint

    return int(load_checkpoint(folder / "latest.pt")["metadata"]["parameters"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=300.0, help="seconds of training per configuration")
    parser.add_argument("--jobs", type=int, default=2, help="configurations trained at once (1 thread each)")
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    threads = 1 if args.jobs > 1 else 2
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {name: pool.submit(train_and_evaluate, name, options, args.budget, threads, args.out)
                   for name, (_, options) in CONFIGURATIONS.items()}
        reports = {name: future.result() for name, future in futures.items()}
    test = bible_splits().test
    copy = translation_scores([source for source, _ in test], [target for _, target in test])
    write_table(args, reports, copy, threads, len(test))


def processor() -> str:
    lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name")), "unknown")


def write_table(args, reports: dict, copy: dict, threads: int, verses: int) -> None:
    lines = [f"# Translation ablation (test books Luke + Acts, {verses:,} verses)", "",
             f"Command: `.venv/bin/python benchmarks/translation_ablation.py --budget {args.budget:g} --jobs {args.jobs}`"
             f"; each configuration {args.budget:g} s of training, {threads} thread(s), {args.jobs} at a time; "
             f"machine: {processor()}.", "",
             "| configuration | parameters | BLEU beam 5 | BLEU greedy | chrF beam 5 | test loss | beam 5 sentences/s "
             "| greedy sentences/s |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, report in reports.items():
        lines.append(f"| {CONFIGURATIONS[name][0]} | {report['parameters'] / 1e6:.2f} M | {report['bleu']:.2f} | "
                     f"{report['bleu_greedy']:.2f} | {report['chrf']:.2f} | {report['loss']:.3f} | "
                     f"{report['sentences_per_second']:.1f} | {report['sentences_per_second_greedy']:.1f} |")
    lines.append(f"| copy the English source | – | {copy['bleu']:.2f} | – | {copy['chrf']:.2f} | – | – | – |")
    lines += ["", f"BLEU signature: `{next(iter(reports.values()))['signature']['bleu']}`.", ""]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
