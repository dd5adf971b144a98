"""The long-lag recipe's hooks: train one run, load, evaluate on fresh sequences, inspect."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from lstmlab.recipes.base import Recipe

from .config import LongLagConfig

TEST_SEED = 2**31 - 1  # the `test` split's sequences: a stream no training run draws from


class LongLagRecipe(Recipe):
    """The long-time-lag experiments of Hochreiter & Schmidhuber (1997): LSTM vs GRU vs RNN."""

    name = "longlag"
    summary = "one long-lag run: `lstmlab train longlag --task adding --length 100 --kind lstm` (suites: `lstmlab longlag`)"

    def default_config(self) -> LongLagConfig:
        return LongLagConfig()

    def job(self, config: LongLagConfig, out_dir: Path | None) -> dict:
        """The plain-data job of `runner` for this config (models sized as `lstmlab longlag` sizes them)."""
        from .cli import parse_chrono
        from .contenders import model_configs, parse_lstm_options
        from .task_registry import make_task

        task = make_task(config.data.task, config.data.length or None)
        chrono = parse_chrono(config.model.chrono)
        horizon = task.horizon() if chrono == "auto" else chrono
        lstm_options = parse_lstm_options(config.model.lstm_options)
        model = model_configs(task, [config.model.kind], config.model.hidden_size, lstm_options, horizon,
                              config.model.input_to_output)[0]
        return {"experiment": 0, "task_config": task.config(), "model_config": asdict(model),
                "seed": config.train.seed, "train": asdict(config.train), "batch_size": config.data.batch_size,
                "eval_size": config.data.eval_size, "threads": config.train.threads or 1,  # small models: 1 is fastest
                "checkpoint": str(out_dir) if out_dir else None}

    def train(self, config: LongLagConfig, out_dir: Path, *, resume: bool) -> dict[str, Any]:
        from .runner import result_line, run_job

        if resume:
            raise ValueError("long-lag runs are short and stop at success: start a new run instead of --resume")
        if (out_dir / "latest.pt").exists():
            raise ValueError(f"{out_dir} already holds a run (latest.pt); choose another --out")
        result = run_job(self.job(config, out_dir), show_steps=config.train.progress)
        print(result_line(result))
        return result

    def next_commands(self, out_dir: Path) -> list[str]:
        return [f"lstmlab evaluate {out_dir} --json", f"lstmlab inspect {out_dir}"]

    def load(self, state: dict[str, Any], path: Path) -> Any:
        from lstmlab.models.longlag import LongLagModel, ModelConfig
        from lstmlab.runs import Run, load_weights

        from .task_registry import task_from_config

        task = task_from_config(state["components"]["task"])
        model = load_weights(LongLagModel(ModelConfig(**state["components"]["model"])), state, path)
        return Run(self.name, model, state.get("config"), path, {"task": task}, dict(state.get("metadata") or {}))

    def evaluate(self, run: Any, *, data: str | None, split: str) -> dict[str, Any]:
        """Loss, fraction wrong and the task's success on fresh held-out sequences."""
        from .experiment import evaluate, held_out_batch

        if data:
            raise ValueError("a long-lag run is evaluated on its task's own sequences; --data does not apply")
        config = run.config or {}
        size = int(config.get("eval_size", 2560))
        seed = int(config.get("seed", 0)) if split == "validation" else TEST_SEED
        batch = held_out_batch(run.task, size, seed)
        loss, wrong = evaluate(run.model, run.task, batch)
        return {"loss": loss, "wrong_fraction": wrong, "success": run.task.is_success(wrong, loss),
                "sequences": batch.batch_size, "data": f"{split}: {batch.batch_size} fresh {run.task.label} sequences"}

    def inspect(self, run: Any, *, text: str | None, out_dir: Path) -> Path:
        from .inspect import write_longlag_report

        if text is not None:
            raise ValueError("--text/--file apply to language models; a long-lag run is inspected on its task's sequences")
        return write_longlag_report(run, out_dir)

    def commands(self) -> dict[str, tuple[str, str]]:
        return {"longlag": ("lstmlab.recipes.longlag.cli", "LSTM vs GRU vs tanh RNN on the 1997 long-time-lag tasks")}
