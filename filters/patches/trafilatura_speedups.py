"""Output-preserving speed-ups of trafilatura, installed once per process by the extraction step.

Profiling trafilatura 2.x on the benchmark's real web pages (bench/bench_commoncrawl.py) puts about a third of its
time in places that do the same work more slowly than needed (item 4 is further down, by its code):

1. ``re:test(...)`` in its XPath expressions (EXSLT regular expressions) calls back into Python for *every* element an
   expression visits, even when the tested attribute is absent (the node-set is empty, the string is ``''``).  Each
   call is rewritten as ``((X) and re:test(X, P))`` when the pattern ``P`` cannot match the empty string: libxml2
   short-circuits ``and``, so elements without the attribute never leave C, and the result is the same by construction
   (an empty node-set tests ``''``, which ``P`` does not match).  The rewritten expressions (all of which select
   elements) are compiled with ``smart_strings=False``: the attribute values handed to ``re:test`` are then plain
   strings instead of "smart" strings that each carry a reference to their element.
2. ``lxml.html.HTMLParser`` looks up the Python class of every element proxy through a Python callback
   (``HtmlElementClassLookup``, per tag name).  trafilatura's parser gets a C-level ``ElementDefaultClassLookup`` with
   the same ``HtmlElement`` / ``HtmlComment`` / ``HtmlEntity`` / ``HtmlProcessingInstruction`` classes; only the
   form-specific subclasses (``FormElement``, ``InputElement`` ...) are not used, and trafilatura calls none of their
   methods.
3. ``htmlprocessing.prune_unwanted_nodes(..., with_backup=True)`` decides which matches are outermost by walking every
   match's ancestors (``any(a in matches for a in elem.iterancestors())``): the same set is computed here by walking
   from each match up to the first ancestor already known (memoised), which visits each node once.

``tests/filters/patches/test_trafilatura_speedups.py`` checks that ``extract()`` returns exactly the same text with and without them on
page of ``tests/fixtures/commoncrawl`` and ``tests/fixtures/html`` (and of the benchmark's real pages when the tests find them); ``make bench``
measures the gain.  On a trafilatura version not in :data:`TESTED_VERSIONS` it logs a WARNING and does nothing.  Set ``extract.speedups: false`` in a config to run trafilatura
untouched.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Iterator
from typing import Any

from filters.patches import version_tested

#: trafilatura releases these patches were checked on (output-equality test in tests/filters/patches/)
TESTED_VERSIONS = ("2.3.1",)
_INSTALLED = False
_REGEXP_NS = "http://exslt.org/regular-expressions"


def _unquoted(s: str, start: int = 0) -> Iterator[tuple[int, str]]:
    """``(index, character)`` of ``s`` from ``start``, passing over quoted strings (quotes included)."""
    quote = None
    for j in range(start, len(s)):
        c = s[j]
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        else:
            yield j, c


def _closing(s: str, i: int, pair: str = "()") -> int:
    """Index of the bracket closing the one at ``s[i]`` (``pair``: opening and closing), skipping quoted strings;
    -1 when it never closes."""
    opening, closing = pair
    depth = 0
    for j, c in _unquoted(s, i):
        if c == opening:
            depth += 1
        elif c == closing:
            depth -= 1
            if depth == 0:
                return j
    return -1


def _match_paren(s: str, i: int) -> int:
    """Index of the ``)`` closing the ``(`` at ``s[i]``, skipping quoted strings."""
    j = _closing(s, i)
    if j < 0:
        raise ValueError(f"unbalanced parentheses in XPath: {s!r}")
    return j


def _split_top_level(s: str, separator_at: Callable[[str, int], int]) -> list[str]:
    """``s`` split where ``separator_at(s, i)`` (the separator's length, 0 for none) finds one outside quotes and
    brackets; parts stripped."""
    parts: list[str] = []
    depth = start = 0
    for i, c in _unquoted(s):
        if i < start:  # inside the separator just found
            continue
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif depth == 0 and (n := separator_at(s, i)):
            parts.append(s[start:i].strip())
            start = i + n
    parts.append(s[start:].strip())
    return parts


def _split_args(s: str) -> list[str]:
    """Top-level comma-separated arguments of a function call body."""
    return _split_top_level(s, lambda t, i: int(t[i] == ","))


def _literal(arg: str) -> str | None:
    if len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in "'\"":
        return arg[1:-1]
    return None


def guard_regex_tests(path: str) -> str:
    """Rewrite each ``re:test(X, 'P'[, 'F'])`` whose pattern cannot match ``''`` as ``((X) and re:test(...))``."""
    out, i = [], 0
    while True:
        j = path.find("re:test(", i)
        if j < 0:
            out.append(path[i:])
            return "".join(out)
        k = _match_paren(path, j + len("re:test"))
        call = path[j : k + 1]
        args = _split_args(path[j + len("re:test(") : k])
        pattern = _literal(args[1]) if len(args) >= 2 else None
        flags = _literal(args[2]) if len(args) == 3 else ""
        out.append(path[i:j])
        safe = pattern is not None and flags is not None and set(flags) <= {"i"}
        if safe:
            compiled = re.compile(pattern, re.IGNORECASE if "i" in flags else 0)
            safe = compiled.search("") is None
        out.append(f"(({args[0]}) and {call})" if safe else call)
        i = k + 1


# -- 4. attribute-test XPaths evaluated in Python ------------------------------------------------------------------
# ``.//*[self::div or self::p ...][<attribute tests>]``: libxml2 walks every descendant through its generic XPath
# machinery; lxml's ``iterdescendants(*tags)`` finds the same elements in C and the attribute tests (a dict of the
# element's attributes) run in Python, 2-3x faster on the real pages.  Only a small grammar is compiled (the one
# trafilatura uses): ``@a``, ``@a='x'``, ``contains(@a, 'x')``, ``starts-with(@a|@b, 'x')``,
# ``contains(translate(@a, 'X', 'x'), 'x')``, ``re:test(@a|@b, 'P')``, ``self::t``, ``not(...)``, joined by ``or``;
# anything else keeps its XPath.  ``@a|@b`` as a string is the first of the two in the element's attribute order, as
# libxml2 orders a node-set (tested).  ``.//*`` over every element is not compiled: there a Python walk is no faster.

_LIT = r"'([^']*)'"
_ATTRS = r"(@[\w:-]+(?:\s*\|\s*@[\w:-]+)*)"


def _split_top(s: str, word: str) -> list[str]:
    """``s`` split at the top-level operator ``word`` (``or``) standing between whitespace."""

    def at(t: str, i: int) -> int:
        end = i + len(word)
        hit = t.startswith(word, i) and i > 0 and t[i - 1].isspace() and end < len(t) and t[end].isspace()
        return len(word) if hit else 0

    return _split_top_level(s, at)


def _attr_getter(spec: str) -> tuple[tuple[str, ...], Callable[[dict, list], str | None]]:
    names = tuple(a.strip()[1:] for a in spec.split("|"))
    if len(names) == 1:
        n = names[0]
        return names, lambda d, order: d.get(n)

    def first(d: dict, order: list) -> str | None:  # the first of the attributes in the element's order
        for k in order:
            if k in names:
                return d[k]
        return None

    return names, first


def _atom(s: str):
    """(predicate(d, order, tag) -> bool) for one atom, or None when not understood."""
    s = s.strip()
    while s.startswith("(") and s.endswith(")") and _closes_at_end(s):
        s = s[1:-1].strip()
    m = re.fullmatch(r"self::([\w-]+)", s)
    if m:
        t = m[1]
        return lambda d, o, tag: tag == t
    m = re.fullmatch(r"not\((.*)\)", s, re.S)
    if m and _closes_at_end(s[3:]):
        inner = _or_list(m[1])
        if inner is None:
            return None
        return lambda d, o, tag: not inner(d, o, tag)
    m = re.fullmatch(r"@([\w:-]+)", s)
    if m:
        n = m[1]
        return lambda d, o, tag: n in d
    m = re.fullmatch(r"@([\w:-]+)\s*=\s*" + _LIT, s)
    if m:
        n, lit = m[1], m[2]
        return lambda d, o, tag: d.get(n) == lit
    m = re.fullmatch(r"(contains|starts-with)\(\s*" + _ATTRS + r"\s*,\s*" + _LIT + r"\s*\)", s)
    if m:
        _, get = _attr_getter(m[2])
        lit = m[3]
        if m[1] == "contains":
            return lambda d, o, tag: lit in (get(d, o) or "")
        return lambda d, o, tag: (get(d, o) or "").startswith(lit)
    m = re.fullmatch(
        r"contains\(\s*translate\(\s*"
        + _ATTRS
        + r"\s*,\s*"
        + _LIT
        + r"\s*,\s*"
        + _LIT
        + r"\s*\)\s*,\s*"
        + _LIT
        + r"\s*\)",
        s,
    )
    if m:
        _, get = _attr_getter(m[1])
        src, dst, lit = m[2], m[3], m[4]
        table: dict[int, Any] = {}
        for i, ch in enumerate(src):
            table.setdefault(ord(ch), dst[i] if i < len(dst) else None)
        return lambda d, o, tag: lit in (get(d, o) or "").translate(table)
    m = re.fullmatch(r"re:test\(\s*" + _ATTRS + r"\s*,\s*" + _LIT + r"\s*\)", s)
    if m:
        _, get = _attr_getter(m[1])
        rx = re.compile(m[2])
        search = rx.search
        return lambda d, o, tag: search(get(d, o) or "") is not None
    return None


def _closes_at_end(s: str) -> bool:
    """Whether the first ``(`` of ``s`` closes at its last character."""
    return _closing(s, s.index("(")) == len(s) - 1


def _or_list(s: str):
    parts = _split_top(s, "or")
    atoms = [_atom(p) for p in parts]
    if any(a is None for a in atoms) or not atoms:
        return None
    if len(atoms) == 1:
        return atoms[0]
    return lambda d, o, tag: any(a(d, o, tag) for a in atoms)


def _predicates(s: str) -> list[str] | None:
    """``[a][b]`` -> ['a', 'b']."""
    out, i = [], 0
    s = s.strip()
    while i < len(s):
        if s[i] != "[":
            return None
        j = _closing(s, i, "[]")
        if j < 0:
            return None
        out.append(s[i + 1 : j])
        i = j + 1
        while i < len(s) and s[i].isspace():
            i += 1
    return out


class PythonXPath:
    """``.//*[...][...]`` over attribute tests, evaluated by walking the element's descendants in Python."""

    def __init__(self, original: Any, tags: tuple[str, ...], preds: list, empty_ok: bool | None):
        self.original, self.path = original, original.path
        self.tags, self.preds, self.empty_ok = tags, preds, empty_ok

    def __call__(self, tree: Any, **kw: Any) -> list:
        from lxml import etree

        if kw or not isinstance(tree, etree._Element):
            return self.original(tree, **kw)
        it = tree.iterdescendants(*self.tags) if self.tags else tree.iterdescendants(etree.Element)
        preds, out = self.preds, []
        empty_ok = self.empty_ok
        for el in it:
            keys = el.keys()
            if not keys:
                if empty_ok is None:
                    tag = el.tag
                    if all(p({}, keys, tag) for p in preds):
                        out.append(el)
                elif empty_ok:
                    out.append(el)
                continue
            d = dict(el.items())
            tag = el.tag
            for p in preds:
                if not p(d, keys, tag):
                    break
            else:
                out.append(el)
        return out


def compile_python(xp: Any) -> PythonXPath | None:
    path = " ".join(xp.path.split())
    if not path.startswith(".//*["):
        return None
    preds = _predicates(path[4:])
    if not preds:
        return None
    tags = None
    first = _split_top(preds[0], "or")
    if all(re.fullmatch(r"self::([\w-]+)", p) for p in first):
        tags = tuple(p[6:] for p in first)
        preds = preds[1:]
    else:
        return None  # `.//*` over every element: libxml2 is as fast as a Python walk there
    funcs = [_or_list(p) for p in preds]
    if any(f is None for f in funcs):
        return None
    # elements without attributes: the verdict depends on the tag only when a self:: test appears in a predicate
    uses_tag = any("self::" in p for p in preds)
    empty_ok = None if uses_tag else all(f({}, [], None) for f in funcs)
    return PythonXPath(xp, tags, funcs, empty_ok)


def _rewritten(xp: Any) -> Any:
    from lxml.etree import XPath

    new = guard_regex_tests(xp.path)
    if new == xp.path:
        return xp
    return XPath(new, namespaces={"re": _REGEXP_NS}, smart_strings=False)


#: id(trafilatura's XPath) -> (that XPath, its replacement); holding the old object keeps its id from being reused
_REPLACED: dict[int, tuple[Any, Any]] = {}


def original(xp: Any) -> Any:
    """trafilatura's own expression behind ``xp`` (``xp`` itself when it was not replaced)."""
    for old, new in _REPLACED.values():
        if new is xp:
            return old
    return xp


def _worth_replacing(xp: Any) -> bool:
    return "re:test(" in xp.path or compile_python(xp) is not None


def _patch_xpaths() -> int:
    """Replace every XPath held by a trafilatura module that has ``re:test`` or compiles to Python (lists in place,
    globals by identity)."""
    import trafilatura
    from lxml.etree import XPath

    replaced = _REPLACED

    def swap(old: Any) -> Any:
        if any(old is new for _, new in replaced.values()):  # a list shared by two modules, already rewritten
            return old
        return replaced.setdefault(id(old), (old, compile_python(old) or _rewritten(old)))[1]

    modules = [
        importlib.import_module(f"trafilatura.{m.name}") for m in pkgutil.iter_modules(trafilatura.__path__)
    ]
    for mod in modules:
        for name, value in list(vars(mod).items()):
            if isinstance(value, XPath) and _worth_replacing(value):
                setattr(mod, name, swap(value))
            elif isinstance(value, list) and value and all(isinstance(x, XPath) for x in value):
                for n, x in enumerate(value):
                    if _worth_replacing(x):
                        value[n] = swap(x)
    return len(replaced)


def _outer_matches(matches: dict) -> list:
    """The matches with no ancestor among the matches, in ``matches`` order (as trafilatura computes them)."""
    covered: dict = {}  # element -> whether it or one of its ancestors is a match

    def has_matched_ancestor(elem) -> bool:
        chain = []
        node = elem.getparent()
        result = False
        while node is not None:
            known = covered.get(node)
            if known is not None:
                result = known
                break
            if node in matches:
                result = True
                break
            chain.append(node)
            node = node.getparent()
        for n in chain:
            covered[n] = result
        if node is not None:
            covered.setdefault(node, True if node in matches else result)
        return result

    return [elem for elem in matches if not has_matched_ancestor(elem)]


def _patch_prune() -> None:
    from trafilatura import core, external, htmlprocessing, main_extractor

    original = htmlprocessing.prune_unwanted_nodes
    delete_element = htmlprocessing.delete_element

    def prune_unwanted_nodes(tree, nodelist, with_backup=False):
        if not with_backup:
            return original(tree, nodelist, with_backup)
        matches = dict.fromkeys(elem for expression in nodelist for elem in expression(tree))
        outer = _outer_matches(matches)
        old_len = len(tree.text_content())
        if old_len - sum(len(elem.text_content()) for elem in outer) > old_len / 7:
            for elem in outer:
                delete_element(elem)
        return tree

    prune_unwanted_nodes.__wrapped__ = original  # type: ignore[attr-defined]
    for mod in (htmlprocessing, core, external, main_extractor):
        if getattr(mod, "prune_unwanted_nodes", None) is original:
            mod.prune_unwanted_nodes = prune_unwanted_nodes


def _patch_parser() -> None:
    from lxml import etree
    from lxml.html import HtmlComment, HtmlElement, HtmlEntity, HtmlProcessingInstruction
    from trafilatura import utils

    utils.HTML_PARSER.set_element_class_lookup(
        etree.ElementDefaultClassLookup(
            element=HtmlElement, comment=HtmlComment, pi=HtmlProcessingInstruction, entity=HtmlEntity
        )
    )


def install() -> bool:
    """Apply the speed-ups (items 1-4 above) to this process's trafilatura (idempotent); True when installed now."""
    global _INSTALLED
    if _INSTALLED or not version_tested(
        "trafilatura", TESTED_VERSIONS, "trafilatura speed-ups (filters/patches)"
    ):
        return False
    _patch_xpaths()
    _patch_parser()
    _patch_prune()
    _INSTALLED = True
    return True
