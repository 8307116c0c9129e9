"""StackExchange dump reader: one site (``Posts.xml`` in a folder, or the site's ``.7z``) = one input.

A document is a question with its answers.  In ``Posts.xml`` an answer is a separate ``<row>`` that may come long
after its question (or, in hand-made copies, before it), so rows cannot be joined on the fly with bounded memory.
Why SQLite for the join: each parsed row is spilled to a temporary on-disk SQLite table (stdlib, no server, its own
external sort), then one ``ORDER BY question, kind, score DESC, id`` query streams the groups back; memory holds one
question's posts at a time whatever the dump size, and the sort is numeric on an INTEGER column, so a score of 10
comes before 9.  (A Parquet spill + DuckDB would work as well; SQLite needs no schema juggling for row-wise inserts.)

Archives: the ``Posts.xml`` member of a site ``.7z`` is extracted to a temporary folder under two caps: the
sizes the archive header declares (total and ratio), and py7zr's ``max_extract_size``, which counts the bytes really
written, so a lying header cannot bomb the disk.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from filters.html_text import html_to_text
from filters.stackexchange import Answer, format_qa, order_answers, parse_tags
from pipelines.core import storage
from pipelines.core.folder import file_info, split, stat
from pipelines.core.recipe import Reader, Skip, discover_files
from pipelines.readers.xmlstream import iter_elements

log = logging.getLogger(__name__)

POSTS = "posts.xml"
_POST_TYPES = {
    "3": "orphaned_tag_wiki",
    "4": "tag_wiki_excerpt",
    "5": "tag_wiki",
    "6": "moderator_nomination",
    "7": "wiki_placeholder",
    "8": "privilege_wiki",
}
_COLUMNS = "qid, kind, score, pid, title, body, tags, accepted, created, views"


class ArchiveRefused(Exception):
    """A site archive that is not read: no Posts.xml member, unsafe member path, or over the size caps."""


def site_name(path: str) -> str:
    """``.../math.stackexchange.com/Posts.xml`` → ``math.stackexchange.com``; ``x.com-Posts.7z`` → ``x.com``.

    A name that is not valid UTF-8 is written with its bytes as ``\\xNN`` (ids must be valid strings)."""
    if os.path.basename(path).lower() == POSTS:
        return storage.printable(os.path.basename(os.path.dirname(os.path.abspath(path))))
    name = storage.printable(os.path.basename(path))
    name = name[: -len(".7z")] if name.lower().endswith(".7z") else name
    return name[: -len("-Posts")] if name.endswith("-Posts") else name


def _posts_member(archive: Any) -> Any | None:
    for info in archive.list():
        if not info.is_directory and posixpath.basename(info.filename.replace("\\", "/")).lower() == POSTS:
            return info
    return None


#: what the dumps write for an integer: ASCII digits, optional minus (``int()`` would also take " 7", "1_000",
#: "٣"), at most 19 digits
_INT = re.compile(r"-?[0-9]{1,19}")
_INT64 = (-(1 << 63), (1 << 63) - 1)


def _int(value: str | None) -> int | None:
    """An integer attribute, or ValueError: SQLite stores signed 64-bit integers (a 23-digit Score raised
    OverflowError on insert and lost the whole site), and so does the Arrow schema."""
    if value is None or value == "":
        return None
    if not _INT.fullmatch(value):
        raise ValueError(f"not an integer: {value[:40]!r}")
    n = int(value)
    if not _INT64[0] <= n <= _INT64[1]:
        raise ValueError(f"integer out of the 64-bit range: {value[:40]!r}")
    return n


def _record(a: Any) -> tuple[Any, ...] | Skip:
    """One ``<row>`` as a spill record (question: kind 0 keyed by its id; answer: kind 1 keyed by ParentId)."""
    ptype = a.get("PostTypeId")
    try:
        pid, score = _int(a.get("Id")), _int(a.get("Score")) or 0
        if pid is None:
            raise ValueError("no Id")
        if ptype == "1":
            return (
                pid,
                0,
                score,
                pid,
                a.get("Title"),
                a.get("Body"),
                a.get("Tags"),
                _int(a.get("AcceptedAnswerId")),
                a.get("CreationDate"),
                _int(a.get("ViewCount")),
            )
        if ptype == "2":
            parent = _int(a.get("ParentId"))
            if parent is None:
                raise ValueError("answer without ParentId")
            return (parent, 1, score, pid, None, a.get("Body"), None, None, a.get("CreationDate"), None)
    except ValueError:
        return Skip("skip:malformed_row")
    return Skip(f"skip:{_POST_TYPES.get(ptype or '', 'not_a_post')}")


def _insert(db: sqlite3.Connection, records: list[tuple[Any, ...]]) -> int:
    """Insert spill records; if SQLite refuses the batch, insert them one by one and return how many it refused
    (a row the checks of :func:`_record` let through must still cost one row, never the site)."""
    insert = f"INSERT INTO posts ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)"
    try:
        with db:
            db.executemany(insert, records)
        return 0
    except (sqlite3.Error, OverflowError, ValueError):
        refused = 0
        for rec in records:
            try:
                db.execute(insert, rec)
            except (sqlite3.Error, OverflowError, ValueError):
                refused += 1
        return refused


@dataclass
class StackExchangeReader(Reader):
    """Reads a site's posts into question documents (``Q:``/``A:``, answers by numeric score)."""

    patterns: ClassVar[tuple[str, ...]] = ("**/Posts.xml", "**/posts.xml", "**/*.7z")
    #: a folder holding many sites yields its N largest (LLaMA-1 kept 28); ``None`` keeps all
    max_sites: int | None = 28
    #: caps for ``.7z`` archives: bytes written for Posts.xml, and the declared unpacked/packed ratio
    max_unpacked_bytes: int = 200_000_000_000
    max_ratio: float = 100.0
    #: a line longer than this is refused (real dumps hold one row per line; a 100 MB line is an attack)
    max_line_bytes: int = 64_000_000
    #: where the SQLite spill and extracted archives go (``None``: the system temp dir)
    spill_dir: str | None = None

    def adds(self) -> dict[str, pa.DataType]:
        return {"question_score": pa.int64(), "answer_count": pa.int32(), "best_answer_score": pa.int64()}

    # -- inputs ------------------------------------------------------------------------------------------------
    def discover(self, spec: str) -> list[str]:
        """One input per site; when ``spec`` is a folder or glob, only the ``max_sites`` largest sites."""
        candidates = discover_files(spec, self.patterns)
        if file_info(spec) is not None:
            return candidates
        sized: list[tuple[int, str]] = []
        for path in candidates:
            if path.lower().endswith(".7z"):
                size = self._archive_posts_size(path)
                if size is None:
                    continue
            elif os.path.basename(path).lower() == POSTS:
                size = stat(path).size
            else:
                continue
            sized.append((size, path))
        sized.sort(key=lambda t: (-t[0], t[1]))
        if self.max_sites is not None and len(sized) > self.max_sites:
            log.info("stackexchange: %d sites found, keeping the %d largest", len(sized), self.max_sites)
            sized = sized[: self.max_sites]
        return sorted(p for _, p in sized)

    @staticmethod
    def _archive_posts_size(path: str) -> int | None:
        """Declared size of the Posts.xml member, or ``None`` (not a posts archive, or unreadable: logged)."""
        import io

        import py7zr

        folder, name = split(path)
        try:  # the header only (through ranged reads on an object store: the archive is not downloaded)
            with (
                io.BufferedReader(folder.open_input_file(name), 1 << 20) as f,
                py7zr.SevenZipFile(f, "r") as archive,
            ):
                info = _posts_member(archive)
        except Exception as exc:  # noqa: BLE001 - a broken archive is reported when read, not at discovery
            log.warning("stackexchange: cannot list %s (%s); it will be read and rejected", path, exc)
            return folder.size(name)
        return None if info is None else int(info.uncompressed or 0)

    # -- reading -----------------------------------------------------------------------------------------------
    def read(self, path: str) -> Iterator[dict[str, Any] | Skip]:
        site = site_name(path)
        with tempfile.TemporaryDirectory(prefix="winnow-se-", dir=self.spill_dir) as tmp:
            xml_path = self._extract(path, tmp) if path.lower().endswith(".7z") else path
            yield from self._read_posts(xml_path, site, os.path.join(tmp, "posts.sqlite"))

    def _extract(self, path: str, tmp: str) -> str:
        import py7zr

        with py7zr.SevenZipFile(path, "r", max_extract_size=self.max_unpacked_bytes) as archive:
            info = _posts_member(archive)
            if info is None:
                raise ArchiveRefused(f"{path}: no Posts.xml member; give the site's Posts.xml or its .7z")
            name = info.filename.replace("\\", "/")
            if name.startswith("/") or ".." in name.split("/"):
                raise ArchiveRefused(f"{path}: unsafe member path {name!r}")
            declared = int(info.uncompressed or 0)
            packed = max(1, os.path.getsize(path))
            if declared > self.max_unpacked_bytes or declared / packed > self.max_ratio:
                raise ArchiveRefused(
                    f"{path}: Posts.xml declares {declared:,} bytes from {packed:,} packed (caps: "
                    f"{self.max_unpacked_bytes:,} bytes, ratio {self.max_ratio}); raise reader.max_unpacked_bytes "
                    "or reader.max_ratio if this archive is genuine"
                )
            archive.extract(path=tmp, targets=[info.filename])
        out = os.path.join(tmp, *name.split("/"))
        if not os.path.isfile(out):
            raise ArchiveRefused(f"{path}: Posts.xml member could not be extracted")
        return out

    def _read_posts(self, xml_path: str, site: str, db_path: str) -> Iterator[dict[str, Any] | Skip]:
        from lxml.etree import XMLSyntaxError

        db = sqlite3.connect(db_path)
        db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-65536;"
            "CREATE TABLE posts (qid INTEGER, kind INTEGER, score INTEGER, pid INTEGER, title TEXT, body TEXT,"
            " tags TEXT, accepted INTEGER, created TEXT, views INTEGER);"
        )
        syntax_error: XMLSyntaxError | None = None
        try:
            try:
                yield from self._spill(xml_path, db)
            except XMLSyntaxError as exc:  # keep what was read before the damage, then report it
                syntax_error = exc
            db.execute("CREATE INDEX by_question ON posts (qid, kind, score DESC, pid)")
            yield from self._questions(db, site)
        finally:
            db.close()
        if syntax_error is not None:
            raise syntax_error

    def _spill(self, xml_path: str, db: sqlite3.Connection) -> Iterator[Skip]:
        pending: list[tuple[Any, ...]] = []
        refused = 0
        try:
            for row in iter_elements(xml_path, ("row",), max_line_bytes=self.max_line_bytes):
                rec = _record(row.attrib)
                if isinstance(rec, Skip):
                    yield rec
                    continue
                pending.append(rec)
                if len(pending) >= 2000:
                    refused += _insert(db, pending)
                    pending.clear()
        finally:  # rows parsed before a syntax error are kept
            if pending:
                refused += _insert(db, pending)
        if refused:
            yield Skip("skip:malformed_row", refused)

    def _questions(self, db: sqlite3.Connection, site: str) -> Iterator[dict[str, Any] | Skip]:
        cursor = db.execute(f"SELECT {_COLUMNS} FROM posts ORDER BY qid, kind, score DESC, pid")
        group: list[tuple[Any, ...]] = []
        for rec in cursor:
            if group and rec[0] != group[0][0]:
                yield from self._document(group, site)
                group = []
            group.append(rec)
        if group:
            yield from self._document(group, site)

    def _document(self, group: list[tuple[Any, ...]], site: str) -> Iterator[dict[str, Any] | Skip]:
        questions = [r for r in group if r[1] == 0]
        answers_rows = [r for r in group if r[1] == 1]
        if not questions:
            yield Skip("skip:orphan_answer", len(answers_rows))
            return
        if len(questions) > 1:
            yield Skip("skip:duplicate_question", len(questions) - 1)
        qid, _, qscore, _, title, body, tags, accepted, created, views = questions[0]
        answers = order_answers([Answer(r[3], r[2], html_to_text(r[5])) for r in answers_rows])
        text = format_qa(title or "", html_to_text(body), answers)
        meta = {
            "site": site,
            "question_id": qid,
            "question_score": qscore,
            "answer_ids": [a.post_id for a in answers],
            "answer_scores": [a.score for a in answers],
            "accepted_answer_id": accepted,
            "accepted_answer_present": accepted is not None and any(a.post_id == accepted for a in answers),
            "tags": parse_tags(tags),
            "title": title,
            "creation_date": created,
            "view_count": views,
        }
        url = f"https://{site}/questions/{qid}" if "." in site else None
        yield {
            "id": f"{site}:{qid}",
            "url": url,
            "text": text,
            "meta": meta,
            "question_score": qscore,
            "answer_count": len(answers),
            "best_answer_score": answers[0].score if answers else None,
        }
