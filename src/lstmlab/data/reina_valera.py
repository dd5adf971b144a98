"""Print conventions of the Reina-Valera 1909 module (spaRV1909eb) undone, so that its verses
read as ordinary sentences next to the King James ones.

- Each chapter opens with one or two words in capitals: "EN el principio", "Y FUERON
  acabados", "DE VEINTE años era Achâz", "Salmo de David. YO DIJE: Atenderé". In a
  chapter's first verse, the first run of (at most two) all-capital words is written the way
  the rest of the module writes it — "Y fueron", "Y Abraham", "Y Jehová" — and with a capital
  initial where it starts a sentence: "En el principio", "¡Oh Jehová", "Yo dije".
  Capitals elsewhere are the text's own and stay: inscriptions ("SANTIDAD Á JEHOVÁ",
  "MENE, MENE, TEKEL"), the divine name "JAH".
- Psalm 119's verses 1, 9, 17, ... begin with the name of a Hebrew letter ("ALEPH.",
  "BETH") as plain text; the King James module has them as headings (dropped), so they are
  dropped here too.

    verses = restore_typography(read_ztext(find_module("spaRV1909eb")))
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

from lstmlab.data.sword import Verse

_TOKEN = re.compile(r"^(\W*)(\w+)(\W*)$")  # leading "¡", "¿", "(", the word, trailing punctuation
_SENTENCE_END = (".", ":", "!", "?")  # after a colon the module starts with a capital ("Y dijo Dios: Sea")
MAX_OPENING_WORDS = 2
_PUNCTUATION = "¡¿()[]\"'.,;:!?«»-—"


def _capitals(word: str) -> bool:
    """All letters capitals, and at least two of them ("JEHOVÁ;", not "Y" or "Á")."""
    return word.isupper() and sum(c.isalpha() for c in word) > 1


def _starts_sentence(tokens: list[str], index: int, lead: str) -> bool:
    return index == 0 or bool(lead.strip("(\"'")) or tokens[index - 1].endswith(_SENTENCE_END)


def usual_spellings(verses: list[Verse], words: set[str] | None = None) -> dict[str, str]:
    """Each word (lower-cased; only those in `words` when given) -> its most frequent
    spelling inside sentences, where the letter case tells a name ("Jehová") from a common
    word ("fueron")."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for verse in verses:
        previous = "."  # a verse starts a sentence
        for token in verse.text.split():
            word = token.strip(_PUNCTUATION)
            if word and not word.isupper() and not previous.endswith(_SENTENCE_END) and token[0] not in "¡¿" \
                    and (words is None or word.lower() in words):
                counts[word.lower()][word] += 1
            previous = token
    return {word: spellings.most_common(1)[0][0] for word, spellings in counts.items()}


def restore_opening(text: str, spellings: dict[str, str]) -> str:
    """`text` (a chapter's first verse) with its first run of capital words written normally."""
    tokens = text.split()
    first = next((i for i, t in enumerate(tokens) if (m := _TOKEN.match(t)) and _capitals(m.group(2))), None)
    if first is None:
        return text
    index = first
    while index < len(tokens) and index < first + MAX_OPENING_WORDS:
        found = _TOKEN.match(tokens[index])
        if not found or not _capitals(found.group(2)):
            break
        lead, word, tail = found.groups()
        usual = spellings.get(word.lower(), word.lower())
        if _starts_sentence(tokens, index, lead):
            usual = usual[0].upper() + usual[1:]
        tokens[index] = lead + usual + tail
        index += 1
    return " ".join(tokens)


def restore_typography(verses: list[Verse]) -> list[Verse]:
    """The verses with the conventions in the module docstring undone (same order)."""
    verses = [_without_letter_heading(v) for v in verses]
    first_verse: dict[tuple[str, int], int] = {}
    for verse in verses:
        first_verse.setdefault((verse.book, verse.chapter), verse.verse)
    openings = [v for v in verses if first_verse[(v.book, v.chapter)] == v.verse]
    words = {t.strip(_PUNCTUATION).lower() for v in openings for t in v.text.split() if _capitals(t)}
    spellings = usual_spellings(verses, words)
    return [Verse(v.book, v.chapter, v.verse, restore_opening(v.text, spellings))
            if first_verse[(v.book, v.chapter)] == v.verse else v for v in verses]


def _without_letter_heading(verse: Verse) -> Verse:
    if verse.book != "Ps" or verse.chapter != 119 or verse.verse % 8 != 1:
        return verse
    head, _, rest = verse.text.partition(" ")
    return Verse(verse.book, verse.chapter, verse.verse, rest) if rest and _capitals(head) else verse
