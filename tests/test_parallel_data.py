"""The translation recipe's parallel text (`lstmlab.data.parallel`): the Bible verse pairs
from a constructed module pair (book split, cache), the Reina-Valera clean-up, the length
re-alignment, the user's files with one-line errors, and the seeded split. One test reads
the downloaded modules and is skipped when they are not installed."""

from __future__ import annotations

import re

import pytest

from lstmlab.data import parallel
from lstmlab.data.alignment import align_verses
from lstmlab.data.parallel import bible_pairs, bible_splits, load_parallel_splits, read_parallel, user_splits
from lstmlab.data.reina_valera import restore_typography
from lstmlab.data.sword import Verse, find_module, write_ztext

ENGLISH = {"Gen": [["In the beginning.", "And the earth was void."], ["Thus the heavens were finished."]],
           "Mark": [["The beginning of the gospel."]], "Luke": [["Forasmuch as many have taken in hand."]],
           "Acts": [["The former treatise have I made.", "Until the day in which he was taken up."]],
           "John": [["In the beginning was the Word, and the Word was with God."]]}
SPANISH = {"Gen": [["EN el principio.", "Y la tierra estaba desordenada."], ["Y FUERON acabados los cielos."]],
           "Mark": [["Principio del evangelio."]], "Luke": [["Habiendo muchos tentado á poner en orden."]],
           "Acts": [["En el primer tratado, oh Teófilo.", ""]],
           "John": [["En el principio era el Verbo, y el Verbo era con Dios."]]}


def layout(books: dict[str, list[list[str]]]) -> list[str]:
    """One testament's slots: headings, then per book an intro slot, per chapter an intro slot and its verses."""
    slots = ["", "<milestone/>"]
    for book, chapters in books.items():
        slots.append(f'<div osisID="{book}" sID="b" type="book"/>')
        for number, verses in enumerate(chapters, start=1):
            slots += [f'<chapter osisID="{book}.{number}" sID="{book}.{number}"/>', *verses]
    return slots


def install(root, spanish=SPANISH):
    for name, books in (("engKJV2006eb", ENGLISH), ("spaRV1909eb", spanish)):
        write_ztext(root / "modules" / "texts" / "ztext" / name, "nt", layout(books), slots_per_block=3)


@pytest.fixture
def bible(tmp_path, monkeypatch):
    """A constructed module pair where the real ones are looked for first, and an empty cache."""
    install(tmp_path / "sword")
    monkeypatch.setenv("LSTMLAB_SWORD_PATH", str(tmp_path / "sword"))
    monkeypatch.setenv("LSTMLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_bible_split_holds_out_whole_books(bible):
    splits = bible_splits()
    assert splits.test == [("Forasmuch as many have taken in hand.", "Habiendo muchos tentado á poner en orden."),
                           ("The former treatise have I made.", "En el primer tratado, oh Teófilo.")]
    assert splits.validation == [("The beginning of the gospel.", "Principio del evangelio.")]
    assert splits.train == [("In the beginning.", "En el principio."),  # the chapter opening's capitals undone
                            ("And the earth was void.", "Y la tierra estaba desordenada."),
                            ("Thus the heavens were finished.", "Y fueron acabados los cielos."),
                            ("In the beginning was the Word, and the Word was with God.",
                             "En el principio era el Verbo, y el Verbo era con Dios.")]
    held_out = {row[3] for row in bible_pairs() if row[0] in ("Mark", "Luke", "Acts")}
    assert not held_out & {english for english, _ in splits.train}  # Acts 1:2 has no Spanish: no pair
    assert "Luke" in splits.description and "Mark" in splits.description


def test_max_words_filters_training_only(bible):
    splits = bible_splits(max_words=4)
    assert splits.train == [("In the beginning.", "En el principio.")]
    assert len(splits.test) == 2 and len(splits.validation) == 1
    assert load_parallel_splits(None, max_words=4).train == splits.train
    with pytest.raises(ValueError, match="max_words"):
        bible_splits(max_words=-1)


def test_pairs_are_cached_and_reread_when_a_module_changes(bible):
    first = bible_pairs()
    cache_dir = bible / "cache" / "translation"
    (cached,) = cache_dir.iterdir()  # one file, no temporary left behind
    assert cached.name.startswith("kjv-rv1909-") and cached.read_text(encoding="utf-8").count("\n") == len(first)
    cached.write_text("Gen\t1\t1\tfrom the cache\tde la caché\n", encoding="utf-8")
    assert bible_pairs() == [("Gen", 1, 1, "from the cache", "de la caché")]
    cached.write_text("not\ta cache\n", encoding="utf-8")
    assert bible_pairs() == first  # an unreadable cache is rebuilt
    changed = {**SPANISH, "John": [["En el principio era la Palabra."]]}
    install(bible / "sword", changed)
    assert bible_pairs()[-1][4] == "En el principio era la Palabra."
    assert len(list(cache_dir.iterdir())) == 1  # the stale cache is gone


def test_missing_modules_point_to_make_bible(tmp_path, monkeypatch):
    monkeypatch.setattr(parallel, "find_module", lambda name: find_module(name, roots=[tmp_path]))
    with pytest.raises(FileNotFoundError, match="make bible"):
        bible_splits()


def test_reina_valera_openings_and_psalm_119_letters():
    verses = [Verse("Gen", 24, 1, "Y ABRAHAM era viejo."), Verse("Gen", 24, 2, "Y dijo Abraham á su criado."),
              Verse("Ps", 3, 1, "Salmo de David. ¡OH Jehová, cuánto!"), Verse("Ps", 3, 2, "Oh Jehová, sálvame."),
              Verse("Ps", 119, 9, "BETH ¿Con qué limpiará el joven su camino?"),
              Verse("Exod", 28, 1, "Y TÚ allega á ti á Aarón."),
              Verse("Exod", 28, 36, "Y grabarás: SANTIDAD Á JEHOVÁ.")]
    assert [v.text for v in restore_typography(verses)] == [
        "Y Abraham era viejo.", "Y dijo Abraham á su criado.", "Salmo de David. ¡Oh Jehová, cuánto!",
        "Oh Jehová, sálvame.", "¿Con qué limpiará el joven su camino?", "Y tú allega á ti á Aarón.",
        "Y grabarás: SANTIDAD Á JEHOVÁ."]  # capitals inside a chapter are the text's own


def text(label: str, chars: int) -> str:
    return (label + " " + "abc " * chars)[:chars]


def test_alignment_follows_verses_moved_across_a_chapter():
    # The target numbers its second chapter one verse earlier, as the Reina-Valera's Jonah 2
    # does: its 1:6 slot is empty, its 2:1 holds the source's 1:6 and its 2:6 the source's 2:5-6.
    lengths = {1: [60, 180, 40, 220, 90, 150], 2: [120, 35, 200, 70, 160, 50], 3: [80, 130, 45, 190, 100, 65]}
    source = [Verse("Jonah", c, v, text(f"en{c}:{v}", n)) for c, ns in lengths.items() for v, n in enumerate(ns, 1)]
    moved = {(1, 6): None, (2, 1): [(1, 6)], **{(2, v): [(2, v - 1)] for v in range(2, 6)}, (2, 6): [(2, 5), (2, 6)]}
    target = []
    for c, ns in lengths.items():
        for v in range(1, len(ns) + 1):
            parts = moved.get((c, v), [(c, v)])
            if parts:
                chars = sum(lengths[pc][pv - 1] for pc, pv in parts) + len(parts) - 1
                target.append(Verse("Jonah", c, v, text(f"es{c}:{v}", chars)))
    rows = align_verses(source, target)
    labels = [(r[1], r[2], [w for w in r[3].split() if w.startswith("en")], r[4].split()[0]) for r in rows]
    assert labels[4:11] == [(1, 5, ["en1:5"], "es1:5"), (1, 6, ["en1:6"], "es2:1"), (2, 1, ["en2:1"], "es2:2"),
                            (2, 2, ["en2:2"], "es2:3"), (2, 3, ["en2:3"], "es2:4"), (2, 4, ["en2:4"], "es2:5"),
                            (2, 5, ["en2:5", "en2:6"], "es2:6")]
    assert all(r[1:3] == (3, v) and r[3].startswith(f"en3:{v}") for v, r in enumerate(rows[11:], start=1))


def test_alignment_keeps_aligned_text_with_unusual_lengths():
    # Chapter 3 is a genealogy: its target is 0.6 of its source's usual length throughout
    # ("which was the son of" is "que fué de"), yet it is aligned and must stay so.
    lengths = [60, 180, 40, 220, 90, 150, 120, 35, 200, 70, 110, 85, 160, 45, 130, 95]
    source = [Verse("Luke", c, v, text(f"en{c}:{v}", n)) for c in (1, 2, 3, 4) for v, n in enumerate(lengths, 1)]
    target = [Verse("Luke", c, v, text(f"es{c}:{v}", int(n * (0.6 if c == 3 else 1 + 0.1 * (v % 3 - 1)))))
              for c in (1, 2, 3, 4) for v, n in enumerate(lengths, 1)]
    assert [(r[1], r[2], r[4].split()[0]) for r in align_verses(source, target)] == \
        [(c, v, f"es{c}:{v}") for c in (1, 2, 3, 4) for v in range(1, 17)]


@pytest.mark.parametrize("content,message", [
    (b"one\tuno\ntwo dos\n", "pairs.tsv: line 2: expected source<TAB>target (2 fields), found 1 field"),
    (b"one\tuno\tun\n", "pairs.tsv: line 1: expected source<TAB>target (2 fields), found 3 fields"),
    (b"one\tuno\n\ntwo\tdos\n", "pairs.tsv: line 2: expected source<TAB>target (2 fields), found 1 field (a blank"),
    (b"one\tuno\ntwo\t \n", "pairs.tsv: line 2: the target side is empty"),
    (b"\tuno\n", "pairs.tsv: line 1: the source side is empty"),
    (b"one\tuno\ntwo\tdos\nthr\xe9e\ttres\n", "pairs.tsv: line 3: not UTF-8 (byte 19 of the file"),
    (b"", "pairs.tsv: empty file"),
    (b"\n \r\n", "pairs.tsv: empty file"),
])
def test_read_parallel_errors_name_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "pairs.tsv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        read_parallel(path)
    assert "\n" not in str(caught.value)


def test_read_parallel_tsv_and_aligned_files(tmp_path):
    tsv = tmp_path / "pairs.tsv"
    tsv.write_bytes("\ufeffone\t uno \r\ntwo\tdos\r\n\r\n\n".encode())  # BOM, CRLF, blank lines at the end
    assert read_parallel(tsv) == [("one", "uno"), ("two", "dos")]
    source, target = tmp_path / "a.en", tmp_path / "a.es"
    source.write_text("\ufeffone\r\ntwo\n\n", encoding="utf-8")
    target.write_text("uno\ndos\n", encoding="utf-8")
    assert read_parallel(source=source, target=target) == [("one", "uno"), ("two", "dos")]
    target.write_text("uno\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"--source .*a\.en has 2 lines but --target .*a\.es has 1"):
        read_parallel(source=source, target=target)
    target.write_text("uno\n\n \ndos\n", encoding="utf-8")
    source.write_text("1\n2\n3\n4\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"a\.es: line 2: empty line"):
        read_parallel(source=source, target=target)
    target.write_bytes(b"uno\nd\xffs\n3\n4\n")
    with pytest.raises(ValueError, match=r"a\.es: line 2: not UTF-8"):
        read_parallel(source=source, target=target)
    with pytest.raises(FileNotFoundError, match="nothing.tsv"):
        read_parallel(tmp_path / "nothing.tsv")
    with pytest.raises(ValueError, match="not both"):
        read_parallel(tsv, source=source, target=target)
    with pytest.raises(ValueError, match="both source= and target="):
        read_parallel(source=source)


def test_user_splits_are_seeded_disjoint_and_ordered():
    pairs = [(f"s{i}", f"t{i}") for i in range(100)]
    first = user_splits(pairs, seed=3)
    assert first == user_splits(list(pairs), seed=3)
    assert (len(first.train), len(first.validation), len(first.test)) == (90, 5, 5)
    assert sorted(first.train + first.validation + first.test) == sorted(pairs)
    assert all(pairs.index(a) < pairs.index(b) for a, b in zip(first.train, first.train[1:]))  # the file's order
    assert user_splits(pairs, seed=4).test != first.test
    three = user_splits(pairs[:3])
    assert (len(three.train), len(three.validation), len(three.test)) == (1, 1, 1)
    with pytest.raises(ValueError, match="at least 3 sentence pairs.*got 2"):
        user_splits(pairs[:2])
    with pytest.raises(ValueError, match="held_out"):
        user_splits(pairs, held_out=0.6)


def test_load_parallel_splits_of_a_tsv(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"word {i}{' more' * (i % 3)}\tpalabra {i}\n" for i in range(40)), encoding="utf-8")
    splits = load_parallel_splits(str(path), max_words=2, seed=1)
    assert splits.description.startswith(f"{path}: the user's parallel text (40 pairs")
    assert splits.train and all(len(s.split()) <= 2 for s, _ in splits.train)
    assert len(splits.validation) == len(splits.test) == 2
    assert any(len(s.split()) > 2 for s, _ in splits.validation + splits.test)  # held-out pairs stay whole


def test_the_downloaded_bible():
    try:
        find_module(parallel.ENGLISH_MODULE), find_module(parallel.SPANISH_MODULE)
    except FileNotFoundError:
        pytest.skip("the SWORD modules are not installed (run `make bible`)")
    rows = bible_pairs()  # the user's cache: about 0.1 s once built, a few seconds the first time
    assert 30_900 < len(rows) < 31_200
    assert len({row[0] for row in rows}) == 66
    assert rows[0] == ("Gen", 1, 1, "In the beginning God created the heaven and the earth.",
                       "En el principio crió Dios los cielos y la tierra.")
    splits = bible_splits()
    assert splits.test == [(e, s) for b, _, _, e, s in rows if b in ("Luke", "Acts")]
    assert splits.validation == [(e, s) for b, _, _, e, s in rows if b == "Mark"]
    assert len(splits.train) == sum(b not in ("Luke", "Acts", "Mark") for b, *_ in rows)
    assert not any(re.search(r"[<>\\¶]|\s{2}", e + s) for *_, e, s in rows)
    by_reference = {row[:3]: row[3:] for row in rows}
    assert by_reference[("Ps", 3, 1)][0].startswith("A Psalm of David, when he fled from Absalom his son. LORD,")
    assert by_reference[("Ps", 3, 1)][1].startswith("Salmo de David, cuando huía de delante de Absalom su hijo. ¡Oh")
    assert by_reference[("Job", 38, 39)][1].startswith("¿Cazarás tú la presa para el león?")  # re-aligned
    assert by_reference[("Acts", 19, 40)][0].endswith("he dismissed the assembly.")  # 19:40-41 joined
