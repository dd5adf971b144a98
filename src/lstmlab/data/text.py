"""User text: one UTF-8 file, or every file in a folder, split deterministically.

The split is contiguous, not random, so neighbouring lines never straddle train and
validation: the first 90 % of the characters train, the next 5 % validate, the last 5 %
test. For a folder the files are read in sorted path order and joined with a newline.
"""

from __future__ import annotations

from pathlib import Path

from lstmlab.data.shakespeare import shakespeare_splits
from lstmlab.data.splits import TextSplits

VALIDATION_FRACTION = 0.05
TEST_FRACTION = 0.05


class CorpusError(ValueError):
    """A user corpus cannot be used: missing, binary, not UTF-8, or too small."""


def read_text_file(path: Path) -> str:
    """Read one UTF-8 file; binary or undecodable files raise CorpusError naming the file."""
    data = path.read_bytes()
    if b"\x00" in data[:65536]:
        raise CorpusError(f"{path} looks binary (it contains NUL bytes); expected UTF-8 text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CorpusError(
            f"{path} is not valid UTF-8 (byte {error.start}: {data[error.start:error.start + 4]!r}); "
            "convert it first, e.g. `iconv -f latin1 -t utf-8`") from error


def read_corpus(path: str | Path) -> str:
    """The text of a file, or of every non-hidden file under a folder (sorted), joined by newlines."""
    path = Path(path)
    if path.is_file():
        return read_text_file(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*")
                       if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise CorpusError(f"{path} holds no files; expected UTF-8 text files")
        return "\n".join(read_text_file(file) for file in files)
    raise CorpusError(f"--data {path}: no such file or folder")


def split_text(text: str, description: str) -> TextSplits:
    """Contiguous 90/5/5 split of `text`."""
    validation_start = int(len(text) * (1 - VALIDATION_FRACTION - TEST_FRACTION))
    test_start = int(len(text) * (1 - TEST_FRACTION))
    if validation_start == 0 or test_start == validation_start or test_start == len(text):
        raise CorpusError(f"{description} has {len(text)} characters: too small to split "
                          "into train/validation/test; give at least a few thousand characters")
    return TextSplits(train=text[:validation_start], validation=text[validation_start:test_start],
                      test=text[test_start:], description=description)


def load_splits(data: str | None) -> TextSplits:
    """The corpus named by `--data` (None or "shakespeare": the bundled plays)."""
    if data is None or data in ("", "shakespeare"):
        return shakespeare_splits()
    return split_text(read_corpus(data), f"user text {data}")
