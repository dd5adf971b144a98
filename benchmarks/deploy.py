"""Inference latency of exported and compiled LSTMs: ONNX Runtime vs lstmlab vs torch.nn.LSTM.

Two workloads, each timed with every runner in the same run (warm-up, then interleaved
rounds; medians of the per-round mean latency, and ratios to torch.nn.LSTM / eager):

- **sequence**: one (T=100, B=1, I=H=256) call of a 1-layer LSTM, no gradient:
  `torch.nn.LSTM` (oneDNN), `lstmlab.LSTM` on the fused engine, the same weights exported by
  `lstmlab.export.to_onnx` as the native ONNX LSTM op and as the Scan form, run in ONNX
  Runtime, and `torch.compile(lstmlab.LSTM)` (the fused engine as custom ops);
- **training step**: forward and backward of a 2-layer (T=50, B=16, I=H=128) LSTM:
  `torch.nn.LSTM`, `lstmlab.LSTM` eager (fused engine), and `torch.compile(lstmlab.LSTM,
  fullgraph=True)`, which calls the fused engine through its custom ops (engines/fused_ops.py);
- **LM step**: one step (token, state) -> (logits, state) of the language-model recipe's
  default network (embedding 128, 2 x 256 LSTM, softmax over the vocabulary): the PyTorch
  module (`lstmlab.models.lm.LanguageModel`) and its `lm_step.onnx` in ONNX Runtime.

    .venv/bin/python benchmarks/deploy.py [--rounds 7] [--calls 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

import lstmlab
import lstmlab.export
from lstmlab.models.lm import LanguageModel, LMModelConfig
from ratio_table import processor_name  # benchmarks/ratio_table.py (the script's folder is on sys.path)

RESULTS = Path(__file__).parent / "results" / "deploy.md"


def ort_session(path: Path, threads: int) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def sequence_runners(folder: Path, threads: int) -> dict:
    """name -> zero-argument callable running the (T=100, B=1, H=256) sequence once."""
    torch.manual_seed(0)
    ours = lstmlab.LSTM(256, 256, engine="fused").eval()
    theirs = torch.nn.LSTM(256, 256).eval()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(100, 1, 256)
    zeros = torch.zeros(1, 1, 256)
    feeds = {"x": x.numpy(), "h_0": zeros.numpy(), "c_0": zeros.numpy()}
    runners = {"torch.nn.LSTM": lambda: theirs(x), "lstmlab fused": lambda: ours(x)}
    for form, label in (("lstm_op", "ONNX Runtime, LSTM op"), ("scan", "ONNX Runtime, Scan")):
        session = ort_session(lstmlab.export.to_onnx(ours, folder / f"lstm-{form}.onnx", form=form), threads)
        runners[label] = lambda session=session: session.run(None, feeds)
    try:
        eager = lstmlab.LSTM(256, 256).eval()
        eager.load_state_dict(ours.state_dict())
        compiled = torch.compile(eager, fullgraph=True)
        with torch.no_grad():
            compiled(x)
        runners["torch.compile(lstmlab.LSTM)"] = lambda: compiled(x)
    except Exception as error:  # reported in the table: compiling is what this line measures
        print(f"torch.compile(lstmlab.LSTM) did not run: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
    return runners


def training_runners() -> dict:
    """name -> zero-argument callable running one forward and backward of a 2-layer LSTM."""
    torch.manual_seed(0)
    ours = lstmlab.LSTM(128, 128, num_layers=2)
    theirs = torch.nn.LSTM(128, 128, num_layers=2)
    theirs.load_state_dict(ours.state_dict())
    compiled = torch.compile(ours, fullgraph=True)
    x = torch.randn(50, 16, 128)

    def step(module):
        module(x)[0].square().mean().backward()

    return {"torch.nn.LSTM": lambda: step(theirs), "lstmlab.LSTM (eager, fused)": lambda: step(ours),
            "torch.compile(lstmlab.LSTM)": lambda: step(compiled)}


def lm_step_runners(folder: Path, threads: int, vocab: int = 67) -> dict:
    torch.manual_seed(0)
    model = LanguageModel(LMModelConfig(), vocab).eval()
    paths = lstmlab.export.to_onnx(model, folder / "lm")
    session = ort_session(paths["lm_step"], threads)
    names = [value.name for value in session.get_inputs()]
    token = torch.tensor([[5]])
    state = (torch.zeros(2, 1, 256), torch.zeros(2, 1, 256))
    feeds = dict(zip(names, (np.array([5], dtype=np.int64), state[0].numpy(), state[1].numpy())))
    return {"PyTorch module (lstmlab.LSTM)": lambda: model(token, state),
            "ONNX Runtime lm_step": lambda: session.run(None, feeds)}


def interleaved_latency(runners: dict, rounds: int, calls: int, grad: bool = False) -> dict[str, list[float]]:
    """Per runner, the mean latency (ms) of `calls` calls in each of `rounds` interleaved rounds."""
    with torch.set_grad_enabled(grad):
        for run in runners.values():  # warm-up
            for _ in range(max(3, calls // 4)):
                run()
        latency = {name: [] for name in runners}
        for _ in range(rounds):
            for name, run in runners.items():
                started = time.perf_counter()
                for _ in range(calls):
                    run()
                latency[name].append((time.perf_counter() - started) / calls * 1000)
    return latency


def table(title: str, latency: dict[str, list[float]], baseline: str) -> list[str]:
    lines = [f"## {title}", "", f"| runner | median ms | min | max | / {baseline} |", "|---|---:|---:|---:|---:|"]
    base = latency[baseline]
    for name, values in latency.items():
        ratio = statistics.median(v / b for v, b in zip(values, base))
        lines.append(f"| {name} | {statistics.median(values):.3f} | {min(values):.3f} | {max(values):.3f} | "
                     f"{ratio:.2f}x |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20, help="calls per runner per round")
    parser.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        sequence = interleaved_latency(sequence_runners(Path(folder), args.threads), args.rounds, args.calls)
        training = interleaved_latency(training_runners(), args.rounds, max(2, args.calls // 2), grad=True)
        step = interleaved_latency(lm_step_runners(Path(folder), args.threads), args.rounds, args.calls * 10)
    lines = ["# Deployment latency: ONNX Runtime vs lstmlab vs torch.nn.LSTM", "",
             f"Command: `.venv/bin/python benchmarks/deploy.py --rounds {args.rounds} --calls {args.calls} "
             f"--threads {args.threads}`", "",
             f"Machine: {processor_name()}, {args.threads} thread(s) for torch and ONNX Runtime, torch "
             f"{torch.__version__}, onnxruntime {onnxruntime.__version__}. Medians over {args.rounds} interleaved "
             "rounds of the mean latency per call; ratios are medians of per-round ratios (below 1: faster).", "",
             *table("One (T=100, B=1, H=256) sequence, 1-layer LSTM, no gradient", sequence, "torch.nn.LSTM"),
             *table("One training step (forward + backward), 2-layer (T=50, B=16, H=128) LSTM", training,
                    "torch.nn.LSTM"),
             *table("One LM step (embedding 128, 2 x 256 LSTM, softmax over 67 tokens)", step,
                    "PyTorch module (lstmlab.LSTM)")]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
