"""The speech recipe's hooks: train, load, evaluate, inspect, and `lstmlab transcribe`."""

from __future__ import annotations

import time
from pathlib import Path, PurePath
from typing import Any

from lstmlab.checkpoint import write_text_atomically
from lstmlab.recipes.base import Recipe
from lstmlab.recipes.speech.config import SpeechConfig, saved_config


class SpeechRecipe(Recipe):
    """BiLSTM-CTC speech recognition (default: synthesised speech, held-out voices)."""

    name = "speech"
    summary = "BiLSTM-CTC speech recognition: `lstmlab train speech [--hours H] [--data FOLDER|MANIFEST] [--budget S]`"

    def default_config(self) -> SpeechConfig:
        return SpeechConfig()

    def train(self, config: SpeechConfig, out_dir: Path, *, resume: bool) -> dict[str, Any]:
        from lstmlab.recipes.speech.task import train_speech

        result = train_speech(config, out_dir, resume=resume)
        trainer = result["trainer"]
        if trainer.is_main:
            self.write_lm_text(out_dir)
            print(f"validation (greedy, {result['utterances']} utterances): CER {result['cer']:.4f}, "
                  f"WER {result['wer']:.4f}, CTC loss {result['loss']:.4f} nats/char after {trainer.step} steps, "
                  f"{trainer.elapsed:.1f} s of training")
        trainer.leave_process_group()
        return result

    @staticmethod
    def write_lm_text(out_dir: Path) -> Path:
        """RUN/lm_text.txt: the training plays in the recogniser's alphabet, for `lstmlab train lm --data`."""
        from lstmlab.data.shakespeare import shakespeare_splits
        from lstmlab.data.speech_text import lm_text

        path = Path(out_dir) / "lm_text.txt"
        if not path.is_file():
            write_text_atomically(path, lm_text(shakespeare_splits()))
        return path

    def saved_config(self, values: dict[str, Any]) -> SpeechConfig:
        """A saved config, older runs' missing fields filled as they were (`config.saved_config`)."""
        return saved_config(values)

    def load(self, state: dict[str, Any], path: Path) -> Any:
        from lstmlab.models.acoustic import AcousticModel
        from lstmlab.recipes.speech.recognizer import SpeechRun
        from lstmlab.recipes.speech.task import N_LABELS
        from lstmlab.runs import load_weights

        config = self.saved_config(state["config"])
        model = load_weights(AcousticModel(config.model, config.features.n_mels, N_LABELS), state, path)
        return SpeechRun(self.name, model, config, path, dict(state.get("components") or {}),
                         dict(state.get("metadata") or {}))

    def evaluate(self, run: Any, *, data: str | None, split: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """WER and CER (jiwer) greedy, with prefix beam search, with beam + LM when
        ``options["lm"]`` names a character LM run, and with a lexicon as well (or alone)
        when ``options["lexicon"]`` names a text file; on a folder/manifest or on a held-out
        split of the run's data (default: the test voices). The top-level "wer" and "cer"
        are the last decoder's: beam_lm_lexicon, beam_lm, beam_lexicon or beam."""
        from lstmlab.recipes.speech.corpus import user_features
        from lstmlab.recipes.speech.recognizer import DecodeSettings, load_fusion, load_lexicon
        from lstmlab.recipes.speech.task import beam_decoder, greedy, load_splits, score_set

        options = dict(options or {})
        config = run.config
        settings = DecodeSettings.for_run(config.data, options.get("beam") or config.data.beam,
                                          lm_weight=options.get("lm_weight"), word_bonus=options.get("word_bonus"),
                                          oov_penalty=options.get("oov_penalty"))
        # the LM and lexicon first: a wrong path is refused before any speech is read or made
        fusion, lexicon = load_fusion(options.get("lm")), load_lexicon(options.get("lexicon"))
        if data:
            utterances, source = user_features(data, config.features), data
        else:
            splits = load_splits(config)
            utterances, source = getattr(splits, split), f"{split} split of {splits.description}"
        decoders = {"greedy": greedy, "beam": beam_decoder(settings.beam_options(False, False))}
        if fusion is not None:
            decoders["beam_lm"] = beam_decoder(settings.beam_options(True, False), fusion)
        if lexicon is not None:  # with the LM where there is one
            decoders["beam_lm_lexicon" if fusion else "beam_lexicon"] = beam_decoder(
                settings.beam_options(fusion is not None, True), fusion, lexicon)
        started = time.perf_counter()
        scores = score_set(run.model, utterances, decoders)
        seconds = time.perf_counter() - started
        best = list(decoders)[-1]
        report: dict[str, Any] = {"wer": scores[best]["wer"], "cer": scores[best]["cer"], "decoder": best,
                                  "utterances": len(utterances), "hours": utterances.hours}
        for name in decoders:
            report[f"wer_{name}"], report[f"cer_{name}"] = scores[name]["wer"], scores[name]["cer"]
        report.update(beam=settings.beam, loss=scores["loss"], data=source,
                      real_time_factor=seconds / max(1e-9, sum(utterances.seconds)))
        if fusion is not None:
            report.update(lm=str(options["lm"]), lm_weight=settings.lm_weight, word_bonus=settings.word_bonus)
        if lexicon is not None:
            report.update(lexicon=str(options["lexicon"]), lexicon_words=lexicon.words,
                          oov_penalty=settings.oov_penalty)
        if options.get("per_voice"):
            report["per_voice"] = per_voice(utterances, scores["transcripts"][best])
        return report

    def inspect(self, run: Any, *, text: str | None, out_dir: Path, audio: str | None = None) -> Path:
        from lstmlab.recipes.speech.inspect import write_speech_report

        return write_speech_report(run, audio, out_dir)

    def next_commands(self, out_dir: Path) -> list[str]:
        return [f"lstmlab evaluate {out_dir}   # WER and CER on the held-out test voices",
                f"lstmlab train lm --data {out_dir}/lm_text.txt --budget 1800 --threads 2 --batch_size 16 --lr 6e-3 "
                f"--hidden_size 512 --embedding_size 64 --warmup_steps 0 --out {out_dir}-lm"
                "   # a character LM for the beam search (results/speech.md)",
                f"lstmlab evaluate {out_dir} --lm {out_dir}-lm --lexicon {out_dir}/lm_text.txt",
                f"lstmlab transcribe {out_dir} FILE.wav --beam 16",
                f"lstmlab inspect {out_dir} --audio FILE.wav",
                f"lstmlab train {self.name} --out {out_dir} --resume --max_steps 0 --budget 1800"
                "   # on, to 30 minutes of training in all"]

    def onnx_graphs(self, run: Any) -> dict[str, Any]:
        """The acoustic model on whole utterances, and its streaming step for a unidirectional run."""
        from lstmlab.export.recipes import model_graphs

        return model_graphs(run.model)

    def commands(self) -> dict[str, tuple[str, str]]:
        return {"transcribe": ("lstmlab.recipes.speech.cli",
                               "transcribe WAV files (or --stream one) with a trained speech run")}


def voice_group(voice: str) -> str:
    """The group `--per-voice` scores an utterance in: an espeak-ng voice's variant (the part
    after '+', or the accent's own voice), or for a file the name before its last '-'
    (``wav/ked-0012.wav`` → ``ked``, as the held-out synthesiser sets name theirs; a
    name without '-' is its own group)."""
    if "+" in voice:
        return voice.split("+", 1)[1]
    if PurePath(voice).suffix:  # user data: the audio file
        return PurePath(voice).stem.rsplit("-", 1)[0]
    return voice


def per_voice(utterances: Any, transcripts: list[str]) -> dict[str, dict[str, float]]:
    """CER and WER per voice group (`voice_group`)."""
    from lstmlab.metrics import speech_scores

    groups: dict[str, list[int]] = {}
    for i, voice in enumerate(utterances.voices):
        groups.setdefault(voice_group(voice), []).append(i)
    return {name: {**speech_scores([transcripts[i] for i in rows], [utterances.texts[i] for i in rows]),
                   "utterances": len(rows)} for name, rows in sorted(groups.items())}
