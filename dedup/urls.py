"""URL normalisation for URL-level dedup (LLaMA-3 §3.1.1: "URL-level de-duplication ... we keep the most recent
version for pages corresponding to each URL").

Two captures are the same page when their normalised URLs are equal: the scheme is dropped (http = https), the host
is lower-cased without a leading ``www.`` and without the default port, the path keeps its case but loses a
trailing slash (``/a/`` = ``/a``, and an empty path is ``/``), the fragment is dropped, tracking parameters
(``utm_*``, ``fbclid``, ``gclid``, ``mc_cid``, ...) are removed and the remaining query parameters are sorted.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

#: query parameters that identify a campaign or a click, not a page
TRACKING = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "msclkid",
        "yclid",
        "mc_cid",
        "mc_eid",
        "igshid",
        "_ga",
        "_gl",
        "ref_src",
        "spm",
    }
)


def normalize_url(url: str | None) -> str:
    """The key two captures of one page share (see the module docstring); "" for no URL."""
    if not url:
        return ""
    parts = urlsplit(url.strip() if "//" in url else f"//{url.strip()}")
    host = (parts.hostname or "").lower().removeprefix("www.")
    port = parts.port if parts.port not in (None, 80, 443) else None
    path = parts.path.rstrip("/") or "/"
    query = sorted(
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith("utm_") and k.lower() not in TRACKING
    )
    return f"{host}{f':{port}' if port else ''}{path}" + (f"?{urlencode(query)}" if query else "")
