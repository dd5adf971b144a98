"""`lstmlab train lm`, `lstmlab generate RUN` and `lstmlab evaluate RUN`.

One module serves the three sub-commands (cli.py registers each name to it); the
parser's program name says which one is being set up or run.

Every config field is also a command-line option (``--hidden_size 512``, or
``--model.hidden_size 512``), type-checked; unknown options are errors.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from lstmlab.checkpoint import load_checkpoint
from lstmlab.config import apply_overrides, field_paths, from_dict, load_toml
from lstmlab.models.lm_config import LMConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    command = parser.prog.split()[-1]
    {"train": _add_train_arguments, "generate": _add_generate_arguments,
     "evaluate": _add_evaluate_arguments}[command](parser)


def run(args: argparse.Namespace) -> int:
    command = {"train": run_train, "generate": run_generate, "evaluate": run_evaluate}[args.command]
    try:
        return command(args)
    except (ValueError, FileNotFoundError) as error:  # bad config, corpus or checkpoint: say what, no traceback
        print(f"lstmlab {args.command}: error: {error}", file=sys.stderr)
        return 2


# ------------------------------------------------------------------------------- train
def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    tasks = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    lm = tasks.add_parser("lm", help="character or subword language model (default: Shakespeare)",
                          description="Train a language model. Every config field is an option.")
    lm.add_argument("--data", metavar="PATH", help="UTF-8 text file or folder (default: bundled Shakespeare)")
    lm.add_argument("--config", metavar="FILE.toml", help="TOML config (sections [data] [model] [train])")
    lm.add_argument("--out", metavar="DIR", help="run folder for checkpoints and logs (default runs/lm-<time>)")
    lm.add_argument("--resume", action="store_true", help="continue the run in --out from latest.pt")
    add_config_options(lm, LMConfig(), skip={"data.path"})


def add_config_options(parser: argparse.ArgumentParser, config: object, skip: set[str] = frozenset()) -> None:
    """One ``--name`` option per config field (dotted when the short name is ambiguous)."""
    paths = field_paths(config)
    short_names = [path.rsplit(".", 1)[-1] for path in paths]
    group = parser.add_argument_group("config fields (type-checked; see lstmlab/models/lm_config.py)")
    for path, (owner, field) in paths.items():
        if path in skip:
            continue
        name = path.rsplit(".", 1)[-1]
        flag = name if short_names.count(name) == 1 else path
        type_name = getattr(field.type, "__name__", str(field.type))
        group.add_argument(f"--{flag}", f"--{flag.replace('_', '-')}", dest=f"cfg:{path}", metavar=type_name.upper(),
                           help=f"default {getattr(owner, field.name)!r}")


def config_from_args(args: argparse.Namespace, base: LMConfig | None = None) -> LMConfig:
    """Defaults (or `base`), then --config FILE, then --data and --key value options."""
    config = base or LMConfig()
    if getattr(args, "config", None):
        load_toml(config, args.config)
    overrides = {key[4:]: value for key, value in vars(args).items() if key.startswith("cfg:") and value is not None}
    if getattr(args, "data", None):
        overrides["data.path"] = args.data
    return apply_overrides(config, overrides)


def run_train(args: argparse.Namespace) -> int:
    from lstmlab.models.lm_task import nats_to_report, train_language_model

    out_dir = Path(args.out or f"runs/lm-{time.strftime('%Y%m%d-%H%M%S')}")
    base = None
    if args.resume:
        state = load_checkpoint(out_dir / "latest.pt")
        base = from_dict(LMConfig, state["metadata"]["config"])
        base.train = from_dict(type(base.train), state["train_config"])
    config = config_from_args(args, base)
    if not config.train.max_steps and not config.train.budget:
        config.train.budget = 300.0  # no budget given: five minutes
    result = train_language_model(config, out_dir, resume=args.resume)
    trainer = result["trainer"]
    if trainer.is_main:
        print(f"validation: {nats_to_report(result['loss'], trainer.unit)} after {trainer.step} steps, "
              f"{trainer.tokens_seen:,} tokens, {trainer.elapsed:.1f} s of training")
        print(f"run folder: {out_dir}")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


# ------------------------------------------------------------------------------- generate
def _add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run folder (uses best.pt, else latest.pt) or checkpoint file")
    parser.add_argument("--prime", default="\n", help="text to start from (default: a newline)")
    parser.add_argument("--length", type=int, default=500, help="tokens to sample (default 500)")
    parser.add_argument("--temperature", type=float, default=0.8, help="softmax temperature; 0 = greedy (default 0.8)")
    parser.add_argument("--top-k", type=int, default=0, help="sample among the K likeliest tokens; 0 = all (default)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")


def run_generate(args: argparse.Namespace) -> int:
    from lstmlab.models.generation import generate
    from lstmlab.models.lm import load_language_model

    model, tokenizer = load_language_model(args.run)
    sys.stdout.write(args.prime)

    def show(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    generate(model, tokenizer, args.prime, args.length, args.temperature, args.top_k, args.seed, on_text=show)
    sys.stdout.write("\n")
    return 0


# ------------------------------------------------------------------------------- evaluate
def _add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN", help="run folder (uses best.pt, else latest.pt) or checkpoint file")
    parser.add_argument("--data", metavar="PATH", help="evaluate on all of this UTF-8 file/folder "
                        "(default: the run's own corpus, --split)")
    parser.add_argument("--split", choices=("validation", "test"), default="test",
                        help="split of the run's corpus when --data is not given (default test)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run_evaluate(args: argparse.Namespace) -> int:
    from lstmlab.data.text import load_splits, read_corpus
    from lstmlab.models.lm import find_checkpoint, load_language_model
    from lstmlab.models.lm_task import evaluate_tokens

    model, tokenizer = load_language_model(args.run)
    config = model.config_full
    if args.data:
        text, source = read_corpus(args.data), args.data
    else:
        text, source = getattr(load_splits(config.data.path), args.split), f"{args.split} split"
    ids = tokenizer.encode(text)
    result = evaluate_tokens(model, ids, config.data.eval_batch_size, config.data.bptt)
    nats_total = result["loss"] * result["tokens"]
    characters = len(text) * result["tokens"] / max(1, len(ids))  # characters the scored tokens cover
    report = {"loss": result["loss"], "tokens": result["tokens"], "bits_per_char": nats_total / characters / math.log(2)}
    if config.data.tokenizer != "char":
        report["perplexity"] = math.exp(min(result["loss"], 50))
    report.update({"data": source, "checkpoint": str(find_checkpoint(args.run))})
    if args.json:
        print(json.dumps(report))
    else:
        print(", ".join(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in report.items()))
    return 0
