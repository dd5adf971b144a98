"""Tokenisers: characters, or subwords (sentencepiece BPE trained on the training split).

Both share one small interface, which the models, the trainer and `lstmlab.inspect` use:

- ``encode(text) -> list[int]`` and ``decode(ids) -> str`` (``decode(encode(t)) == t``
  for any text whose characters the tokeniser can represent; the BPE tokeniser falls
  back to bytes, so it round-trips any text);
- ``pieces(text) -> list[str]``: the text of each token, in order, concatenating to the text;
- ``vocab_size``;
- ``to_dict()`` / ``tokenizer_from_dict(d)``: plain types and tensors only, so the
  tokeniser is saved inside the model's checkpoint and loaded without running code.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch

UNKNOWN_CHARACTER = "\ufffd"  # id 0 of the character tokeniser: characters unseen in training
# sentencepiece treats each input line as a sentence and normalises whitespace; newlines
# are swapped for this private-use character (a single token) so they survive.
_NEWLINE_STAND_IN = "\ue000"


class CharTokenizer:
    """One token per character. Id 0 is reserved for characters unseen in training."""

    def __init__(self, symbols: list[str]):
        if not symbols or symbols[0] != UNKNOWN_CHARACTER:
            raise ValueError("CharTokenizer symbols must start with the unknown character U+FFFD")
        self.symbols = list(symbols)
        self.index = {symbol: i for i, symbol in enumerate(self.symbols)}

    @classmethod
    def train(cls, text: str) -> "CharTokenizer":
        """Build the vocabulary from the distinct characters of `text` (sorted)."""
        return cls([UNKNOWN_CHARACTER] + sorted(set(text) - {UNKNOWN_CHARACTER}))

    @property
    def vocab_size(self) -> int:
        return len(self.symbols)

    def encode(self, text: str) -> list[int]:
        index = self.index
        return [index.get(character, 0) for character in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.symbols[i] for i in ids)

    def pieces(self, text: str) -> list[str]:
        return list(text)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "char", "symbols": self.symbols}


class BPETokenizer:
    """Sentencepiece BPE with byte fallback; the model file travels as a uint8 tensor."""

    def __init__(self, model_bytes: bytes):
        import sentencepiece

        self.model_bytes = bytes(model_bytes)
        self.processor = sentencepiece.SentencePieceProcessor(model_proto=self.model_bytes)

    @classmethod
    def train(cls, text: str, vocab_size: int = 2000, seed_sentences: int = 200_000) -> "BPETokenizer":
        """Train BPE on `text` (the training split). Identity normalisation keeps every
        space, so decoding gives back the exact text."""
        import sentencepiece

        distinct = len(set(text))
        if vocab_size <= distinct + 260:  # 256 byte pieces + <unk> <s> </s> newline + characters
            raise ValueError(f"bpe vocab_size must exceed 260 (byte fallback and specials) plus the "
                             f"{distinct} distinct characters of the training text; got {vocab_size}")
        with tempfile.TemporaryDirectory() as folder:
            prefix = str(Path(folder) / "bpe")
            try:
                _train_sentencepiece(sentencepiece, text, prefix, vocab_size, seed_sentences)
            except RuntimeError as error:  # sentencepiece's own check: the text has too few pieces
                most = re.search(r"value <= (\d+)", str(error))
                if not most:
                    raise
                raise ValueError(f"bpe vocab_size {vocab_size} is too large for this training text: it holds "
                                 f"at most {most.group(1)} pieces; use --vocab_size {most.group(1)} or less, "
                                 "or more text") from None
            return cls(Path(prefix + ".model").read_bytes())

    @property
    def vocab_size(self) -> int:
        return self.processor.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self.processor.encode(text.replace("\n", _NEWLINE_STAND_IN))

    def decode(self, ids: list[int]) -> str:
        return self.processor.decode(list(ids)).replace(_NEWLINE_STAND_IN, "\n")

    def pieces(self, text: str) -> list[str]:
        ids = self.encode(text)
        pieces: list[str] = []
        pending = bytearray()  # byte-fallback pieces of one character, not yet complete
        first_of_character = 0
        for id_ in ids:
            piece = self.processor.id_to_piece(id_)
            if self.processor.is_byte(id_):  # "<0xE6>": one UTF-8 byte of a rare character
                if not pending:
                    first_of_character = len(pieces)
                pending.append(int(piece[1:-1], 16))
                pieces.append("")
                try:  # the whole character goes to its first byte piece; the rest stay ""
                    pieces[first_of_character] = pending.decode("utf-8")
                    pending.clear()
                except UnicodeDecodeError:
                    continue
            else:
                pieces.append(piece.replace("\u2581", " ").replace(_NEWLINE_STAND_IN, "\n"))
        if "".join(pieces) != text:
            raise ValueError("bpe pieces do not concatenate to the text (does it contain U+2581 "
                             "or U+E000, which this tokeniser uses internally?)")
        return pieces

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "bpe", "model": torch.tensor(list(self.model_bytes), dtype=torch.uint8)}


def _sentences(text: str, max_chars: int = 2000) -> Iterator[str]:
    """Chunks of whole lines (newlines swapped for the stand-in), each at most ~max_chars."""
    chunk: list[str] = []
    size = 0
    for line in text.split("\n"):
        if size + len(line) > max_chars and chunk:
            yield _NEWLINE_STAND_IN.join(chunk) + _NEWLINE_STAND_IN
            chunk, size = [], 0
        chunk.append(line[:max_chars])
        size += len(line) + 1
    if chunk:
        yield _NEWLINE_STAND_IN.join(chunk)


def _train_sentencepiece(sentencepiece: Any, text: str, prefix: str, vocab_size: int, seed_sentences: int) -> None:
    """sentencepiece BPE with byte fallback, keeping every space and newline (see BPETokenizer)."""
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=_sentences(text), model_prefix=prefix, model_type="bpe",
        vocab_size=vocab_size, character_coverage=1.0, byte_fallback=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False,
        add_dummy_prefix=False, split_by_whitespace=True, allow_whitespace_only_pieces=True,
        user_defined_symbols=[_NEWLINE_STAND_IN], input_sentence_size=seed_sentences,
        shuffle_input_sentence=False, minloglevel=2, num_threads=1,
    )


def train_tokenizer(kind: str, text: str, vocab_size: int = 2000) -> CharTokenizer | BPETokenizer:
    """Build a tokeniser of `kind` ("char" or "bpe") from the training text."""
    if kind == "char":
        return CharTokenizer.train(text)
    if kind == "bpe":
        return BPETokenizer.train(text, vocab_size=vocab_size)
    raise ValueError(f"tokenizer must be 'char' or 'bpe', got {kind!r}")


def tokenizer_from_dict(state: dict[str, Any]) -> CharTokenizer | BPETokenizer:
    """Rebuild a tokeniser saved with `to_dict()`."""
    kind = state.get("kind")
    if kind == "char":
        return CharTokenizer(list(state["symbols"]))
    if kind == "bpe":
        return BPETokenizer(bytes(state["model"].tolist()))
    raise ValueError(f"unknown tokenizer kind in checkpoint: {kind!r} (expected 'char' or 'bpe')")
