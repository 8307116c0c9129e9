"""Output-preserving speed-ups of trafilatura, installed once per process by the extraction step.

Profiling trafilatura 2.x on the real pages of ../shared/corpus (bench/bench_commoncrawl.py) puts about a third of its
time in three places that do the same work more slowly than needed:

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

``tests/test_trafilatura_speedups.py`` checks that ``extract()`` returns exactly the same text with and without them on
every real page; ``make bench`` measures the gain.  Set ``extract.speedups: false`` in a config to run trafilatura
untouched.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from typing import Any

_INSTALLED = False
_REGEXP_NS = "http://exslt.org/regular-expressions"


def _match_paren(s: str, i: int) -> int:
    """Index of the ``)`` closing the ``(`` at ``s[i]``, skipping quoted strings."""
    depth, quote = 0, None
    for j in range(i, len(s)):
        c = s[j]
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return j
    raise ValueError(f"unbalanced parentheses in XPath: {s!r}")


def _split_args(s: str) -> list[str]:
    """Top-level comma-separated arguments of a function call body."""
    args, depth, quote, start = [], 0, None, 0
    for j, c in enumerate(s):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == "," and depth == 0:
            args.append(s[start:j].strip())
            start = j + 1
    args.append(s[start:].strip())
    return args


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


def _rewritten(xp: Any) -> Any:
    from lxml.etree import XPath

    new = guard_regex_tests(xp.path)
    if new == xp.path:
        return xp
    return XPath(new, namespaces={"re": _REGEXP_NS}, smart_strings=False)


def _patch_xpaths() -> int:
    """Replace every XPath with ``re:test`` held by a trafilatura module (lists in place, globals by identity)."""
    import trafilatura
    from lxml.etree import XPath

    replaced: dict[
        int, tuple[Any, Any]
    ] = {}  # id(old) -> (old, new): holding `old` keeps its id from being reused

    def swap(old: Any) -> Any:
        if any(old is new for _, new in replaced.values()):  # a list shared by two modules, already rewritten
            return old
        return replaced.setdefault(id(old), (old, _rewritten(old)))[1]

    modules = [
        importlib.import_module(f"trafilatura.{m.name}") for m in pkgutil.iter_modules(trafilatura.__path__)
    ]
    for mod in modules:
        for name, value in list(vars(mod).items()):
            if isinstance(value, XPath) and "re:test(" in value.path:
                setattr(mod, name, swap(value))
            elif isinstance(value, list) and value and all(isinstance(x, XPath) for x in value):
                for n, x in enumerate(value):
                    if "re:test(" in x.path:
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
    """Apply the three speed-ups to this process's trafilatura (idempotent); True when installed now."""
    global _INSTALLED
    if _INSTALLED:
        return False
    _patch_xpaths()
    _patch_parser()
    _patch_prune()
    _INSTALLED = True
    return True
