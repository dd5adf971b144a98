"""LSTM vs GRU vs tanh RNN as character language models: equal parameters, equal time.

Each (cell, seed, budget) is one `lstmlab train lm` run of the demo's model (embedding
64 -> 2 x 256 LSTM -> softmax; the GRU and RNN widths chosen so the whole model has the
LSTM's parameter count), one torch thread, `--jobs` runs side by side (one per core; run
it with the machine otherwise idle). Every run is evaluated on all 211,200 characters of
the held-out validation plays; the validation curve during training (every 60 s, on
their first 40,000 characters) comes from the runs' metrics.jsonl.

    .venv/bin/python benchmarks/lm_cells.py --budgets 300,1200 --seeds 2 --jobs 2
    .venv/bin/python benchmarks/lm_cells.py --budgets 1200 --cells lstm,rnn   # a subset

Writes results/lm_cells.md (the table of every run measured so far, the commands, the
machine) and results/lm_cells.png (the curves). Every finished run's row is kept in
results/lm_cells.jsonl, so the table keeps the runs of earlier sessions whose run folders
are gone (rows without a curve there come from the table published before the rows were
kept, see NOTE_PUBLISHED). Finished runs (a row there, or a run folder with its evaluation)
are not rerun.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ratio_table import processor_name  # benchmarks/ratio_table.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
RECORDS = RESULTS / "lm_cells.jsonl"
CELLS = ("lstm", "gru", "rnn")
NOTE_PUBLISHED = ("Rows with no curve in the figure (5 and 20 minutes, the first 60-minute seed) come from the table "
                  "published in commits a527853 and 50fbac4, whose run folders were not kept: their per-seed losses are "
                  "exact to 3 decimals, their steps are the published means, and their curves are in "
                  "`git show a527853:results/lm_cells.png`.")
RECIPE = ["--embedding_size", "64", "--hidden_size", "256", "--num_layers", "2", "--batch_size", "64",
          "--bptt", "100", "--lr", "4e-3", "--eval_interval_seconds", "60", "--eval_tokens", "40000",
          "--threads", "1", "--progress", "false"]


def lstmlab(*args: str) -> str:
    command = [str(Path(sys.executable).with_name("lstmlab")), *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def run_one(out: Path, cell: str, seed: int, budget: int) -> dict:
    """Train (unless done) and evaluate one run; returns its row."""
    evaluation = out / "validation.json"
    if not evaluation.is_file():
        lstmlab("train", "lm", "--cell", cell, "--seed", str(1234 + seed), "--budget", str(budget),
                "--out", str(out), *RECIPE)
        evaluation.write_text(lstmlab("evaluate", str(out), "--split", "validation", "--json"))
    report = json.loads(evaluation.read_text())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["elapsed_seconds"], r["loss"]) for r in records if r.get("split") == "validation"]
    steps = max(r.get("step", 0) for r in records)
    return {"cell": cell, "seed": seed, "budget": budget, "nats": report["loss"], "bits": report["bits_per_char"],
            "steps": steps, "curve": curve}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = sorted({r["budget"] for r in rows if r["curve"]})
    if not budgets:
        return
    figure, axes = plt.subplots(1, len(budgets), figsize=(5 * len(budgets), 3.8), squeeze=False)
    colours = {"lstm": "tab:red", "gru": "tab:blue", "rnn": "tab:green"}
    for axis, budget in zip(axes[0], budgets):
        for row in (r for r in rows if r["budget"] == budget and r["curve"]):
            seconds, loss = zip(*row["curve"])
            axis.plot(seconds, loss, color=colours[row["cell"]], alpha=0.8, marker="o", markersize=3,
                      label=f"{row['cell']} seed {row['seed']}")
        axis.set_xlabel("seconds of training (1 thread)")
        axis.set_ylabel("validation nats/char (first 40k chars)")
        axis.set_title(f"{budget // 60} minutes each")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def load_records() -> list[dict]:
    """The rows kept in RECORDS (none before the first run)."""
    return [json.loads(line) for line in RECORDS.read_text().splitlines()] if RECORDS.is_file() else []


def merge_records(new_rows: list[dict]) -> list[dict]:
    """The rows kept in RECORDS, updated with `new_rows` (same cell, seed and budget: the new
    row wins); writes RECORDS back and returns every row, sorted."""
    by_key = {(r["budget"], r["cell"], r["seed"]): r for r in [*load_records(), *new_rows]}
    rows = [by_key[key] for key in sorted(by_key)]
    RECORDS.parent.mkdir(exist_ok=True)
    RECORDS.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return rows


def table(rows: list[dict]) -> list[str]:
    lines = ["| budget | cell | seeds | validation nats/char (each seed) | mean | bits/char (mean) | steps (mean) |",
             "|---|---|---:|---|---:|---:|---:|"]
    for budget in sorted({r["budget"] for r in rows}):
        for cell in CELLS:
            mine = [r for r in rows if r["budget"] == budget and r["cell"] == cell]
            if not mine:
                continue
            nats = [r["nats"] for r in mine]
            lines.append(f"| {budget // 60} min | {cell} | {len(mine)} | {', '.join(f'{n:.3f}' for n in nats)} | "
                         f"**{statistics.mean(nats):.3f}** | {statistics.mean(r['bits'] for r in mine):.3f} | "
                         f"{statistics.mean(r['steps'] for r in mine):,.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="300,1200", help="seconds of training per run, comma list")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--cells", default=",".join(CELLS), help="comma list of lstm, gru, rnn")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side (one thread each)")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "lm-cells"), help="folder of the run folders")
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    cells = [cell for cell in args.cells.split(",") if cell]
    if not set(cells) <= set(CELLS):
        parser.error(f"--cells: expected a comma list of {', '.join(CELLS)}, got {args.cells!r}")
    recorded = {(row["budget"], row["cell"], row["seed"]) for row in load_records()}
    jobs = [(Path(args.runs) / f"{cell}-{budget}s-seed{seed}", cell, seed, budget)
            for budget in budgets for seed in range(args.seeds) for cell in cells
            if (budget, cell, seed) not in recorded]
    print(f"{len(jobs)} runs to train ({len(recorded)} already in {RECORDS.name})", flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda job: run_one(*job), jobs))
    finished = sorted(path for path in Path(args.runs).glob("*-*s-seed*") if (path / "validation.json").is_file())
    rows = merge_records([run_one(path, path.name.split("-")[0], int(path.name.rsplit("seed", 1)[1]),
                                  int(path.name.split("-")[1][:-1])) for path in finished])
    commands_file = RESULTS / "lm_cells.commands"
    command = " ".join(["benchmarks/lm_cells.py", *sys.argv[1:]])
    previous = commands_file.read_text().splitlines() if commands_file.is_file() else []
    RESULTS.mkdir(exist_ok=True)
    commands_file.write_text("\n".join(dict.fromkeys([*previous, command])) + "\n")
    plot(rows, RESULTS / "lm_cells.png")
    commands = "; ".join(f"`.venv/bin/python {line}`" for line in commands_file.read_text().splitlines())
    header = ["# LSTM vs GRU vs tanh RNN: character LM, equal parameters, equal time", "",
              f"Commands: {commands}. Machine: {processor_name()}, {args.jobs} runs side by side, 1 thread each, "
              "nothing else running. Validation = all 211,200 characters of the held-out plays (Macbeth, "
              "The Merchant of Venice).", "", NOTE_PUBLISHED, ""]
    (RESULTS / "lm_cells.md").write_text("\n".join(header + table(rows)) + "\n\n![curves](lm_cells.png)\n")
    print("\n".join(table(rows)))


if __name__ == "__main__":
    main()
