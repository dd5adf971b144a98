"""Parallel text for translation: the bundled Bible verse pairs, or the user's own.

- `bible_pairs()`: English (King James, SWORD module engKJV2006eb) and Spanish
  (Reina-Valera 1909, spaRV1909eb) verse pairs with text on both sides, in canonical
  order: by reference, except where the Spanish numbers verses differently, where they are
  re-aligned by length (`lstmlab.data.alignment`; a few pairs then join two or more verses
  and carry the first one's reference). The Spanish module's print conventions are undone
  first (`lstmlab.data.reina_valera`). Read once from the modules and cached as a TSV in
  ``$LSTMLAB_CACHE/translation`` (``$LSTMLAB_CACHE`` defaults to ``~/.cache/lstmlab``, as
  for the compiled engines), under a name keyed by the module files' paths, sizes and
  times and by this code, so a changed module (or reader) is read again.
- `bible_splits()`: whole books held out, fixed: test = Luke and Acts, validation = Mark,
  training = the other 63 books, so no held-out verse reaches training or the tokeniser.
- `read_parallel(path)` (TSV: source TAB target per line) or
  `read_parallel(source=F, target=G)` (two files aligned line by line), with one-line
  errors naming the file and line; `user_splits` holds out a seeded ~5 % each for
  validation and test.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path

from lstmlab.data import alignment, reina_valera, sword
from lstmlab.data.alignment import align_verses
from lstmlab.data import cache
from lstmlab.data.reina_valera import restore_typography
from lstmlab.data.sword import find_module, read_ztext

ENGLISH_MODULE, SPANISH_MODULE = "engKJV2006eb", "spaRV1909eb"
BIBLE_TEST_BOOKS = ("Luke", "Acts")
BIBLE_VALIDATION_BOOKS = ("Mark",)
Pair = tuple[str, str]
BibleRow = tuple[str, int, int, str, str]  # book, chapter, verse, English, Spanish


@dataclass
class ParallelSplits:
    """(source, target) sentence pairs per split, and a line saying where they came from."""

    train: list[Pair]
    validation: list[Pair]
    test: list[Pair]
    description: str


def cache_folder() -> Path:
    """Where the verse pairs are cached: ``$LSTMLAB_CACHE/translation`` (default ``~/.cache/lstmlab``)."""
    return cache.cache_folder("translation")


def clean_verse(text: str) -> str:
    """Whitespace collapsed, no paragraph sign (¶), "¿" and "¡" against their word: for
    verses read from other modules (see benchmarks/translation_web_pairs.py)."""
    words = text.replace("\u00b6", " ").split()
    return " ".join(words).replace("¿ ", "¿").replace("¡ ", "¡")


def _module_key(folders: list[Path]) -> str:
    # The code that turns modules into pairs is part of the key too, so an edit to the reader,
    # the clean-up or the alignment rebuilds the cache rather than serving pairs it would not make.
    code = [Path(module.__file__).read_bytes() for module in (sword, reina_valera, alignment)] + \
        [Path(__file__).read_bytes()]
    parts = [hashlib.sha256(b"".join(code)).hexdigest()]
    for folder in folders:
        parts.append(str(folder.resolve()))
        files = sorted(p for p in folder.iterdir() if p.is_file())
        parts += [f"{p.name} {p.stat().st_size} {p.stat().st_mtime_ns}" for p in files]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _read_cache(path: Path) -> list[BibleRow] | None:
    """The cached rows, or None when the file is not a whole cache (then it is rebuilt)."""
    rows = []
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            book, chapter, verse, english, spanish = line.split("\t")
            rows.append((book, int(chapter), int(verse), english, spanish))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return rows or None


def _write_cache(path: Path, rows: list[BibleRow]) -> None:
    # Written to a temporary file and renamed, so a reader (another process) never sees half a cache.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text("".join(f"{b}\t{c}\t{v}\t{e}\t{s}\n" for b, c, v, e, s in rows), encoding="utf-8")
        os.replace(temporary, path)
        for stale in path.parent.glob("kjv-rv1909-*.tsv"):
            if stale != path:
                stale.unlink(missing_ok=True)  # made from an older module or reader
    except OSError:
        pass  # an unwritable cache only costs reading the modules again next time


def bible_pairs() -> list[BibleRow]:
    """(book, chapter, verse, English, Spanish) for every verse pair (module docstring)."""
    english_folder, spanish_folder = find_module(ENGLISH_MODULE), find_module(SPANISH_MODULE)
    cache = cache_folder() / f"kjv-rv1909-{_module_key([english_folder, spanish_folder])}.tsv"
    if cache.is_file() and (rows := _read_cache(cache)) is not None:
        return rows
    rows = align_verses(read_ztext(english_folder), restore_typography(read_ztext(spanish_folder)))
    if not rows:
        raise ValueError(f"{english_folder} and {spanish_folder} have no verse in common")
    _write_cache(cache, rows)
    return rows


def _short_enough(pair: Pair, max_words: int | None) -> bool:
    return not max_words or (len(pair[0].split()) <= max_words and len(pair[1].split()) <= max_words)


def _check_max_words(max_words: int | None) -> None:
    if max_words is not None and max_words < 0:
        raise ValueError(f"max_words: expected a number of words >= 1 (or None / 0 for no limit), got {max_words}")


def bible_splits(max_words: int | None = None) -> ParallelSplits:
    """The verse pairs split by whole books (see the module docstring). `max_words` keeps only
    training pairs with both sides at most that many words; the held-out books stay whole."""
    _check_max_words(max_words)
    rows = bible_pairs()
    held_out = set(BIBLE_TEST_BOOKS) | set(BIBLE_VALIDATION_BOOKS)
    train = [(e, s) for book, _, _, e, s in rows if book not in held_out and _short_enough((e, s), max_words)]
    validation = [(e, s) for book, _, _, e, s in rows if book in BIBLE_VALIDATION_BOOKS]
    test = [(e, s) for book, _, _, e, s in rows if book in BIBLE_TEST_BOOKS]
    limit = f", training pairs of at most {max_words} words a side" if max_words else ""
    return ParallelSplits(train, validation, test,
                          "English -> Spanish Bible verses (King James -> Reina-Valera 1909; "
                          f"test {' + '.join(BIBLE_TEST_BOOKS)}, validation {' + '.join(BIBLE_VALIDATION_BOOKS)}"
                          f"{limit})")


def _lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file (BOM and carriage returns dropped, blank lines at the
    end ignored); ValueError naming the file and line when it is not UTF-8 or is empty."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise ValueError(f"{path}: line {line}: not UTF-8 (byte {error.start} of the file: {error.reason}); "
                         "save it as UTF-8") from None
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(f"{path}: empty file (expected one sentence pair per line)")
    return lines


def read_parallel(path: str | Path | None = None, *, source: str | Path | None = None,
                  target: str | Path | None = None) -> list[Pair]:
    """(source, target) pairs from a TSV file (``source<TAB>target`` per line) or from two
    files aligned line by line; each side stripped of surrounding spaces."""
    if path is not None and (source is not None or target is not None):
        raise ValueError("read_parallel: give a TSV path, or source= and target= files, not both")
    if path is not None:
        pairs = []
        for number, line in enumerate(_lines(path), start=1):
            fields = line.split("\t")
            if len(fields) != 2:
                blank = " (a blank line)" if not line.strip() else ""
                raise ValueError(f"{path}: line {number}: expected source<TAB>target (2 fields), found "
                                 f"{len(fields)} field{'s' if len(fields) != 1 else ''}{blank}")
            for side, text in zip(("source", "target"), fields):
                if not text.strip():
                    raise ValueError(f"{path}: line {number}: the {side} side is empty")
            pairs.append((fields[0].strip(), fields[1].strip()))
        return pairs
    if source is None or target is None:
        raise ValueError("read_parallel: give a TSV path, or both source= and target= files")
    sources, targets = _lines(source), _lines(target)
    if len(sources) != len(targets):
        raise ValueError(f"--source {source} has {len(sources)} lines but --target {target} has {len(targets)}; "
                         "they must be aligned line by line")
    for number, (s, t) in enumerate(zip(sources, targets), start=1):
        for file, text in ((source, s), (target, t)):
            if not text.strip():
                raise ValueError(f"{file}: line {number}: empty line (each line needs a sentence)")
    return [(s.strip(), t.strip()) for s, t in zip(sources, targets)]


def user_splits(pairs: list[Pair], seed: int = 0, held_out: float = 0.05) -> ParallelSplits:
    """A seeded split of the user's pairs: `held_out` of them (at least one) each for validation
    and test, the rest for training, each split in the pairs' own order. The same pairs and
    seed give the same split."""
    if not 0 < held_out < 0.5:
        raise ValueError(f"held_out: expected a fraction between 0 and 0.5, got {held_out}")
    if len(pairs) < 3:
        raise ValueError(f"expected at least 3 sentence pairs (one each for training, validation and test), "
                         f"got {len(pairs)}")
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    size = max(1, round(held_out * len(pairs)))
    validation, test, train = sorted(order[:size]), sorted(order[size:2 * size]), sorted(order[2 * size:])
    return ParallelSplits([pairs[i] for i in train], [pairs[i] for i in validation], [pairs[i] for i in test],
                          f"the user's parallel text ({len(pairs)} pairs; validation and test {size} each, "
                          f"seed {seed})")


def load_parallel_splits(path: str | None, max_words: int | None = None, seed: int = 0) -> ParallelSplits:
    """The bundled verses (`path` None) or a TSV file of the user's pairs, split; `max_words`
    filters the training pairs only, as in `bible_splits`. (Two aligned files: use
    `read_parallel(source=, target=)` and `user_splits`.)"""
    _check_max_words(max_words)
    if path is None:
        return bible_splits(max_words)
    splits = user_splits(read_parallel(path), seed=seed)
    splits.train = [pair for pair in splits.train if _short_enough(pair, max_words)]
    splits.description = f"{path}: {splits.description}"
    return splits
