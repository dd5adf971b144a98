"""Bach's chorales from the `music21` corpus as piano rolls (Boulanger-Lewandowski et al. 2012).

Each chorale (the four-part Bach scores that ship with music21) becomes a binary piano
roll of shape (T, 88): one frame per eighth note, one column per piano key (MIDI 21 to
108); a key is 1 in every frame its note sounds. This is the representation of the
JSB Chorales set, quantised to eighths as the issue asks (JSB itself uses quarters).

Splits are fixed by the chorale's file name (a hash, so adding a file does not move the
others): about 60 % train, 20 % validation, 20 % test. Duplicates (the same roll under
two catalogue numbers) are kept once, in the split of the first name.

Parsing 400 scores with music21 takes about a minute, so the rolls are cached in
``$LSTMLAB_CACHE/music/chorales-v{CACHE_VERSION}.npz`` (default ``~/.cache/lstmlab``;
``$LSTMLAB_CHORALES`` names another file), written atomically; `load_chorales` parses
only when the cache is missing.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstmlab.data.cache import cache_folder

LOWEST_KEY, KEYS = 21, 88  # MIDI number of the piano's A0, and its key count
FRAMES_PER_QUARTER = 2  # eighth-note frames
CACHE_VERSION = 1
SPLITS = ("train", "validation", "test")


@dataclass
class Chorales:
    """Piano rolls by split: each a list of (T, 88) uint8 arrays, with their names."""

    train: list[np.ndarray]
    validation: list[np.ndarray]
    test: list[np.ndarray]
    names: dict[str, list[str]]
    description: str

    def split(self, name: str) -> list[np.ndarray]:
        if name not in SPLITS:
            raise ValueError(f"split: expected one of {', '.join(SPLITS)}, got {name!r}")
        return getattr(self, name)


def cache_path() -> Path:
    if os.environ.get("LSTMLAB_CHORALES"):
        return Path(os.environ["LSTMLAB_CHORALES"])
    return cache_folder("music") / f"chorales-v{CACHE_VERSION}.npz"


def split_of(name: str) -> str:
    """train / validation / test from the file name's hash (3 : 1 : 1)."""
    bucket = int(hashlib.sha256(name.encode()).hexdigest(), 16) % 5
    return "train" if bucket < 3 else "validation" if bucket == 3 else "test"


def score_to_roll(score) -> np.ndarray:
    """A music21 score -> (T, 88) uint8 piano roll at FRAMES_PER_QUARTER frames per quarter."""
    flat = score.flatten()
    frames = int(np.ceil(float(flat.highestTime) * FRAMES_PER_QUARTER))
    roll = np.zeros((max(frames, 1), KEYS), dtype=np.uint8)
    for note in flat.notes:
        start = int(round(float(note.offset) * FRAMES_PER_QUARTER))
        stop = max(start + 1, int(round(float(note.offset + note.quarterLength) * FRAMES_PER_QUARTER)))
        for pitch in note.pitches:
            key = pitch.midi - LOWEST_KEY
            if 0 <= key < KEYS:
                roll[start:stop, key] = 1
    return roll


def chorale_files() -> list[Path]:
    """The Bach scores of the music21 corpus (an ImportError says how to get music21)."""
    try:
        from music21 import corpus
    except ImportError as error:  # pragma: no cover - music21 is a dependency
        raise ImportError("the music recipe reads Bach's chorales from the music21 package: pip install music21") from error
    return sorted(Path(path) for path in corpus.getComposer("bach"))


def parse_all(progress: bool = True, files: list[Path] | None = None) -> dict[str, np.ndarray]:
    """Parse every four-part Bach score of the corpus (or of `files`): {file stem: roll}."""
    from music21 import converter
    from tqdm import tqdm

    rolls: dict[str, np.ndarray] = {}
    seen: set[bytes] = set()
    for path in tqdm(chorale_files() if files is None else files, desc="parsing Bach chorales (music21, once)", disable=not progress):
        score = converter.parse(path)
        if len(score.parts) != 4:  # the chorales are SATB; skip the few other works
            continue
        roll = score_to_roll(score)
        digest = hashlib.sha256(roll.tobytes()).digest()
        if digest in seen:
            continue
        seen.add(digest)
        rolls[path.name.rsplit(".", 1)[0]] = roll
    return rolls


def write_cache(rolls: dict[str, np.ndarray], path: Path) -> None:
    """Save the rolls atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + f".tmp-{os.getpid()}")
    with open(temporary, "wb") as handle:
        np.savez_compressed(handle, **rolls)
    os.replace(temporary, path)


def load_chorales(limit: int | None = None, progress: bool = True) -> Chorales:
    """The chorales by split (parsed once, then from the cache). limit: at most this many
    per split, the first by name (for quick runs and tests)."""
    path = cache_path()
    if not path.is_file():
        write_cache(parse_all(progress), path)
    with np.load(path) as stored:
        rolls = {name: stored[name] for name in sorted(stored.files)}
    by_split: dict[str, list[str]] = {split: [] for split in SPLITS}
    for name in rolls:
        by_split[split_of(name)].append(name)
    if limit is not None:
        by_split = {split: names[:limit] for split, names in by_split.items()}
    frames = sum(len(rolls[name]) for name in by_split["train"])
    description = (f"Bach chorales from music21: {len(by_split['train'])} train / {len(by_split['validation'])} "
                   f"validation / {len(by_split['test'])} test, {frames:,} training frames (eighth notes)")
    return Chorales(*([rolls[name] for name in by_split[split]] for split in SPLITS), by_split, description)
