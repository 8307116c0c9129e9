"""Finding a run's inputs: INPUT names a file or object, a folder or prefix (searched with the reader's glob
patterns) or a glob, locally or on object storage; the answer is sorted absolute paths or URIs either way."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence

from pipelines.core import storage


def _component_regex(comp: str) -> str:
    out, i = [], 0
    while i < len(comp):
        c = comp[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and "]" in comp[i + 1 :]:
            j = comp.index("]", i + 1)
            body = comp[i + 1 : j]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def pattern_regex(pattern: str) -> re.Pattern:
    """A glob pattern (``**`` = any number of folders, as ``glob(recursive=True)``) as a regex on relative paths."""
    parts, out = pattern.strip("/").split("/"), []
    for k, comp in enumerate(parts):
        last = k == len(parts) - 1
        if comp == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
        else:
            out.append(_component_regex(comp) + ("" if last else "/"))
    return re.compile("".join(out) + r"\Z")


def hidden(rel: str) -> bool:
    """Whether a relative path has a component starting with a dot (``glob``'s wildcards never match one)."""
    return any(p.startswith(".") for p in rel.split("/"))


def _discover_local(spec: str, patterns: Sequence[str]) -> list[str]:
    if os.path.isfile(spec):
        return [os.path.abspath(spec)]
    if os.path.isdir(spec):
        found: set[str] = set()
        for pat in patterns:
            found.update(p for p in glob.glob(os.path.join(spec, pat), recursive=True) if os.path.isfile(p))
        return sorted(os.path.abspath(p) for p in found)
    matches = [p for p in glob.glob(spec, recursive=True) if os.path.isfile(p)]
    if not matches:
        raise FileNotFoundError(f"INPUT {spec!r} names no file, folder or glob match")
    return sorted({os.path.abspath(p) for p in matches})


def discover(spec: str, patterns: Sequence[str]) -> list[str]:
    """INPUT: a file or object, a folder or prefix (searched with ``patterns``) or a glob; sorted absolute paths
    or URIs.  Like ``glob``, names starting with a dot are not matched by wildcards.
    """
    if not storage.is_uri(spec):
        return _discover_local(spec, patterns)
    spec = storage.normalize(spec)
    scheme, rest = storage.split_uri(spec)
    if not any(c in rest for c in "*?["):
        if storage.isfile(spec):
            return [spec]
        regexes = [pattern_regex(p) for p in patterns]
        found = []
        for o in storage.list_files(spec):
            rel = o.uri[len(spec) + 1 :]
            if not hidden(rel) and any(r.match(rel) for r in regexes):
                found.append(o.uri)
        if not found and not storage.isdir(spec):
            raise FileNotFoundError(
                f"INPUT {spec!r} names no object or prefix (check the bucket, the key and the "
                "credentials/endpoint in AWS_* variables)"
            )
        return sorted(found)
    comps = rest.split("/")
    fixed = next(i for i, c in enumerate(comps) if any(ch in c for ch in "*?["))
    if fixed == 0:
        raise ValueError(f"INPUT {spec!r}: the bucket name cannot hold a wildcard")
    base = f"{scheme}://" + "/".join(comps[:fixed])
    regex = pattern_regex("/".join(comps[fixed:]))
    found = [
        o.uri
        for o in storage.list_files(base)
        if not hidden(o.uri[len(base) + 1 :]) and regex.match(o.uri[len(base) + 1 :])
    ]
    if not found:
        raise FileNotFoundError(f"INPUT {spec!r} matches no object")
    return sorted(found)
