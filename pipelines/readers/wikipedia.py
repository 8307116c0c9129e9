"""MediaWiki XML dump reader (``pages-articles`` exports, ``.xml`` / ``.xml.bz2`` / ``.gz``, any XML encoding).

Streams ``<page>`` elements with :mod:`pipelines.readers.xmlstream` (bounded memory, no entity expansion), reads the
dump's ``<siteinfo>`` first for its language, database name and localised namespace names, and turns each article's
wikitext into plain text (:func:`filters.wikitext.wikitext_to_text`).

What is not a document is counted, not lost: redirects and pages outside the wanted namespaces are skipped by
reason; a dump whose language is not selected is skipped once, before any page is parsed (``languages`` in the
config; LLaMA-1 used 20); disambiguation pages are rejected rows (reason ``wiki:disambiguation``) so that they can
be inspected in ``rejected/``.

Ids are unique per source: ``<dbname>:<page id>@<folder>/<file>`` names the dump the page came from (its file and
the folder holding it, which is also what a reader sees of an object-store input: ``storage.local_copy``).  The
same page in two dumps (two dates of one wiki, parts of a split dump, a copy of a dump in another folder) is then
two documents with two ids, which the source's exact and near-duplicate removal treats as what they are; ``meta``
keeps ``dbname``, ``page_id`` and ``revision_id`` for joins across dumps.  Why not keep one: each input is read
alone (the unit of resume), so no reader can know what another dump held; choosing between copies is the dedup
stages' work.  Within one dump a page id is read once (``skip:duplicate_page_id`` for a repeat, the first kept).
Two dumps that share both file and folder name (``a/x/enwiki.xml``, ``b/x/enwiki.xml``) still share ids: name
them apart.
"""

from __future__ import annotations

import logging
import os
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa

from filters.wikitext import (
    DEFAULT_DISAMBIGUATION_TEMPLATES,
    LLAMA_LANGUAGES,
    is_disambiguation,
    wikitext_to_text,
)
from pipelines.core import storage
from pipelines.core.recipe import Reader, Skip
from pipelines.readers.xmlstream import iter_elements, local_name

log = logging.getLogger(__name__)

_REDIRECT_TEXT = re.compile(
    r"^\s*#\s*(redirect|weiterleitung|redirection|redirección|rinvia|перенаправление)\b", re.IGNORECASE
)
#: namespaces whose links are not prose: File/Image (6), Media (-2), Category (14)
_DROP_NAMESPACES = ("6", "-2", "14")
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
#: a page id or namespace key as dumps write it (``int()`` also takes " 0", "1_0" and other scripts' digits, and
#: raises on "²", which ``str.isdigit`` accepts)
_DECIMAL = re.compile(r"-?[0-9]{1,18}")


def _decimal(text: str | None) -> int:
    """A namespace key: a plain decimal integer, or ValueError (the page is then ``skip:malformed_page``)."""
    text = (text or "").strip()
    if not _DECIMAL.fullmatch(text):
        raise ValueError(f"not a decimal integer: {text[:20]!r}")
    return int(text)


@dataclass
class SiteInfo:
    dbname: str = ""
    lang: str = ""
    base: str = ""
    namespaces: dict[str, int] = field(default_factory=dict)  # lower-cased name -> key

    def drop_prefixes(self) -> list[str]:
        keys = {int(k) for k in _DROP_NAMESPACES}
        return [name for name, key in self.namespaces.items() if key in keys and name]

    def url(self, title: str) -> str | None:
        if "/wiki/" not in self.base:
            return None
        root = self.base.split("/wiki/", 1)[0]
        return f"{root}/wiki/" + urllib.parse.quote(title.replace(" ", "_"), safe="/:(),'!*_-.~")


def _child(elem: Any, name: str) -> Any | None:
    for c in elem:
        if local_name(c) == name:
            return c
    return None


def _child_text(elem: Any, name: str) -> str | None:
    c = _child(elem, name)
    return None if c is None else (c.text or "")


def parse_siteinfo(elem: Any, fallback_name: str) -> SiteInfo:
    """Language from the ``<base>`` host (``ltg.wikipedia.org`` → ``ltg``), else ``<dbname>`` minus ``wiki``."""
    info = SiteInfo(dbname=_child_text(elem, "dbname") or "", base=_child_text(elem, "base") or "")
    host = urllib.parse.urlparse(info.base).hostname or ""
    if host.endswith(".wikipedia.org") and host.count(".") == 2:
        info.lang = host.split(".")[0]
    elif info.dbname.endswith("wiki"):
        info.lang = info.dbname[: -len("wiki")].replace("_", "-")
    if not info.dbname:
        info.dbname = f"{info.lang}wiki" if info.lang else fallback_name
    ns = _child(elem, "namespaces")
    for n in ns if ns is not None else ():
        try:
            info.namespaces[(n.text or "").strip().lower()] = _decimal(n.get("key", ""))
        except ValueError:
            continue
    return info


class SeenIds:
    """Page ids already read from one dump, in little memory: a bitmap for ids below 2**31 (enwiki's ~80 million
    ids take 10 MB, where a set of 7 million ints takes ~400 MB), a set for anything else."""

    BITMAP_LIMIT = 1 << 31

    def __init__(self) -> None:
        self._bits = bytearray()
        self._other: set[Any] = set()

    def add(self, page_id: int | str) -> bool:
        """Record ``page_id``; False if it was already there."""
        if isinstance(page_id, int) and 0 <= page_id < self.BITMAP_LIMIT:
            byte, bit = divmod(page_id, 8)
            if byte >= len(self._bits):
                self._bits.extend(bytes(max(byte + 1 - len(self._bits), len(self._bits))))
            if self._bits[byte] >> bit & 1:
                return False
            self._bits[byte] |= 1 << bit
            return True
        if page_id in self._other:
            return False
        self._other.add(page_id)
        return True


@dataclass
class WikipediaReader(Reader):
    """One article page = one document (``id`` = ``<dbname>:<page id>@<folder>/<file>``, text = plain text)."""

    patterns: ClassVar[tuple[str, ...]] = ("**/*.xml", "**/*.xml.bz2", "**/*.bz2", "**/*.xml.gz")
    batch_size: int = 128
    #: dump languages to read (``null``: all); LLaMA-1's 20 by default
    languages: list[str] | None = field(default_factory=lambda: list(LLAMA_LANGUAGES))
    #: a line longer than this is refused (bounds memory on a single-line hostile file)
    max_line_bytes: int = 64_000_000
    #: page namespaces that are articles
    namespaces: list[int] = field(default_factory=lambda: [0])
    disambiguation_templates: list[str] = field(
        default_factory=lambda: list(DEFAULT_DISAMBIGUATION_TEMPLATES)
    )
    #: also put the page's raw wikitext in each row under ``wikitext`` (not a column: model trainers label
    #: articles by their categories, which the plain text no longer holds)
    keep_wikitext: bool = False

    def adds(self) -> dict[str, pa.DataType]:
        return {"lang": pa.string(), "title": pa.string()}

    def read(self, path: str) -> Iterator[dict[str, Any] | Skip]:
        fallback = storage.printable(os.path.basename(path)).split(".")[0]
        dump = storage.printable(f"{os.path.basename(os.path.dirname(path))}/{os.path.basename(path)}")
        info: SiteInfo | None = None
        wanted_ns = set(self.namespaces)
        seen = SeenIds()
        for elem in iter_elements(path, ("siteinfo", "page"), max_line_bytes=self.max_line_bytes):
            if info is None:
                is_siteinfo = local_name(elem) == "siteinfo"
                info = parse_siteinfo(elem, fallback) if is_siteinfo else SiteInfo()
                if not info.lang:  # no siteinfo (hand-made exports): the root's xml:lang
                    root = elem.getparent()
                    info.lang = (root.get(_XML_LANG) or "") if root is not None else ""
                    info.dbname = info.dbname or (f"{info.lang}wiki" if info.lang else fallback)
                if self.languages is not None and info.lang not in self.languages:
                    log.info("%s: dump language %r not in the selected languages; skipped", path, info.lang)
                    yield Skip(f"skip:dump_language_not_selected:{info.lang or 'unknown'}")
                    return
                if is_siteinfo:
                    continue
            if local_name(elem) == "page":
                item = self._page(elem, info, wanted_ns, dump)
                if not isinstance(item, Skip) and not seen.add(item["meta"]["page_id"]):
                    item = Skip(
                        "skip:duplicate_page_id"
                    )  # the same page twice in one dump: the first is kept
                yield item

    def _page(self, elem: Any, info: SiteInfo, wanted_ns: set[int], dump: str) -> dict[str, Any] | Skip:
        title = (_child_text(elem, "title") or "").strip()
        ns_text = _child_text(elem, "ns")
        try:
            ns = _decimal(ns_text) if ns_text is not None else self._ns_from_title(title, info)
        except ValueError:
            return Skip("skip:malformed_page")
        if ns not in wanted_ns:
            return Skip(f"skip:namespace_{ns}")
        page_id = (_child_text(elem, "id") or "").strip()
        revision = _child(elem, "revision")
        text_el = _child(revision, "text") if revision is not None else None
        wikitext = (text_el.text or "") if text_el is not None else ""
        if not page_id or not title:
            return Skip("skip:malformed_page")
        if _child(elem, "redirect") is not None or _REDIRECT_TEXT.match(wikitext):
            return Skip("skip:redirect")
        row: dict[str, Any] = {
            "id": f"{info.dbname}:{page_id}@{dump}",
            "url": info.url(title),
            "lang": info.lang or None,
            "title": title,
            "meta": {
                "title": title,
                "page_id": int(page_id) if _DECIMAL.fullmatch(page_id) else page_id,
                "dbname": info.dbname,
                "dump": dump,
                "lang": info.lang,
                "revision_id": _child_text(revision, "id") if revision is not None else None,
                "timestamp": _child_text(revision, "timestamp") if revision is not None else None,
                "wikitext_chars": len(wikitext),
            },
        }
        if self.keep_wikitext:
            row["wikitext"] = wikitext
        if is_disambiguation(wikitext, self.disambiguation_templates):
            row["reason"] = "wiki:disambiguation"
        try:
            row["text"] = wikitext_to_text(wikitext, info.drop_prefixes())
        except (RecursionError, ValueError, MemoryError) as exc:  # one pathological page, not the whole dump
            log.warning("page %s (%s): wikitext could not be parsed: %s", page_id, title, type(exc).__name__)
            row.update(text=wikitext, reason=f"wiki:parse_error_{type(exc).__name__}")
        return row

    @staticmethod
    def _ns_from_title(title: str, info: SiteInfo) -> int:
        """Old exports carry no ``<ns>``: a title prefix that names a namespace gives it, else the main one."""
        prefix, colon, _ = title.partition(":")
        return info.namespaces.get(prefix.strip().lower(), 0) if colon else 0
