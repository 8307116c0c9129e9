"""robots.txt opt-outs recorded after the crawl (AFM: "respects robots.txt"): the optional ``robots`` step drops pages
whose host's robots.txt, in a snapshot folder the user provides, disallows one of the named user agents.

CommonCrawl's crawler already honoured robots.txt when it fetched a page; this is for opt-outs published later
(e.g. ``User-agent: GPTBot / Disallow: /``).  The snapshot is a folder of files named by host, ``<host>.txt`` or
``<host>/robots.txt`` (``www.`` is tried with and without); a host without a file is allowed.  Rules are parsed by
Python's ``urllib.robotparser`` (the reference parser of the standard library).  Reason: ``robots:<agent>``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

from pipelines.core.steps import RowFilter


@dataclass
class RobotsOptOut(RowFilter):
    """Rejects pages whose host's robots.txt (from ``snapshot_dir``) disallows any of ``user_agents``."""

    reads: ClassVar[tuple[str, ...]] = ("url",)

    snapshot_dir: str = ""
    #: AI-training crawlers whose opt-out a training corpus should honour, and CommonCrawl's own
    user_agents: list[str] = field(
        default_factory=lambda: ["CCBot", "GPTBot", "Google-Extended", "anthropic-ai", "ClaudeBot", "Applebot-Extended"]
    )

    def setup(self) -> None:
        if not self.snapshot_dir or not os.path.isdir(self.snapshot_dir):
            raise FileNotFoundError(
                f"robots.snapshot_dir {self.snapshot_dir!r} is not a folder of <host>.txt robots.txt files"
            )
        self._parsers: dict[str, RobotFileParser | None] = {}

    def _parser(self, host: str) -> RobotFileParser | None:
        if host not in self._parsers:
            parser = None
            for name in (host, host.removeprefix("www."), f"www.{host}"):
                for path in (os.path.join(self.snapshot_dir, f"{name}.txt"),
                             os.path.join(self.snapshot_dir, name, "robots.txt")):
                    if os.path.isfile(path):
                        parser = RobotFileParser()
                        with open(path, encoding="utf-8", errors="replace") as f:
                            parser.parse(f.read().splitlines())
                        break
                if parser is not None:
                    break
            self._parsers[host] = parser
        return self._parsers[host]

    def verdict(self, url: str | None) -> str | None:
        if not url:
            return None
        host = (urlsplit(url).hostname or "").lower()
        parser = self._parser(host) if host else None
        if parser is None:
            return None
        for agent in self.user_agents:
            if not parser.can_fetch(agent, url):
                return f"{self.name}:{agent}"
        return None

    def reason(self, row: dict[str, Any]) -> str | None:
        return self.verdict(row["url"])
