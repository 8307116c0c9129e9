"""Which declared charsets are trusted, for the readers that decode bytes themselves (WARC pages, Gutenberg books).

A charset declared in an HTTP header, a ``<meta>`` tag or a Gutenberg header is written by whoever made the file,
and Python's codec registry holds more than charsets: ``rot13``, ``hex``, ``base64`` are bytes/str transforms
(``bytes.decode`` raises LookupError for them), ``idna`` and ``punycode`` are host-name encodings (UnicodeError on a
long line), ``unicode_escape`` turns ``\\n`` in the text into a newline, ``undefined`` always fails.  A declared name
is used only when :func:`text_codec` accepts it; the caller then falls back (detection) instead of ending the input.
"""

from __future__ import annotations

import codecs

#: registered text codecs that are not charsets of documents (or, utf-7, decode ASCII text with "+" wrongly)
NOT_DOCUMENT_CHARSETS = frozenset(
    {"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined", "utf-7", "charmap"}
)


def text_codec(name: str | bytes | None) -> str | None:
    """The canonical codec name for a declared charset, or ``None`` if it is unknown or not a document charset."""
    if isinstance(name, bytes):
        name = name.decode("ascii", "ignore")
    if not name or not name.strip():
        return None
    try:
        info = codecs.lookup(name.strip().lower())
    except (LookupError, ValueError):  # ValueError: a name with NUL bytes
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in NOT_DOCUMENT_CHARSETS:
        return None
    return info.name


def strict_decode(data: bytes, codec: str) -> str | None:
    """``data`` decoded with ``codec`` (strict), or ``None`` when it does not decode cleanly."""
    try:
        return data.decode(codec)
    except (UnicodeError, LookupError, ValueError):
        return None
