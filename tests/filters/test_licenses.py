"""GNU licences are told apart by their title, not by which sibling licence their text happens to mention."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest

from filters.licenses import LicenseFilter, detect_license, license_from_text

# the canonical openings (title, version line, first preamble sentences) of the FSF texts
GPL2_HEAD = (
    "\t\t    GNU GENERAL PUBLIC LICENSE\n\t\t       Version 2, June 1991\n\n"
    " Copyright (C) 1989, 1991 Free Software Foundation, Inc.,\n"
    " 51 Franklin Street, Fifth Floor, Boston, MA 02110-1301 USA\n"
    " Everyone is permitted to copy and distribute verbatim copies\n"
    " of this license document, but changing it is not allowed.\n\n\t\t\t    Preamble\n\n"
    "  The licenses for most software are designed to take away your\nfreedom to share and change it.  "
    "By contrast, the GNU General Public\nLicense is intended to guarantee your freedom to share and change "
    "free\nsoftware--to make sure the software is free for all its users.  This\nGeneral Public License "
    "applies to most of the Free Software\nFoundation's software and to any other program whose authors "
    "commit to\nusing it.  (Some other Free Software Foundation software is covered by\n"
    "the {sibling} instead.)  You can apply it to\nyour programs, too.\n"
)
LGPL2_HEAD = (
    "\t\t  GNU LIBRARY GENERAL PUBLIC LICENSE\n\t\t       Version 2, June 1991\n\n"
    " Copyright (C) 1991 Free Software Foundation, Inc.\n\n"
    "[This is the first released version of the library GPL.  It is\n numbered 2 because it goes with "
    "version 2 of the ordinary GPL.]\n\n\t\t\t    Preamble\n\n  By contrast, the GNU General Public\n"
    "Licenses are intended to guarantee your freedom to share and change\nfree software.\n"
)
LGPL21_HEAD = (
    "\t\t  GNU LESSER GENERAL PUBLIC LICENSE\n\t\t       Version 2.1, February 1999\n\n"
    "[This is the first released version of the Lesser GPL.  It also counts\n as the successor of the GNU "
    "Library Public License, version 2, hence\n the version number 2.1.]\n\n  By contrast, the GNU General "
    "Public\nLicenses are intended to guarantee your freedom.\n"
)
LGPL3_HEAD = (
    "                   GNU LESSER GENERAL PUBLIC LICENSE\n                       Version 3, 29 June 2007\n\n"
    "  This version of the GNU Lesser General Public License incorporates\nthe terms and conditions of "
    "version 3 of the GNU General Public\nLicense, supplemented by the additional permissions listed below.\n"
)
GPL2_NOTICE = (
    "frobnicate - turns widgets into gadgets\nCopyright (C) 2004 A. Hacker\n\n"
    "This program is free software; you can redistribute it and/or modify\nit under the terms of the GNU "
    "General Public License as published by\nthe Free Software Foundation; either version 2 of the License, "
    "or\n(at your option) any later version.\n"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GPL2_HEAD.format(sibling="GNU Lesser General Public License"), "gpl-2.0"),  # the FSF's current text
        (GPL2_HEAD.format(sibling="GNU Library General Public License"), "gpl-2.0"),  # the 1991 original
        (LGPL2_HEAD, "lgpl-2.0"),
        (LGPL21_HEAD, "lgpl-2.1"),
        (LGPL3_HEAD, "lgpl-3.0"),
        (GPL2_NOTICE, "gpl-2.0"),
        (GPL2_NOTICE.replace("GNU General", "GNU Lesser General"), "lgpl-2.0"),
    ],
)
def test_gnu_titles_decide(text, expected):
    assert license_from_text(text) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("GPL-2", "gpl-2.0"),
        ("LGPL-2", "lgpl-2.0"),
        ("LGPL-2.1", "lgpl-2.1"),
        ("LGPL-3", "lgpl-3.0"),
        ("GPL-3", "gpl-3.0"),
    ],
)
def test_real_fsf_texts(name, expected):
    """The full texts as Debian ships them (``/usr/share/common-licenses``), when the system has them."""
    path = os.path.join("/usr/share/common-licenses", name)
    if not os.path.exists(path):
        pytest.skip(f"{path} not on this system")
    with open(path, encoding="utf-8") as f:
        assert license_from_text(f.read()) == expected


def test_a_gpl2_copying_file_is_gpl2_and_filtered_as_such():
    finding = detect_license(
        {"COPYING": GPL2_HEAD.format(sibling="GNU Lesser General Public License"), "src/main.c": "int x;\n"}
    )
    assert (finding.license, finding.evidence) == ("gpl-2.0", "COPYING")
    batch = pa.table({"license": ["gpl-2.0", "mit", "lgpl-2.1"]})
    assert LicenseFilter()(batch).reasons == ["license:gpl-2.0", None, "license:lgpl-2.1"]
