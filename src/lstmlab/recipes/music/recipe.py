"""The music recipe's hooks: train, load and evaluate polyphonic piano-roll models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lstmlab.recipes.base import Recipe
from lstmlab.recipes.music.config import MusicConfig


class MusicRecipe(Recipe):
    """Bach chorales (music21) as 88-key piano rolls; frame-level NLL (Boulanger-Lewandowski et al. 2012)."""

    name = "music"
    summary = "polyphonic music on Bach's chorales (music21): `lstmlab train music [--budget S] [--out DIR]`"

    def default_config(self) -> MusicConfig:
        return MusicConfig()

    def train(self, config: MusicConfig, out_dir: Path, *, resume: bool) -> dict[str, Any]:
        from lstmlab.recipes.music.task import train_music

        result = train_music(config, out_dir, resume=resume)
        trainer = result["trainer"]
        if trainer.is_main:
            print(f"validation: {result['loss']:.4f} nats/frame (NLL per eighth-note frame) after {trainer.step} steps, "
                  f"{trainer.elapsed:.1f} s of training")
        trainer.leave_process_group()
        return result

    def load(self, state: dict[str, Any], path: Path) -> Any:
        from lstmlab.config import from_dict
        from lstmlab.models.music import PianoRollModel
        from lstmlab.runs import Run, load_weights

        config = from_dict(MusicConfig, state["config"])
        model = load_weights(PianoRollModel(config.model), state, path)
        return Run(self.name, model, config, path, {}, dict(state.get("metadata") or {}))

    def evaluate(self, run: Any, *, data: str | None, split: str) -> dict[str, Any]:
        """NLL per frame (nats) on a split of the chorales."""
        from lstmlab.data.chorales import load_chorales
        from lstmlab.recipes.music.task import evaluate_rolls

        if data:
            raise ValueError("the music recipe evaluates on the music21 chorales only (--split validation|test); "
                             f"--data {data} is not supported")
        chorales = load_chorales(run.config.data.limit or None)
        report = evaluate_rolls(run.model, chorales.split(split), run.config.data.eval_batch_size)
        return {"nll_per_frame": report["loss"], "frames": report["tokens"], "chorales": report["chorales"],
                "data": f"{split} split"}

    def inspect(self, run: Any, *, text: str | None, out_dir: Path) -> Path:
        """The report on the first test chorale: predictions, gates, cells that follow the score."""
        from lstmlab.recipes.music.inspect import write_music_report

        if text is not None:
            raise ValueError("--text/--file apply to language models; a music run is inspected on a test chorale")
        return write_music_report(run, out_dir)

    def next_commands(self, out_dir: Path) -> list[str]:
        return [f"lstmlab evaluate {out_dir} --split test", f"lstmlab inspect {out_dir}",
                f"lstmlab train music --out {out_dir} --resume --max_steps 0 --budget 600   # on, to 600 s of training in all"]
