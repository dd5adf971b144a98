"""What the speech recipe's speakers say: transcripts in a 28-character alphabet, and
sentences from the bundled Shakespeare plays.

Transcripts are lower-case letters, the apostrophe and single spaces (`normalize_transcript`).
Sentences come from the plays of the language-model corpus, split the same way: training
speech from the training plays, validation and test speech from the held-out plays
(`lstmlab.data.shakespeare`), so no test sentence is ever heard or read in training, and
a character LM trained by `lstmlab train lm` on the default corpus has not read them either.
"""

from __future__ import annotations

import re
import unicodedata

from lstmlab.data.splits import TextSplits

ALPHABET = " abcdefghijklmnopqrstuvwxyz'"  # CTC labels 1..28; label 0 is the blank
SPACE = ALPHABET.index(" ") + 1  # the space's CTC label

_SPEAKER_LINE = re.compile(r"^[A-Z][A-Z .'-]*:$")
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")
_OUTSIDE_ALPHABET = re.compile(r"[^a-z' ]+")


def normalize_transcript(text: str) -> str:
    """Lower case, accents removed, anything outside the alphabet a space, apostrophes only
    inside words, single spaces: "O, Romeo! 'Tis I." -> "o romeo tis i"."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    text = text.replace("-", " ")
    text = _OUTSIDE_ALPHABET.sub(" ", text)
    text = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", text)
    return " ".join(text.split())


def encode_transcript(text: str) -> list[int]:
    """A normalised transcript as CTC labels (1..28); ValueError names a character outside the alphabet."""
    labels = []
    for character in text:
        position = ALPHABET.find(character)
        if position < 0:
            raise ValueError(f"transcript {text[:60]!r}: {character!r} is outside the alphabet {ALPHABET!r} "
                             "(normalize_transcript it first)")
        labels.append(position + 1)
    return labels


def decode_labels(labels: list[int]) -> str:
    return "".join(ALPHABET[label - 1] for label in labels if label > 0)


def sentences(text: str, min_words: int = 3, max_words: int = 24) -> list[str]:
    """Normalised sentences of play text (speaker lines dropped), each spoken line's
    sentences split at . ! ? ; : and kept when they have min_words..max_words words and
    no digits. Duplicates are dropped, first occurrence kept."""
    speech = " ".join(line for line in text.splitlines() if line and not _SPEAKER_LINE.match(line))
    found, seen = [], set()
    for piece in _SENTENCE_END.split(speech):
        if any(character.isdigit() for character in piece):
            continue
        sentence = normalize_transcript(piece)
        if min_words <= len(sentence.split()) <= max_words and sentence not in seen:
            seen.add(sentence)
            found.append(sentence)
    return found


def lm_text(splits: TextSplits) -> str:
    """The training plays as normalised sentences, one per line: text for a character LM
    (`lstmlab train lm --data`) that matches the recogniser's alphabet."""
    return "\n".join(sentences(splits.train, min_words=1, max_words=10_000)) + "\n"
