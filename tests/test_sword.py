"""The SWORD zText reader (`lstmlab.data.sword`) on modules built here with `write_ztext`:
slot layout (book and chapter markers, empty slots), OSIS stripping, damaged files, and
where `find_module` looks. Nothing here needs the downloaded modules."""

from __future__ import annotations

import re
import zlib

import pytest

from lstmlab.data.sword import BLOCK_RECORD, Verse, find_module, read_slots, read_ztext, strip_osis, write_ztext


def layout(books: dict[str, list[list[str]]]) -> list[str]:
    """Slots laid out as Debian's modules are: two headings, then per book an intro slot, per
    chapter an intro slot and its verses; each chapter's last verse holds the chapter's end
    marker, and each book's last verse the book's end marker (with its osisID, as there)."""
    slots = ["", '<milestone type="x-importer" subType="x-osis2mod"/>']
    for book, chapters in books.items():
        slots.append(f'<div canonical="true" osisID="{book}" sID="b{book}" type="book"/> '
                     f'<title level="1" type="main">The book of {book}</title>')
        for number, verses in enumerate(chapters, start=1):
            slots.append(f'<chapter n="{number}" osisID="{book}.{number}" sID="{book}.{number}"/> ')
            slots += verses
            slots[-1] += f' <chapter eID="{book}.{number}"/>'
        slots[-1] += f' <div canonical="true" eID="b{book}" osisID="{book}" type="book"/>'
    return slots


BOOKS = {
    "Gen": [[('In the <w lemma="strong:H7225">beginning</w>.<note placement="foot"><reference>1.1 </reference>'
              'beginning: Heb. first</note>'), "", "And &amp; light."],
            ['<title>A heading</title>Second <transChange type="added">chapter</transChange>.']],
    "Ps": [['<title canonical="true" type="psalm">A Psalm of David.</title> <l sID="x"/>LORD, hear me.']],
}


def module(tmp_path, books=BOOKS, testament_name="ot", per_block=3):
    return write_ztext(tmp_path / "mod", testament_name, layout(books), slots_per_block=per_block)


def test_reader_follows_the_markers_and_counts_empty_slots(tmp_path):
    folder = module(tmp_path)
    assert len(read_slots(folder, "ot")) == 2 + 1 + 1 + 3 + 1 + 1 + 1 + 1 + 1  # several blocks of 3 slots
    assert read_ztext(folder) == [
        Verse("Gen", 1, 1, "In the beginning."),  # the footnote is dropped
        Verse("Gen", 1, 3, "And & light."),  # Gen 1:2 is an empty slot: counted, not returned
        Verse("Gen", 2, 1, "Second chapter."),  # a heading's words are dropped
        Verse("Ps", 1, 1, "A Psalm of David. LORD, hear me."),  # a psalm's superscription is text
    ]


def test_the_last_verse_of_a_book_is_a_verse(tmp_path):
    # The book's *end* marker carries the book's osisID too; only start markers open a book.
    verses = read_ztext(module(tmp_path, {"Jude": [["Verse one.", "Verse two, the last."]]}))
    assert [(v.chapter, v.verse, v.text) for v in verses] == [(1, 1, "Verse one."), (1, 2, "Verse two, the last.")]


def test_both_testaments_in_order(tmp_path):
    folder = write_ztext(tmp_path / "mod", "nt", layout({"Matt": [["New."]]}))
    write_ztext(folder, "ot", layout({"Gen": [["Old."]]}))
    assert [(v.book, v.text) for v in read_ztext(folder)] == [("Gen", "Old."), ("Matt", "New.")]
    assert read_ztext(write_ztext(tmp_path / "nt-only", "nt", layout({"Rev": [["Amen."]]})))[0].book == "Rev"


def test_epistle_subscription_after_the_chapter_end_is_text(tmp_path):
    slots = layout({"Rom": [["Amen."]]})
    slots[-1] = slots[-1].replace("Amen.", "Amen. <chapter eID=\"Rom.1\"/> <title>Written from Corinthus.</title>", 1)
    folder = write_ztext(tmp_path / "mod", "nt", slots)
    assert read_ztext(folder)[0].text == "Amen. Written from Corinthus."
    assert read_ztext(folder, text_titles=False)[0].text == "Amen."


@pytest.mark.parametrize("markup,text", [
    ('<w lemma="a">And</w> <transChange type="added">it was</transChange> so.', "And it was so."),
    ('light.<note placement="foot"><reference type="annotateRef">1.4 </reference>Heb. <w>between</w></note> ',
     "light."),
    ('<title type="main">Heading</title> <w>Blessed</w>', "Blessed"),
    ('<title canonical="true" type="psalm">A Psalm.</title>Hear', "A Psalm. Hear"),
    ("Tom &amp; Jerry &lt;here&gt; &#233;", "Tom & Jerry <here> é"),
    # Tags inside words leave no space; one element ending where the next begins is two words.
    ('<w>shall more be give</w>n.', "shall more be given."),
    ('<w>hay allí</w><transChange type="added">también</transChange><w>bdelio</w>', "hay allí también bdelio"),
    ('preguntándo<transChange type="added">le</transChange>, ', "preguntándole,"),
    ('<w>Servid</w> <w lemma="strong:H3068">á Jehová</w>', "Servid á Jehová"),
    ("\u00b6 And God said,<lb type=\"x-p\"/>\n\tLet", "And God said, Let"),
    (r'my name \nd <w>JEHOVAH</w></divineName>; the LORD\+nd*, and', "my name JEHOVAH; the LORD, and"),
    ('<milestone type="x-p"/> <div sID="a" type="x-p"/>', ""),
])
def test_strip_osis(markup, text):
    assert strip_osis(markup) == text


def test_strip_osis_can_drop_every_title():
    assert strip_osis('<title canonical="true">A Psalm.</title>Hear', text_titles=False) == "Hear"


def test_damaged_files_are_named(tmp_path):
    folder = module(tmp_path)
    (folder / "ot.bzv").write_bytes((folder / "ot.bzv").read_bytes()[:-3])
    with pytest.raises(ValueError, match=r"ot\.bzv: truncated .*not a multiple of the 10-byte record"):
        read_ztext(folder)
    folder = module(tmp_path / "2")
    (folder / "ot.bzs").write_bytes((folder / "ot.bzs").read_bytes() + b"\0")
    with pytest.raises(ValueError, match=r"ot\.bzs: truncated .*12-byte"):
        read_ztext(folder)
    folder = module(tmp_path / "3")
    (folder / "ot.bzz").write_bytes((folder / "ot.bzz").read_bytes()[:-20])
    with pytest.raises(ValueError, match=r"ot\.bzz: block \d+ ends at byte \d+, past the end"):
        read_ztext(folder)
    folder = module(tmp_path / "4")
    data = bytearray((folder / "ot.bzz").read_bytes())
    data[2:6] = b"\xff\xff\xff\xff"  # inside the first zlib stream
    (folder / "ot.bzz").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"ot\.bzz: block 0 does not decompress"):
        read_ztext(folder)


def test_missing_files_are_named(tmp_path):
    for ext in ("bzs", "bzz", "bzv"):
        folder = module(tmp_path / ext)
        (folder / f"ot.{ext}").unlink()
        with pytest.raises(FileNotFoundError, match=rf"ot\.{ext}: missing"):
            read_ztext(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a SWORD zText module.*make bible"):
        read_ztext(tmp_path / "empty")


def test_bad_text_and_layout_are_errors(tmp_path):
    folder = tmp_path / "latin1"
    folder.mkdir()
    raw = "Señor".encode("latin-1")
    packed = zlib.compress(raw)
    (folder / "nt.bzs").write_bytes(BLOCK_RECORD.pack(0, len(packed), len(raw)))
    (folder / "nt.bzv").write_bytes(bytes(20) + b"\0\0\0\0\0\0\0\0" + len(raw).to_bytes(2, "little"))
    (folder / "nt.bzz").write_bytes(packed)
    with pytest.raises(ValueError, match=r"nt\.bzz: slot 2 \(block 0\) is not UTF-8"):
        read_ztext(folder)
    no_chapter = write_ztext(tmp_path / "flat", "nt", ["", "", "A verse with no chapter."])
    with pytest.raises(ValueError, match=r"nt\.bzv: slot 2 has text but no chapter marker"):
        read_ztext(no_chapter)


def install(root, name, conf=True, data_path=None):
    """A module under a SWORD root, as Debian lays it out (names in the module's own case)."""
    folder = root / (data_path or f"modules/texts/ztext/{name}")
    write_ztext(folder, "nt", layout({"John": [[f"From {root.name}."]]}))
    if conf:
        (root / "mods.d").mkdir(parents=True, exist_ok=True)
        (root / "mods.d" / f"{name}.conf").write_text(
            f"[{name}]\nDataPath=./{data_path or f'modules/texts/ztext/{name}'}/\nModDrv=zText\n", encoding="utf-8")
    return folder


def test_find_module_searches_the_roots_in_order(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    install(second, "engKJV2006eb")
    assert find_module("engKJV2006eb", roots=[first, second]) == second / "./modules/texts/ztext/engKJV2006eb/"
    install(first, "engKJV2006eb", conf=False)  # no conf: the conventional folder, found in any case
    assert find_module("ENGkjv2006EB", roots=[first, second]) == first / "modules/texts/ztext/engKJV2006eb"
    monkeypatch.setenv("LSTMLAB_SWORD_PATH", str(second))
    assert read_ztext(find_module("engKJV2006eb"))[0].text == "From second."  # the variable comes first


def test_find_module_honours_data_path(tmp_path):
    install(tmp_path, "spaRV1909eb", data_path="elsewhere/rv")
    assert read_ztext(find_module("sparv1909eb", roots=[tmp_path]))[0].text == f"From {tmp_path.name}."
    (tmp_path / "mods.d" / "spaRV1909eb.conf").write_text("[spaRV1909eb]\nModDrv=RawCom\n", encoding="utf-8")
    with pytest.raises(ValueError, match="RawCom driver; only zText"):
        find_module("spaRV1909eb", roots=[tmp_path])


def test_a_missing_module_says_where_it_looked_and_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as caught:
        find_module("noSuchModule", roots=[tmp_path / "a", tmp_path / "b"])
    message = str(caught.value)
    assert "\n" not in message
    assert re.search(rf"noSuchModule not found \(searched {re.escape(str(tmp_path / 'a'))}, .*b\)", message)
    assert "make bible" in message and "apt-get install sword-text-kjv sword-text-sparv" in message
