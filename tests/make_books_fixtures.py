"""Writes tests/fixtures/books/: small Project Gutenberg files in the three eras of boilerplate and two encodings.

Run from the repository root: ``.venv/bin/python tests/make_books_fixtures.py``.  The prose is written for the
fixtures; the header/footer layouts copy real PG files (2004-2008 ``THIS PROJECT`` form, 2010s ``THE PROJECT`` form,
1990s ``*END*THE SMALL PRINT`` form).
"""

from __future__ import annotations

import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "books")

STORY = """CHAPTER I.

THE MILL ON THE RIVER.

The mill stood where the river bent twice before running down to the sea, and
the miller, a broad and patient man named Anselm Dury, had kept it for thirty
years without once letting the great wheel stand idle through a harvest. His
daughter Léonie kept the accounts in a brown book with a brass clasp, and it
was she who first noticed that the grain brought by the farmers of the upper
valley weighed a little less each week than the farmers swore it should.

"It is the damp," said her father, who believed the best of everyone.

"It is not the damp," said Léonie, and she said nothing more that evening, but
she sat up late by the lamp with the brown book open before her, turning the
pages back through the summer until the candle guttered and went out.

CHAPTER II.

THE WEIGHING.

On the morning of the fair the carts came down from the hills before dawn, and
the yard was full of horses stamping in the cold. Léonie stood by the scale with
her book, and as each sack was lifted she wrote its weight and the name of the
man who brought it, and she looked at every farmer in the face as she wrote.
By noon she had found what she was looking for: the sacks were honest, but the
weights of the scale had been filed, each one a little, so that the mill paid
for less than it received and the difference went somewhere that was not the
miller's purse.

"Who keeps the key of the weights?" she asked the foreman.

The foreman did not answer, and that was answer enough. Anselm Dury sent him
away that same afternoon, paid every farmer of the upper valley what he had
been cheated of since midsummer, and bought a new set of weights from the town,
stamped by the inspector, which are kept in the mill to this day.

THE END.
"""

LICENSE_FOOTER = """*** START: FULL LICENSE ***

THE FULL PROJECT GUTENBERG LICENSE
PLEASE READ THIS BEFORE YOU DISTRIBUTE OR USE THIS WORK

To protect the Project Gutenberg-tm mission of promoting the free
distribution of electronic works, by using or distributing this work
(or any other work associated in any way with the phrase "Project
Gutenberg"), you agree to comply with all the terms of the Full Project
Gutenberg-tm License (available with this file or online at
http://gutenberg.org/license).
"""


def modern(story: str, number: int, title: str, author: str, extra_front: str = "") -> str:
    return f"""The Project Gutenberg EBook of {title}, by {author}

This eBook is for the use of anyone anywhere at no cost and with
almost no restrictions whatsoever.  You may copy it, give it away or
re-use it under the terms of the Project Gutenberg License included
with this eBook or online at www.gutenberg.org


Title: {title}
       A Tale of the River Country

Author: {author}

Release Date: March 3, 2009 [EBook #{number}]

Language: English

Character set encoding: UTF-8

*** START OF THIS PROJECT GUTENBERG EBOOK {title.upper()} ***




Produced by Anna Vale and the Online Distributed
Proofreading Team at http://www.pgdp.net

{extra_front}
{story}



End of the Project Gutenberg EBook of {title}, by {author}

*** END OF THIS PROJECT GUTENBERG EBOOK {title.upper()} ***

{LICENSE_FOOTER}"""


def newest(story: str, number: int, title: str, author: str) -> str:
    return f"""The Project Gutenberg eBook of {title}, by {author}

Title: {title}

Author: {author}

Release Date: June 12, 2021 [eBook #{number}]

Language: French

Character set encoding: ISO-8859-1

***START OF THE PROJECT GUTENBERG EBOOK {title.upper()}***

{story}

***END OF THE PROJECT GUTENBERG EBOOK {title.upper()}***

{LICENSE_FOOTER}"""


def small_print(story: str, title: str, author: str) -> str:
    return f"""**The Project Gutenberg Etext of {title}, by {author}**
#2 in our series by {author}

Copyright laws are changing all over the world, be sure to check
the copyright laws for your country before posting these files!!

**Welcome To The World of Free Plain Vanilla Electronic Texts**

{title}

by {author}

*****START**THE SMALL PRINT!**FOR PUBLIC DOMAIN ETEXTS**START*****
Why is this "Small Print!" statement here?  You know: lawyers.
They tell us you might sue us if there is something wrong with
your copy of this etext, even if you got it for free from
someone other than us, and even if what's wrong is not our
fault.
*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*

{story}

End of Project Gutenberg's Etext of {title}, by {author}
"""


def write(name: str, text: str, encoding: str) -> None:
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(text.replace("\n", "\r\n").encode(encoding))


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    write("pg90001.txt", modern(STORY, 90001, "The Miller's Daughter", "Jane Harrow"), "utf-8")
    # a second edition of the same book: other front matter, a preface line, re-wrapped first paragraph
    edition = STORY.replace(
        "the miller, a broad and patient man named Anselm Dury, had kept it for thirty\nyears",
        "the miller, a broad and patient man named Anselm Dury, had kept it for\nthirty years",
    )
    write(
        "pg90002.txt",
        modern(
            edition, 90002, "The Miller's Daughter", "Jane Harrow", "[Second edition, with corrections.]\n"
        ),
        "utf-8",
    )
    other = STORY.replace("mill", "forge").replace("grain", "iron").replace("miller", "smith")
    other = "\n".join(line[::-1] if i % 2 else line for i, line in enumerate(other.split("\n")))
    write("pg90003-8.txt", newest(other, 90003, "La Forge", "Jean Dury"), "latin-1")
    write("smallprint.txt", small_print(STORY.split("CHAPTER II.")[0], "The Mill", "Jane Harrow"), "latin-1")
    write("not-gutenberg.txt", "Notes for the reading group.\n\nWe meet on Thursday at eight.\n", "utf-8")


if __name__ == "__main__":
    main()
