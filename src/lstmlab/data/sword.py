"""A reader for SWORD ``zText`` Bible modules (Debian's sword-text-* packages), OSIS stripped.

A zText module keeps each testament ("ot", "nt") in three files:

- ``<t>.bzs``: one 12-byte record per compressed block: offset into ``.bzz``, compressed
  size, uncompressed size (little-endian uint32);
- ``<t>.bzv``: one 10-byte record per verse slot: block number, offset in the
  uncompressed block (uint32), size (uint16; 0 = an empty slot);
- ``<t>.bzz``: the blocks, each a zlib stream.

Slots follow the versification: slot 0 (testament heading) and 1 (module heading), then
per book an intro slot (``<div osisID="Gen" sID=".." type="book"/>``), then per chapter an
intro slot (``<chapter osisID="Gen.1" sID="Gen.1"/>``) followed by one slot per verse. The
book and chapter come from those start markers, so no versification table is needed; a
verse's number is its position after its chapter's intro slot (empty slots count too).
The *end* markers (``<chapter eID=../>``, ``<div eID=".." osisID="Gen" type="book"/>``) sit
inside the last verse of a chapter or book, so only start markers (no ``eID``) make an
intro slot.

    verses = read_ztext(find_module("engKJV2006eb"))   # [Verse("Gen", 1, 1, "In the beginning ..."), ...]
"""

from __future__ import annotations

import html
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

BLOCK_RECORD = struct.Struct("<III")  # .bzs: offset, compressed size, uncompressed size
SLOT_RECORD = struct.Struct("<IIH")  # .bzv: block, offset, size
TESTAMENTS = ("ot", "nt")
GET_IT = ("run `make bible` (downloads Debian's sword-text-kjv and sword-text-sparv) "
          "or `apt-get install sword-text-kjv sword-text-sparv`")

_MARKER = re.compile(r"<(div|chapter)\b([^>]*)>")
_ATTRIBUTE = re.compile(r'([\w:-]+)="([^"]*)"')
_NOTE = re.compile(r"<note\b[^>]*?(?<!/)>.*?</note>", re.DOTALL)  # notes do not nest in OSIS
_TITLE = re.compile(r"<title\b([^>]*?)(?<!/)>(.*?)</title>", re.DOTALL)
_CHAPTER_END = re.compile(r"<chapter\b[^>]*\beID=")
_BETWEEN_ELEMENTS = re.compile(r"(</[^>]*>)(?=<[^/!?])")  # a closing tag directly before an opening one
_TAG = re.compile(r"<[^>]*>")
_USFM = re.compile(r"\\\+?[a-z]+\d*\*?")  # converter leftovers in the KJV: "\nd JEHOVAH", "LORD\+nd*"


@dataclass(frozen=True)
class Verse:
    """One verse with text: OSIS book id ("Gen", "Matt", "Luke", ...), chapter, verse, plain text."""

    book: str
    chapter: int
    verse: int
    text: str


def strip_osis(markup: str, *, text_titles: bool = True) -> str:
    """OSIS markup -> plain text.

    Footnotes (``<note>``) and headings (``<title>``) are dropped with their content; the
    text of every other element (``<w>``, ``<transChange>``, ``<divineName>``, ...) is kept,
    entities are decoded, the KJV's paragraph sign (¶) and stray USFM markers (``\\nd``)
    are dropped and whitespace collapsed.
    Two kinds of title are part of the text rather than headings, and their words are kept
    unless `text_titles` is False: one marked ``canonical="true"`` (a psalm's
    superscription, "A Psalm of David."), and one after the chapter's end marker (an
    epistle's subscription, "Written to the Romans from Corinthus, ..."). The Reina-Valera
    module has both as plain text of the verse.
    """
    text = _NOTE.sub("", markup)
    text = _TITLE.sub(lambda m: f" {m.group(2)} " if text_titles and _text_title(m) else " ", text)
    # Tags sit inside words as well as between them: the KJV has "give</w>n", the
    # Reina-Valera "hay allí</w><transChange>también</transChange><w>bdelio". A tag is
    # therefore removed without a trace, except where one element ends right where the
    # next begins: those are two words.
    text = _TAG.sub("", _BETWEEN_ELEMENTS.sub(r"\1 ", text))
    text = _USFM.sub("", html.unescape(text)).replace("\u00b6", " ")
    return " ".join(text.split())


def _text_title(title: re.Match[str]) -> bool:
    return 'canonical="true"' in title.group(1) or bool(_CHAPTER_END.search(title.string, 0, title.start()))


def _records(path: Path, record: struct.Struct) -> list[tuple[int, ...]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (a zText testament needs its .bzs, .bzv and .bzz files)")
    data = path.read_bytes()
    if len(data) % record.size:
        raise ValueError(f"{path}: truncated or not a zText index ({len(data)} bytes is not a multiple "
                         f"of the {record.size}-byte record)")
    return list(record.iter_unpack(data))


def read_slots(folder: str | Path, testament: str) -> list[str]:
    """The raw OSIS markup of every slot of one testament ("ot" or "nt"), in slot order."""
    folder = Path(folder)
    bzs, bzv, bzz = (folder / f"{testament}.{ext}" for ext in ("bzs", "bzv", "bzz"))
    blocks, slots = _records(bzs, BLOCK_RECORD), _records(bzv, SLOT_RECORD)
    if not bzz.is_file():
        raise FileNotFoundError(f"{bzz}: missing (a zText testament needs its .bzs, .bzv and .bzz files)")
    compressed = bzz.read_bytes()
    decompressed: dict[int, bytes] = {}
    texts = []
    for number, (block, offset, size) in enumerate(slots):
        if size == 0:
            texts.append("")
            continue
        if block >= len(blocks):
            raise ValueError(f"{bzv}: slot {number} names block {block}, but {bzs} lists {len(blocks)} blocks")
        if block not in decompressed:
            start, length, expected = blocks[block]
            if start + length > len(compressed):
                raise ValueError(f"{bzz}: block {block} ends at byte {start + length}, past the end of the file "
                                 f"({len(compressed)} bytes; truncated?)")
            try:
                data = zlib.decompress(compressed[start:start + length])
            except zlib.error as error:
                raise ValueError(f"{bzz}: block {block} does not decompress ({error})") from None
            if len(data) != expected:
                raise ValueError(f"{bzz}: block {block} decompresses to {len(data)} bytes, {bzs} says {expected}")
            decompressed[block] = data
        data = decompressed[block]
        if offset + size > len(data):
            raise ValueError(f"{bzv}: slot {number} ends at byte {offset + size} of block {block}, "
                             f"which has {len(data)} bytes")
        try:
            texts.append(data[offset:offset + size].decode("utf-8"))
        except UnicodeDecodeError as error:
            raise ValueError(f"{bzz}: slot {number} (block {block}) is not UTF-8 ({error.reason} at byte "
                             f"{offset + error.start} of the block)") from None
    return texts


def _start_markers(markup: str) -> tuple[str | None, tuple[str, int] | None]:
    """The book and (book, chapter) that an intro slot starts, from its start markers."""
    book = chapter = None
    for name, attributes in _MARKER.findall(markup):
        found = dict(_ATTRIBUTE.findall(attributes))
        osis_id = found.get("osisID")
        if "eID" in found or not osis_id:
            continue  # an end marker, or a div that is no book (paragraphs, milestones)
        if name == "div" and found.get("type") == "book":
            book = osis_id
        elif name == "chapter" and "." in osis_id and osis_id.rsplit(".", 1)[1].isdigit():
            chapter = (osis_id.rsplit(".", 1)[0], int(osis_id.rsplit(".", 1)[1]))
    return book, chapter


def read_ztext(module_dir: str | Path, *, text_titles: bool = True) -> list[Verse]:
    """Every verse with text of a zText module (old and new testament, whichever exist),
    in canonical order, markup stripped by `strip_osis`."""
    folder = Path(module_dir)
    testaments = [t for t in TESTAMENTS if any((folder / f"{t}.{ext}").exists() for ext in ("bzs", "bzv", "bzz"))]
    if not testaments:
        raise FileNotFoundError(f"{folder}: no ot.bzv or nt.bzv here, so not a SWORD zText module; {GET_IT}")
    verses: list[Verse] = []
    for testament in testaments:
        book: str | None = None
        chapter = verse = 0
        for number, markup in enumerate(read_slots(folder, testament)):
            if number < 2:
                continue  # the testament's and the module's headings
            new_book, new_chapter = _start_markers(markup)
            if new_book or new_chapter:
                book, chapter, verse = new_book or book, 0, 0
                if new_chapter:
                    book, chapter = new_chapter
                continue
            verse += 1
            text = strip_osis(markup, text_titles=text_titles)
            if not text:
                continue
            if book is None or chapter == 0:
                # Text before any chapter marker: the slot layout is not the one described above.
                raise ValueError(f"{folder / (testament + '.bzv')}: slot {number} has text but no chapter "
                                 f"marker precedes it ({text[:40]!r}); not a book-and-chapter zText layout")
            verses.append(Verse(book, chapter, verse, text))
    return verses


def search_roots() -> list[Path]:
    """Where modules are looked for, in order: each folder of ``$LSTMLAB_SWORD_PATH``
    (os.pathsep-separated), ``~/.cache/lstmlab/sword`` (where `make bible` puts them),
    ``/usr/share/sword`` (where apt installs them)."""
    roots = [Path(p).expanduser() for p in os.environ.get("LSTMLAB_SWORD_PATH", "").split(os.pathsep) if p]
    return roots + [Path.home() / ".cache" / "lstmlab" / "sword", Path("/usr/share/sword")]


def _named(folder: Path, name: str, suffix: str = "") -> list[Path]:
    """Entries of `folder` called `name` + `suffix`, in any letter case (Debian spells the
    confs and folders as the module, "engKJV2006eb.conf"; other installers lower-case them)."""
    if not folder.is_dir():
        return []
    wanted = (name + suffix).lower()
    return sorted(p for p in folder.iterdir() if p.name.lower() == wanted)


def find_module(name: str, roots: list[Path] | list[str] | None = None) -> Path:
    """The data folder of module `name` (e.g. "engKJV2006eb") under the first root that has
    it: the DataPath of its conf in ``mods.d/`` when there is one, else
    ``modules/texts/ztext/<name>/`` (any letter case). Raises FileNotFoundError saying where
    it looked and how to get the modules, ValueError when the conf names another driver."""
    roots = search_roots() if roots is None else [Path(r) for r in roots]
    for root in roots:
        candidates = []
        for conf in _named(root / "mods.d", name, ".conf"):
            text = conf.read_text(encoding="utf-8", errors="replace")
            driver = re.search(r"^ModDrv=\s*(\S+)", text, re.MULTILINE)
            if driver and driver.group(1).lower() != "ztext":
                raise ValueError(f"{conf}: module {name} uses the {driver.group(1)} driver; "
                                 "only zText modules can be read")
            data_path = re.search(r"^DataPath=\s*(.+?)\s*$", text, re.MULTILINE)
            if data_path:
                candidates.append(root / data_path.group(1))
        candidates += _named(root / "modules" / "texts" / "ztext", name)
        for folder in candidates:
            if any((folder / f"{t}.bzv").is_file() for t in TESTAMENTS):
                return folder
    searched = ", ".join(str(r) for r in roots)
    raise FileNotFoundError(f"SWORD module {name} not found (searched {searched}); {GET_IT}")


def write_ztext(module_dir: str | Path, testament: str, slots: list[str], slots_per_block: int = 4) -> Path:
    """Write one testament of a zText module from the markup of its slots ("" = an empty
    slot), `slots_per_block` slots to a block; for tests and examples. Returns the folder."""
    folder = Path(module_dir)
    folder.mkdir(parents=True, exist_ok=True)
    index, block_records, compressed = bytearray(), bytearray(), bytearray()
    for first in range(0, len(slots), slots_per_block):
        raw = bytearray()
        for markup in slots[first:first + slots_per_block]:
            data = markup.encode("utf-8")
            index += SLOT_RECORD.pack(first // slots_per_block, len(raw) if data else 0, len(data))
            raw += data
        packed = zlib.compress(bytes(raw))
        block_records += BLOCK_RECORD.pack(len(compressed), len(packed), len(raw))
        compressed += packed
    for ext, data in (("bzs", block_records), ("bzv", index), ("bzz", compressed)):
        (folder / f"{testament}.{ext}").write_bytes(bytes(data))
    return folder
