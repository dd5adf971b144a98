"""Verse alignment of two Bible modules where their verse numbering differs.

Both modules are filed under the King James versification, but the Reina-Valera source
numbers some passages its own (Hebrew or Vulgate) way, and the converter squeezed those
into the KJV slots: Spanish Job 39:1 holds KJV 38:39, its 39:30 holds KJV 39:27-40:5, and
its 38:39-41 are empty; Acts 19:40 holds KJV 19:40-41; 1 Kings 22:44-53 are each one verse
off. Pairing by reference alone puts a wrong translation against ~200 verses.

`align_verses` pairs by reference wherever that fits, and elsewhere re-aligns by length,
after Gale & Church (1993): a translation's length in characters is nearly proportional to
its source's, so the log of the length ratio is close to normal (noisier for short
verses). A chapter is a suspect when it has a verse on one side only or a run of
same-reference pairs that fit that model badly; a stretch of suspect chapters, with their
neighbours, is then re-aligned by a dynamic programme that may pair one verse with up to
ten on the other side (joined with spaces) or two with two, each shape at a price. The
result replaces the pairing by reference only when it is clearly cheaper (MIN_GAIN), so
aligned text that merely has unusual lengths (a genealogy) stays as it is.

    rows = align_verses(read_ztext(english_dir), read_ztext(spanish_dir))
    # [("Gen", 1, 1, "In the beginning ...", "En el principio ..."), ...]
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

from lstmlab.data.sword import Verse

Reference = tuple[str, int, int]
AlignedRow = tuple[str, int, int, str, str]  # first verse's book, chapter, verse; both texts
BAND = 15  # how far (in verses) the two sides' positions may drift apart inside a re-aligned stretch
# A chapter is re-aligned when some SUSPECT_RUN consecutive same-reference pairs cost more than
# SUSPECT_RUN_COST together (about 1 chapter in 6: a cheap test, since the re-alignment decides).
SUSPECT_RUN, SUSPECT_RUN_COST = 3, 12.0
MIN_GAIN = 4.0  # a re-alignment is kept only when it is this much cheaper than pairing by reference
# Price of each bead shape (verses on one side, on the other), on the scale of the length cost:
# shapes other than 1-1 are rare, so they must fit the lengths clearly better to be chosen.
BEAD_PRICE = {(1, 1): 0.0, (1, 0): 10.0, (0, 1): 10.0, (2, 2): 9.0}
for _k in range(2, 11):
    BEAD_PRICE[(_k, 1)] = BEAD_PRICE[(1, _k)] = 5.0 + 2.0 * (_k - 2)


class LengthModel:
    """log(len(target) / len(source)) ~ Normal(mu, a + c / len(source)): the ratio of short
    verses is noisier. Fitted robustly (median, MAD) on the shorter and the longer half."""

    def __init__(self, pairs: list[tuple[int, int]]):
        pairs = sorted((s, t) for s, t in pairs if s and t)
        self.mu, self.a, self.c = 0.0, 0.04, 0.0
        if len(pairs) < 20:
            return
        ratios = [math.log(t / s) for s, t in pairs]
        self.mu = statistics.median(ratios)
        halves = [range(len(pairs) // 2), range(len(pairs) // 2, len(pairs))]
        spread = [(1.4826 * statistics.median(abs(ratios[i] - self.mu) for i in h)) ** 2 for h in halves]
        inverse = [statistics.fmean(1 / pairs[i][0] for i in h) for h in halves]
        if inverse[0] > inverse[1]:
            self.c = max((spread[0] - spread[1]) / (inverse[0] - inverse[1]), 0.0)
        self.a = max(spread[1] - self.c * inverse[1], 1e-4)

    def cost(self, source_chars: int, target_chars: int, mu: float | None = None) -> float:
        """A robust (Huber) negative log-likelihood of the pair's length ratio."""
        source_chars, target_chars = max(source_chars, 1), max(target_chars, 1)
        return _huber((math.log(target_chars / source_chars) - (self.mu if mu is None else mu))
                      / math.sqrt(self.a + self.c / source_chars))


def _huber(z: float) -> float:
    z = abs(z)
    return 0.5 * z * z if z <= 2 else 2 * z - 2  # linear tails: one odd verse cannot outweigh a chapter


def _realign(source: list[Verse], target: list[Verse], model: LengthModel,
             mu: float) -> tuple[float, list[tuple[list[Verse], list[Verse]]]]:
    """The cheapest sequence of beads covering both verse lists in order (dynamic
    programme), and its cost."""
    n, m = len(source), len(target)
    longest = max(max(a, b) for a, b in BEAD_PRICE)
    # Per start and run length: log of the characters (joined with spaces), and for the
    # source side the inverse standard deviation, so the inner loop does no log or sqrt.
    s_log, s_scale = [], []
    for i in range(n):
        chars = [len(v.text) + 1 for v in source[i:i + longest]]
        sums = [sum(chars[:a]) - 1 if a else 0 for a in range(len(chars) + 1)]
        s_log.append([math.log(max(c, 1)) for c in sums])
        s_scale.append([1 / math.sqrt(model.a + model.c / max(c, 1)) for c in sums])
    t_log = []
    for j in range(m):
        chars = [len(v.text) + 1 for v in target[j:j + longest]]
        t_log.append([math.log(max(sum(chars[:b]) - 1, 1)) if b else 0.0 for b in range(len(chars) + 1)])
    best = [[math.inf] * (m + 1) for _ in range(n + 1)]
    back: list[list[tuple[int, int] | None]] = [[None] * (m + 1) for _ in range(n + 1)]
    best[0][0] = 0.0
    band = BAND + abs(n - m)  # verse numbers drift apart by a few at most, so far-off cells are skipped
    shapes = sorted(BEAD_PRICE.items())
    for i in range(n + 1):
        for j in range(max(0, i - band), min(m, i + band) + 1):
            here = best[i][j]
            if here == math.inf:
                continue
            for (a, b), price in shapes:
                if i + a > n or j + b > m:
                    continue
                total = here + price
                if a and b:
                    total += _huber((t_log[j][b] - s_log[i][a] - mu) * s_scale[i][a])
                if total < best[i + a][j + b]:
                    best[i + a][j + b], back[i + a][j + b] = total, (a, b)
    beads = []
    i, j = n, m
    while i or j:
        a, b = back[i][j]  # type: ignore[misc]
        beads.append((source[i - a:i], target[j - b:j]))
        i, j = i - a, j - b
    return best[n][m], beads[::-1]


def _reference(verse: Verse) -> Reference:
    return (verse.book, verse.chapter, verse.verse)


def align_verses(source: list[Verse], target: list[Verse]) -> list[AlignedRow]:
    """Rows (book, chapter, verse, source text, target text) in canonical order: same
    reference where that fits, re-aligned by length where it does not (module docstring)."""
    sources, targets = {_reference(v): v for v in source}, {_reference(v): v for v in target}
    model = LengthModel([(len(v.text), len(targets[r].text)) for r, v in sources.items() if r in targets])
    chapters: dict[tuple[str, int], list[Reference]] = defaultdict(list)
    for reference in sorted(set(sources) | set(targets), key=_order(source, target)):
        chapters[reference[:2]].append(reference)
    order = list(chapters)
    suspect = set()
    for index, chapter in enumerate(order):
        refs = chapters[chapter]
        paired = [r for r in refs if r in sources and r in targets]
        mu = _local_mu(paired, sources, targets, model)
        costs = [model.cost(len(sources[r].text), len(targets[r].text), mu) for r in paired]
        runs = [sum(costs[i:i + SUSPECT_RUN]) for i in range(max(len(costs) - SUSPECT_RUN + 1, 1))]
        if len(paired) < len(refs) or max(runs, default=0.0) > SUSPECT_RUN_COST:
            # Verses moved across a chapter boundary leave the hole in one chapter and the
            # misfit in the next, so the neighbours (same book) are re-aligned with it.
            suspect |= {c for c in order[max(index - 1, 0):index + 2] if c[0] == chapter[0]}
    rows: list[AlignedRow] = []
    index = 0
    while index < len(order):
        window = [order[index]]
        index += 1
        while window[0] in suspect and index < len(order) and order[index] in suspect \
                and order[index][0] == window[0][0]:
            window.append(order[index])
            index += 1
        refs = [r for chapter in window for r in chapters[chapter]]
        rows += _align_window(refs, sources, targets, model) if window[0] in suspect else \
            [(*r, sources[r].text, targets[r].text) for r in refs if r in sources and r in targets]
    return rows


def _local_mu(paired: list[Reference], sources: dict, targets: dict, model: LengthModel) -> float:
    """The median log length ratio of a stretch (a genealogy's "which was the son of" is
    "que fué de": shorter than usual throughout, yet aligned), or the model's with few pairs."""
    if len(paired) < 8:
        return model.mu
    return statistics.median(math.log(len(targets[r].text) / len(sources[r].text)) for r in paired)


def _align_window(refs: list[Reference], sources: dict, targets: dict, model: LengthModel) -> list[AlignedRow]:
    """A stretch of suspect chapters: re-aligned if that is clearly cheaper, else by reference."""
    paired = [r for r in refs if r in sources and r in targets]
    mu = _local_mu(paired, sources, targets, model)
    by_reference = sum(model.cost(len(sources[r].text), len(targets[r].text), mu) for r in paired) \
        + BEAD_PRICE[(1, 0)] * (len(refs) - len(paired))  # the one-sided verses, left unpaired
    cost, beads = _realign([sources[r] for r in refs if r in sources], [targets[r] for r in refs if r in targets],
                           model, mu)
    if cost > by_reference - MIN_GAIN:
        return [(*r, sources[r].text, targets[r].text) for r in paired]
    return [(*_reference(s[0]), " ".join(v.text for v in s), " ".join(v.text for v in t)) for s, t in beads if s and t]


def _order(source: list[Verse], target: list[Verse]):
    """Sort key for references: books in the modules' order, then chapter and verse."""
    books: dict[str, int] = {}
    for verse in source + target:
        books.setdefault(verse.book, len(books))
    return lambda reference: (books[reference[0]], reference[1], reference[2])
