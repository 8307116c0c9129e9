"""Repository license detection (SPDX ids, lower case) and the filter that keeps permissive licenses only.

Why not scancode-toolkit: it is the reference detector, but ``scancode-toolkit-mini`` pulls 75 packages
(measured with ``pip install --dry-run``: lxml, cryptography, pdfminer, rdflib...) into an environment that must keep
its pins; LLaMA-1/RedPajama only need to tell a few common licenses apart.  The detector here therefore reads, in order of authority:

1. ``SPDX-License-Identifier:`` lines (in license files, then any file of the repository);
2. the text of LICENSE / LICENCE / COPYING / UNLICENSE files, matched on the clauses that tell licenses apart
   (e.g. BSD-3-Clause is BSD-2-Clause plus the "Neither the name" clause; for GNU texts the first title decides);
3. the README's "License" statement ("released under the MIT License").

It is tested on real license files (MIT, Apache-2.0, BSD-2-Clause, GPL-3.0, none; the FSF GPL/LGPL texts).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pipelines.core.steps import RowFilter

NONE = "none"
UNKNOWN = "unknown"
DEFAULT_ALLOW = ("mit", "bsd-2-clause", "bsd-3-clause", "apache-2.0")

_SPDX = re.compile(r"SPDX-License-Identifier:\s*([A-Za-z0-9.+\-]+)")
_LICENSE_FILE = re.compile(r"^(un)?(licen[cs]e|copying)([._-].*)?$", re.IGNORECASE)
_README = re.compile(r"^readme(\.[a-z]+)?$", re.IGNORECASE)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).lower()


_GNU_TITLE = re.compile(r"gnu (affero |lesser |library )?general public licen[cs]e")
_GNU_KIND = {"affero ": "agpl", "lesser ": "lgpl", "library ": "lgpl", "": "gpl"}


def _gnu_license(head: str) -> str | None:
    """SPDX id from the first GNU licence title in ``head``, with the version stated after it.

    The first title decides because each text names its siblings further down: the GPL-2.0 preamble points to the
    "GNU Lesser General Public License" and the GPL-3.0 text to the Affero one, so asking "is LGPL mentioned?"
    turned every GPL-2.0 ``COPYING`` into LGPL-2.0."""
    m = _GNU_TITLE.search(head)
    if not m:
        return None
    kind = _GNU_KIND[m.group(1) or ""]
    v = re.search(r"version (\d)(?:\.(\d))?", head[m.end() : m.end() + 600])
    if not v:
        return f"{kind}-{'2.1' if kind == 'lgpl' else '3.0'}"
    return f"{kind}-{v.group(1)}.{v.group(2) or '0'}"


def license_from_text(text: str) -> str | None:
    """SPDX id of a full license text (or a README statement), ``None`` if nothing is recognised."""
    t = _norm(text[:200_000])
    if found := _gnu_license(t[:1500]):
        return found
    if "apache license" in t and ("version 2.0" in t or "apache.org/licenses/license-2.0" in t):
        return "apache-2.0"
    if "mozilla public license" in t and "2.0" in t:
        return "mpl-2.0"
    if "permission is hereby granted, free of charge" in t and "the above copyright notice" in t:
        return "mit"
    if "permission to use, copy, modify, and/or distribute this software for any purpose" in t:
        return "isc"
    if "redistribution and use in source and binary forms" in t:
        if "all advertising materials" in t:
            return "bsd-4-clause"
        if "neither the name" in t or "may not be used to endorse" in t:
            return "bsd-3-clause"
        return "bsd-2-clause"
    if "this is free and unencumbered software released into the public domain" in t:
        return "unlicense"
    # short statements, as READMEs put them
    for pattern, spdx in (
        (r"\bmit licen[cs]e\b|licensed under (the )?mit\b|\blicense:? mit\b", "mit"),
        (r"apache licen[cs]e,? (version )?2\.0|\bapache-2\.0\b", "apache-2.0"),
        (r"\bbsd[- ]3[- ]clause\b", "bsd-3-clause"),
        (r"\bbsd[- ]2[- ]clause\b", "bsd-2-clause"),
        (r"\b(a?gpl|lgpl)v?-?(\d)", None),
    ):
        m = re.search(pattern, t)
        if m:
            return spdx or f"{m.group(1)}-{m.group(2)}.0"
    return None


def _readme_license_section(text: str) -> str:
    """The part of a README under a 'License' heading (a README mentions other projects' licenses elsewhere)."""
    m = re.search(r"^(#+|=+|\*\*)?\s*licen[cs]e\b.*$", text, re.IGNORECASE | re.MULTILINE)
    return text[m.start() : m.start() + 2000] if m else ""


@dataclass(frozen=True)
class LicenseFinding:
    license: str
    evidence: str  # the file that said so, or "" for none


def detect_license(files: Mapping[str, str]) -> LicenseFinding:
    """License of a repository from its files (relative path → text); the top-level files win over nested ones."""
    ordered = sorted(files, key=lambda p: (p.count("/"), p))
    license_files = [p for p in ordered if _LICENSE_FILE.match(posixpath.basename(p))]
    for path in license_files:
        if m := _SPDX.search(files[path]):
            return LicenseFinding(m.group(1).lower(), path)
        if found := license_from_text(files[path]):
            return LicenseFinding(found, path)
    for path in ordered:
        if path.count("/") == 0 and _README.match(posixpath.basename(path)):
            if found := license_from_text(_readme_license_section(files[path])):
                return LicenseFinding(found, path)
    for path in ordered:
        if m := _SPDX.search(files[path][:4096]):
            return LicenseFinding(m.group(1).lower(), path)
    if license_files:
        return LicenseFinding(UNKNOWN, license_files[0])
    return LicenseFinding(NONE, "")


def is_license_candidate(path: str) -> bool:
    """Files the detector reads even when they are not documents (LICENSE, COPYING, README)."""
    base = posixpath.basename(path)
    return bool(_LICENSE_FILE.match(base) or _README.match(base))


@dataclass
class LicenseFilter(RowFilter):
    """Keeps rows whose ``license`` is in ``allow``; the others go with ``license:<spdx id>``."""

    reads: ClassVar[tuple[str, ...]] = ("license",)

    allow: list[str] = field(default_factory=lambda: list(DEFAULT_ALLOW))

    def reason(self, row: dict[str, Any]) -> str | None:
        lic = row["license"] or NONE
        return None if lic in {a.lower() for a in self.allow} else f"license:{lic}"
