"""Sentences in, translations out: tokenise, decode in length-sorted batches, detokenise.

    run = lstmlab.load("runs/translation-...")
    for t in run.translate(["In the beginning was the Word."], beam=5):
        print(t.text)              # the detokenised translation
        t.attention                # (target pieces + EOS, source pieces + EOS) weights, or None

Any text is accepted: characters the vocabulary lacks go through sentencepiece's byte
fallback, an empty line translates to what the model says for an empty source, and a
line longer than ``max_source_tokens`` is cut there (`Translation.truncated` says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor

from lstmlab.recipes.translation.batches import Specials, source_batch
from lstmlab.recipes.translation.decoding import Hypothesis, beam_search, greedy_search
from lstmlab.runs import Run


@dataclass
class Translation:
    """One translated sentence."""

    source: str
    text: str  # the translation, detokenised
    source_pieces: list[str]  # the source's subword pieces (plus "</s>")
    pieces: list[str]  # the translation's pieces (plus "</s>")
    attention: Tensor | None  # (len(pieces), len(source_pieces)); None for a model without attention
    log_probability: float
    truncated: bool = False  # the source was cut to max_source_tokens


@dataclass
class DecodeOptions:
    beam: int = 5  # 1 = greedy
    length_penalty: float = 1.0
    max_length_ratio: float = 1.5
    max_source_tokens: int = 400
    batch_sentences: int = field(default=32)  # sentences decoded side by side


def decode_ids(model: Any, sources: Sequence[list[int]], specials: Specials, options: DecodeOptions) -> list[Hypothesis]:
    """Token-id sources -> hypotheses in the same order, decoded in batches of similar length."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    results: list[Hypothesis | None] = [None] * len(sources)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), options.batch_sentences):
            chunk = order[start:start + options.batch_sentences]
            source, lengths = source_batch([sources[i][:options.max_source_tokens] for i in chunk], specials)
            if options.beam == 1:
                found = greedy_search(model, source, lengths, specials.bos, specials.eos, options.max_length_ratio)
            else:
                found = beam_search(model, source, lengths, specials.bos, specials.eos, options.beam,
                                    options.length_penalty, options.max_length_ratio)
            for index, length, hypothesis in zip(chunk, lengths.tolist(), found):
                if hypothesis.attention is not None:  # drop the columns of the batch's padding
                    hypothesis.attention = hypothesis.attention[:, :length]
                results[index] = hypothesis
    model.train(was_training)
    return results  # type: ignore[return-value]


def one_line(text: str) -> str:
    """The text with any line break (byte-fallback pieces can spell \\r, \\x0b, U+2028, ...)
    turned into a space: one translation is always one line."""
    return " ".join(text.splitlines()) if text else text


def translate(model: Any, tokenizer: Any, sentences: Sequence[str], options: DecodeOptions) -> list[Translation]:
    """Translate each sentence (see the module docstring)."""
    if isinstance(sentences, str):
        raise TypeError("translate: expected a list of sentences, got one string; wrap it in a list")
    specials = Specials.of(tokenizer)
    sources = [tokenizer.encode(sentence.replace("\n", " ")) for sentence in sentences]
    found = decode_ids(model, sources, specials, options)
    out = []
    for sentence, ids, hypothesis in zip(sentences, sources, found):
        kept = ids[:options.max_source_tokens]
        out.append(Translation(
            source=sentence, text=one_line(tokenizer.decode(hypothesis.tokens)),
            source_pieces=[tokenizer.processor.id_to_piece(i) for i in kept] + ["</s>"],
            pieces=[tokenizer.processor.id_to_piece(i) for i in hypothesis.tokens] + ["</s>"],
            attention=hypothesis.attention, log_probability=hypothesis.log_probability,
            truncated=len(ids) > options.max_source_tokens))
    return out


@dataclass
class TranslationRun(Run):
    """A loaded translation run (`lstmlab.load`): `translate(sentences, beam=...)` as well."""

    def translate(self, sentences: Sequence[str], beam: int | None = None, **options: Any) -> list[Translation]:
        """Translate each of `sentences`; beam (default: the run's, 5) 1 = greedy; options:
        length_penalty, max_length_ratio, max_source_tokens, batch_sentences."""
        data = self.config.data
        chosen = DecodeOptions(beam=data.beam if beam is None else beam, length_penalty=data.length_penalty,
                               max_length_ratio=data.max_length_ratio, max_source_tokens=data.max_source_tokens)
        for name, value in options.items():
            if not hasattr(chosen, name):
                raise TypeError(f"translate: unknown option {name!r}; expected beam, length_penalty, "
                                "max_length_ratio, max_source_tokens or batch_sentences")
            setattr(chosen, name, value)
        return translate(self.model, self.tokenizer, sentences, chosen)
