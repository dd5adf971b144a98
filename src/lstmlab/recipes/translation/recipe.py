"""The translation recipe's hooks: train, load, evaluate, inspect, and `lstmlab translate`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lstmlab.recipes.base import Recipe
from lstmlab.recipes.translation.config import TranslationConfig

INSPECT_DEFAULT = "In the beginning God created the heaven and the earth."


class TranslationRecipe(Recipe):
    """Attention encoder-decoder translation (default: English → Spanish Bible verses)."""

    name = "translation"
    summary = "attention encoder-decoder translation: `lstmlab train translation [--data PAIRS.tsv] [--budget S]`"

    def default_config(self) -> TranslationConfig:
        return TranslationConfig()

    def train(self, config: TranslationConfig, out_dir: Path, *, resume: bool) -> dict[str, Any]:
        from lstmlab.recipes.translation.task import train_translation

        result = train_translation(config, out_dir, resume=resume)
        trainer = result["trainer"]
        if trainer.is_main:
            print(f"validation: BLEU {result['bleu']:.2f} (greedy, {result['bleu_sentences']} sentences), "
                  f"chrF {result['chrf']:.2f}, loss {result['loss']:.4f} nats/token after {trainer.step} steps, "
                  f"{trainer.tokens_seen:,} target tokens, {trainer.elapsed:.1f} s of training")
        trainer.leave_process_group()
        return result

    def load(self, state: dict[str, Any], path: Path) -> Any:
        from lstmlab.config import from_dict
        from lstmlab.data.tokenizers import tokenizer_from_dict
        from lstmlab.models.seq2seq import Seq2Seq
        from lstmlab.recipes.translation.batches import Specials
        from lstmlab.recipes.translation.translator import TranslationRun
        from lstmlab.runs import load_weights

        config = from_dict(TranslationConfig, state["config"])
        tokenizer = tokenizer_from_dict(state["components"]["tokenizer"])
        model = load_weights(Seq2Seq(config.model, tokenizer.vocab_size + 1, Specials.of(tokenizer).pad), state, path)
        return TranslationRun(self.name, model, config, path, {"tokenizer": tokenizer}, dict(state.get("metadata") or {}))

    def evaluate(self, run: Any, *, data: str | None, split: str) -> dict[str, Any]:
        """BLEU and chrF with beam search (the run's beam) and greedy, and the loss, on a
        TSV file or on a held-out split of the run's data (default: the test books)."""
        from lstmlab.data.parallel import read_parallel
        from lstmlab.recipes.translation.batches import Specials
        from lstmlab.recipes.translation.loss import teacher_forced_loss
        from lstmlab.recipes.translation.task import encode_pairs, load_splits, score_translations
        from lstmlab.recipes.translation.translator import DecodeOptions

        config = run.config
        if data:
            pairs, source = read_parallel(data), data
        else:
            splits = load_splits(config)
            pairs, source = getattr(splits, split), f"{split} split of {splits.description}"
        encoded = encode_pairs(run.tokenizer, pairs)
        report: dict[str, Any] = {}
        for name, beam in (("", config.data.beam), ("_greedy", 1)):
            options = DecodeOptions(beam=beam, length_penalty=config.data.length_penalty,
                                    max_length_ratio=config.data.max_length_ratio,
                                    max_source_tokens=config.data.max_source_tokens)
            started = time.perf_counter()
            scores = score_translations(run.model, run.tokenizer, pairs, options, encoded)
            seconds = time.perf_counter() - started
            report[f"bleu{name}"], report[f"chrf{name}"] = scores["bleu"], scores["chrf"]
            report[f"sentences_per_second{name}"] = len(pairs) / seconds
            if not name:
                report["signature"] = scores["signature"]
        report["beam"] = config.data.beam
        report["loss"] = teacher_forced_loss(run.model, [(s[:config.data.max_source_tokens], t) for s, t in encoded],
                                             Specials.of(run.tokenizer))
        report["sentences"] = len(pairs)
        report["data"] = source
        return report

    def inspect(self, run: Any, *, text: str | None, out_dir: Path) -> Path:
        from lstmlab.recipes.translation.inspect import write_translation_report

        if text is None:
            print(f"inspecting {INSPECT_DEFAULT!r} (choose another with --text or --file)")
        return write_translation_report(run, INSPECT_DEFAULT if text is None else text, out_dir)

    def next_commands(self, out_dir: Path) -> list[str]:
        return [f"lstmlab translate {out_dir} --text 'In the beginning was the Word.'",
                f"lstmlab evaluate {out_dir}   # BLEU on the test books, beam and greedy",
                f"lstmlab inspect {out_dir} --text 'And God said, Let there be light.'",
                f"lstmlab train {self.name} --out {out_dir} --resume --max_steps 0 --budget 1800"
                "   # on, to 30 minutes of training in all"]

    def onnx_graphs(self, run: Any) -> dict[str, Any]:
        """The encoder over a whole source and the decoder step (`lstmlab.export.recipes`)."""
        from lstmlab.export.recipes import model_graphs

        return model_graphs(run.model)

    def commands(self) -> dict[str, tuple[str, str]]:
        return {"translate": ("lstmlab.recipes.translation.cli",
                              "translate lines with a trained translation run (--text, --file or standard input)")}
