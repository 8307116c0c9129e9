"""URL block lists by category (Llama 2: "removed data from sites known to contain a high volume of personal
information"; LLaMA-3 / FineWeb: domains ranked harmful or adult): the ``url_category`` score step.

The rules and the lists are datatrove's ``URLFilter`` (its bundled UT1 blacklist, v0.3.0, and its banned / soft-banned
/ sub-word lists for words inside URLs), which FineWeb uses to remove adult sites; they are category ``adult`` here.
Users add their own categories as a folder of files ``<category>.txt`` (one domain or URL per line, ``#`` comments)
and an allow list of domains that are never blocked.  A ``ScoreFilter`` over ``url_category`` (the ``url`` step of
the CommonCrawl recipe) rejects with ``url:<category>``; the column is kept on rejected rows too.

Why not call ``URLFilter`` itself: it loads the 123 MB domain list into a Python set (about 600 MB per worker) and
fetches the public-suffix list from the network on first use.  Here the domains are a sorted array of 64-bit hashes
(8 bytes a domain, built once from datatrove's tarball and cached), the suffix list is tldextract's bundled snapshot,
and the decisions are the same (tests/filters/test_urls.py compares them with ``URLFilter`` on the same URLs).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tarfile
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import xxhash

from pipelines.core.folder import Folder
from pipelines.core.steps import Step, StepResult, set_column

log = logging.getLogger(__name__)

#: datatrove's URL tokeniser and normaliser (``datatrove.pipeline.filters.url_filter``)
_SPLIT = re.compile(r"[^a-zA-Z0-9]+")


def _normalize(text: str) -> str:
    return _SPLIT.sub("", text).lower()


def _datatrove_assets() -> str:
    from datatrove.utils._import_utils import ASSETS_PATH

    return ASSETS_PATH


def _word_list(path: str, normalize: bool = True) -> set[str]:
    with open(path, encoding="utf-8") as f:
        return {(_normalize(x) if normalize else x.strip()) for x in f if x and x[0] != "#"}


def _hash(strings: list[str]) -> np.ndarray:
    return np.unique(
        np.fromiter(
            (xxhash.xxh64_intdigest(s.encode("utf-8", "surrogatepass")) for s in strings),
            np.uint64,
            len(strings),
        )
    )


def cache_dir() -> str:
    return os.environ.get("WINNOW_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "winnow")


def datatrove_blocklist() -> tuple[np.ndarray, set[str]]:
    """(sorted hashes of datatrove's blocked domains, its blocked URLs), the hashes cached under ``cache_dir()``."""
    tar_path = os.path.join(_datatrove_assets(), "url_filterblacklistsv0_3_0.tar.gz")
    with open(tar_path, "rb") as f:
        digest = hashlib.sha1(f.read(1 << 20)).hexdigest()[:16] + f"-{os.path.getsize(tar_path)}"
    cached = os.path.join(cache_dir(), "url_blocklist", f"{digest}.npy")
    with tarfile.open(tar_path, "r:gz") as tar:
        urls_member = tar.extractfile("urls")
        urls = {x.strip() for x in urls_member.read().decode("utf-8").splitlines() if x and x[0] != "#"}
        if os.path.exists(cached):
            return np.load(cached, mmap_mode="r"), urls
        domains = tar.extractfile("domains").read().decode("utf-8").splitlines()
    hashes = _hash([d.strip() for d in domains if d and d[0] != "#"])
    with Folder(os.path.dirname(cached)).open_output(os.path.basename(cached)) as fh:
        np.save(fh, hashes)
    log.info("url blocklist: %d domains hashed into %s", len(hashes), cached)
    return hashes, urls


def _contains(sorted_hashes: np.ndarray, value: str) -> bool:
    if not value or not len(sorted_hashes):
        return False
    h = np.uint64(xxhash.xxh64_intdigest(value.encode("utf-8", "surrogatepass")))
    i = int(np.searchsorted(sorted_hashes, h))
    return i < len(sorted_hashes) and sorted_hashes[i] == h


@dataclass
class _Category:
    name: str
    domains: np.ndarray
    urls: set[str]
    banned_words: set[str] = field(default_factory=set)
    soft_words: set[str] = field(default_factory=set)
    soft_threshold: int = 2
    subwords: Any = None  # an ahocorasick automaton, or None
    user: bool = False


@dataclass
class UrlCategory(Step):
    """Adds ``url_category``: the first block-list category that matches the page's URL (null: none).

    ``datatrove_lists``: use datatrove's bundled lists as category ``adult``; ``lists_dir``: a folder of
    ``<category>.txt`` files (domains, or full URLs when a line has a ``/``); ``allow_domains``: registered domains or
    host names that are never blocked; ``soft_word_threshold``: datatrove's (soft-banned words needed in a URL)."""

    kind: ClassVar[str] = "score"
    reads: ClassVar[tuple[str, ...]] = ("url",)

    datatrove_lists: bool = True
    lists_dir: str | None = None
    allow_domains: list[str] = field(default_factory=list)
    soft_word_threshold: int = 2

    def adds(self) -> dict[str, pa.DataType]:
        return {"url_category": pa.string()}

    def setup(self) -> None:
        from tldextract import TLDExtract

        # the bundled public-suffix snapshot, never the network
        self._tld = TLDExtract(suffix_list_urls=(), cache_dir=None)
        self._allow = {d.strip().lower() for d in self.allow_domains if d.strip()}
        self._categories: list[_Category] = []
        if self.datatrove_lists:
            self._categories.append(self._datatrove_category())
        if self.lists_dir:
            self._categories += self._user_categories(self.lists_dir)

    def _datatrove_category(self) -> _Category:
        import ahocorasick

        domains, urls = datatrove_blocklist()
        assets = _datatrove_assets()
        automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        for word in _word_list(os.path.join(assets, "banned_subwords.txt")):
            automaton.add_word(word, len(automaton))
        automaton.make_automaton()
        return _Category(
            "adult",
            domains,
            urls,
            banned_words=_word_list(os.path.join(assets, "banned_words.txt")),
            soft_words=_word_list(os.path.join(assets, "soft_banned_words.txt")),
            soft_threshold=self.soft_word_threshold,
            subwords=automaton,
        )

    @staticmethod
    def _user_categories(folder: str) -> list[_Category]:
        if not os.path.isdir(folder):
            raise FileNotFoundError(
                f"url_category.lists_dir {folder} is not a folder of <category>.txt files"
            )
        out = []
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".txt"):
                continue
            lines = sorted(_word_list(os.path.join(folder, name), normalize=False) - {""})
            urls = {x for x in lines if "/" in x}
            domains = [x.lower() for x in lines if "/" not in x]
            out.append(_Category(name[:-4], _hash(domains), urls, user=True))
        if not out:
            log.warning("url_category.lists_dir %s holds no <category>.txt file", folder)
        return out

    def category(self, url: str | None) -> str | None:
        """The first category whose rules match ``url`` (datatrove's order of rules), or None."""
        if not url:
            return None
        info = self._tld(url)
        registered = (
            info.top_domain_under_public_suffix
            if hasattr(info, "top_domain_under_public_suffix")
            else info.registered_domain
        )
        if registered in self._allow or info.fqdn in self._allow:
            return None
        words = set(_SPLIT.split(url))
        normalized = _normalize(url)
        # a host outside the public-suffix list (intranet names) is matched as a whole by the user's own lists
        host = info.fqdn or (urlsplit(url if "//" in url else f"//{url}").hostname or "")
        for cat in self._categories:
            if _contains(cat.domains, registered) or _contains(cat.domains, info.fqdn) or url in cat.urls:
                return cat.name
            if cat.user and host and _contains(cat.domains, host):
                return cat.name
            if cat.banned_words and not cat.banned_words.isdisjoint(words):
                return cat.name
            if cat.soft_words and sum(w in words for w in cat.soft_words) >= cat.soft_threshold:
                return cat.name
            if cat.subwords is not None and next(cat.subwords.iter(normalized), False):
                return cat.name
        return None

    def process(self, batch: pa.Table) -> StepResult:
        values = [self.category(u) for u in batch.column("url").to_pylist()]
        return StepResult(set_column(batch, "url_category", values, pa.string()))
