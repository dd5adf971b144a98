"""Unseen English for the translation model: the World English Bible's Luke and Acts paired
with the Reina-Valera test verses (same book, chapter, verse), as a TSV for
`lstmlab evaluate RUN --data FILE`. The WEB is another English rendering the model never saw.

    apt-get download sword-text-web && dpkg -x sword-text-web_*.deb web
    .venv/bin/python benchmarks/translation_web_pairs.py web/usr/share/sword/modules/texts/ztext/engWEB2015eb web-luke-acts.tsv
"""

from __future__ import annotations

import sys

from lstmlab.data.parallel import BIBLE_TEST_BOOKS, bible_pairs, clean_verse
from lstmlab.data.sword import read_ztext


def main(module: str, out: str) -> None:
    web = {(v.book, v.chapter, v.verse): clean_verse(v.text) for v in read_ztext(module)}
    rows = [(web[(b, c, v)], spanish) for b, c, v, _, spanish in bible_pairs()
            if b in BIBLE_TEST_BOOKS and web.get((b, c, v))]
    with open(out, "w", encoding="utf-8") as handle:
        handle.writelines(f"{english}\t{spanish}\n" for english, spanish in rows)
    print(f"{out}: {len(rows)} pairs (World English Bible -> Reina-Valera 1909, {' + '.join(BIBLE_TEST_BOOKS)})")


if __name__ == "__main__":
    main(*sys.argv[1:3])
