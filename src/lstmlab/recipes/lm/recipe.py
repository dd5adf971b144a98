"""The language-model recipe's hooks: train, load, evaluate, inspect, and its commands."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from lstmlab.recipes.base import Recipe
from lstmlab.recipes.lm.config import LMConfig


INSPECT_CHARACTERS = 2000  # of the validation text, when `lstmlab inspect` is given no text


class LanguageModelRecipe(Recipe):
    """Character or subword language models (default: the bundled Shakespeare plays)."""

    name = "lm"
    summary = "character or subword language model: `lstmlab train lm [--data PATH] [--budget S] [--out DIR]`"

    def default_config(self) -> LMConfig:
        return LMConfig()

    def train(self, config: LMConfig, out_dir: Path, *, resume: bool) -> dict[str, Any]:
        from lstmlab.recipes.lm.task import nats_to_report, train_language_model

        result = train_language_model(config, out_dir, resume=resume)
        trainer = result["trainer"]
        if trainer.is_main:
            print(f"validation: {nats_to_report(result['loss'], trainer.unit)} after {trainer.step} steps, "
                  f"{trainer.tokens_seen:,} tokens, {trainer.elapsed:.1f} s of training")
        trainer.leave_process_group()
        return result

    def load(self, state: dict[str, Any], path: Path) -> Any:
        from lstmlab.config import from_dict
        from lstmlab.data.tokenizers import tokenizer_from_dict
        from lstmlab.models.lm import LanguageModel
        from lstmlab.runs import Run, load_weights

        config = from_dict(LMConfig, state["config"])
        tokenizer = tokenizer_from_dict(state["components"]["tokenizer"])
        model = load_weights(LanguageModel(config.model, tokenizer.vocab_size), state, path)
        return Run(self.name, model, config, path, {"tokenizer": tokenizer}, dict(state.get("metadata") or {}))

    def evaluate(self, run: Any, *, data: str | None, split: str) -> dict[str, Any]:
        """Loss, bits/char (and perplexity for subwords) on a file, or on a split of the run's corpus."""
        from lstmlab.data.text import load_splits, read_corpus
        from lstmlab.recipes.lm.task import evaluate_tokens

        config = run.config
        if data:
            text, source = read_corpus(data), data
        else:
            text, source = getattr(load_splits(config.data.path), split), f"{split} split"
        ids = run.tokenizer.encode(text)
        result = evaluate_tokens(run.model, ids, config.data.eval_batch_size, config.data.bptt)
        nats_total = result["loss"] * result["tokens"]
        characters = len(text) * result["tokens"] / max(1, len(ids))  # characters the scored tokens cover
        report = {"loss": result["loss"], "tokens": result["tokens"],
                  "bits_per_char": nats_total / characters / math.log(2)}
        if config.data.tokenizer != "char":
            report["perplexity"] = math.exp(min(result["loss"], 50))
        report["data"] = source
        return report

    def inspect(self, run: Any, *, text: str | None, out_dir: Path) -> Path:
        """The report on `text`; without one, on the start of the run's own validation text
        (the built-in passage for the bundled Shakespeare, chosen so every text feature varies)."""
        from lstmlab.data.text import load_splits
        from lstmlab.recipes.lm.inspect import write_lm_report

        if text is None and run.config.data.path is not None:
            validation = load_splits(run.config.data.path).validation
            text = validation[:INSPECT_CHARACTERS].rsplit("\n", 1)[0] or validation[:INSPECT_CHARACTERS]
            print(f"inspecting the first {len(text):,} characters of the run's validation text "
                  f"({run.config.data.path}; choose another with --text or --file)")
        return write_lm_report(run, text, out_dir)

    def next_commands(self, out_dir: Path) -> list[str]:
        return [f"lstmlab generate {out_dir} --prime 'JULIET:' --length 400", *super().next_commands(out_dir)]

    def onnx_graphs(self, run: Any) -> dict[str, Any]:
        """The LM step (token, h, c) -> (logits, h, c), with the tokenizer for `lstmlab.deploy`."""
        from lstmlab.export.recipes import model_graphs

        return model_graphs(run.model, tokenizer=run.tokenizer)

    def commands(self) -> dict[str, tuple[str, str]]:
        return {
            "demo": ("lstmlab.recipes.lm.demo", "run the built-in demonstration (what `make demo` runs)"),
            "generate": ("lstmlab.recipes.lm.cli", "sample text from a trained language model (streams as it samples)"),
        }
