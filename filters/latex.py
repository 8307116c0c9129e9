"""LaTeX cleanup for arXiv (LLaMA-1): comments, user macros, preamble and bibliography out.

Order matters: comments first (a ``%`` can hide a ``\\input`` or half a macro), then macro definitions are collected
from the whole source (most live in the preamble) and expanded, then everything before the first sectioning command
and the bibliography are dropped.  Section matching covers ``\\part \\chapter \\section \\subsection
\\subsubsection \\paragraph \\subparagraph`` and their starred forms; RedPajama's ported regex forgets
``\\subparagraph``, which is why this one is spelled out and tested.

Appendices: RedPajama v1 (``arxiv_cleaner.py``; the regex data-juicer ports as ``remove_bibliography_mapper``) cuts
everything from ``\\appendix`` on together with the bibliography, the LLaMA-1 paper only names the bibliography.
``keep_appendix`` chooses; the default (``False``) follows RedPajama, the reference implementation of the recipe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Literal

import pyarrow as pa

from pipelines.core.steps import Step, StepResult, set_column, texts

SECTION_COMMANDS = ("part", "chapter", "section", "subsection", "subsubsection", "paragraph", "subparagraph")
SECTION = re.compile(r"\\(" + "|".join(SECTION_COMMANDS) + r")\*?(?![A-Za-z@])\s*[\[{]")
_COMMENT = re.compile(r"(?<!\\)((?:\\\\)*)%.*")
_BIB_ENV = re.compile(r"\\begin\{thebibliography\}.*?(\\end\{thebibliography\}|\Z)", re.S)
_BIB_CMD = re.compile(
    r"\\(bibliography|bibliographystyle|addbibresource)\s*\{[^}]*\}|\\printbibliography(\[[^\]]*\])?"
)
_END_DOC = re.compile(r"\\end\{document\}")
#: where the appendix starts: ``\appendix`` (RedPajama's marker) or the ``appendix``/``appendices`` environments
_APPENDIX = re.compile(r"\\appendix(?![A-Za-z@])|\\begin\{(appendix|appendices)\}")
_BEGIN_DOC = re.compile(r"\\begin\s*\{document\}")
_DEF_START = re.compile(r"\\(newcommand|renewcommand|providecommand)\*?\s*|\\[egx]?def\s*(?=\\)")


class MacroExpansionError(ValueError):
    """A macro kept expanding past the depth or size limit (self-referencing or exponential)."""

    def __init__(self, message: str, names: set[str]):
        super().__init__(message)
        self.names = names


def strip_comments(text: str) -> str:
    """Remove ``%`` comments (not ``\\%``); lines that were only a comment disappear entirely."""
    out = []
    for line in text.split("\n"):
        if "%" not in line:
            out.append(line)
            continue
        stripped = _COMMENT.sub(r"\1", line)
        if stripped.strip() or not line.lstrip().startswith("%"):
            out.append(stripped)
    return "\n".join(out)


def _group(text: str, i: int) -> tuple[str, int] | None:
    """The balanced ``{...}`` group starting at ``text[i]`` (spaces skipped): (content, end index), or None."""
    while i < len(text) and text[i] in " \t\n":
        i += 1
    if i >= len(text) or text[i] != "{":
        return None
    depth = 0
    for j in range(i, len(text)):
        c = text[j]
        if c == "{" and (j == 0 or text[j - 1] != "\\"):
            depth += 1
        elif c == "}" and text[j - 1] != "\\":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j], j + 1
    return None


def _argument(text: str, i: int) -> tuple[str, int] | None:
    """One macro argument: a braced group or a single token."""
    g = _group(text, i)
    if g is not None:
        return g
    while i < len(text) and text[i] in " \t\n":
        i += 1
    if i >= len(text):
        return None
    if text[i] == "\\":
        m = re.match(r"\\([A-Za-z@]+|.)", text[i:])
        return (m.group(0), i + m.end()) if m else None
    return text[i], i + 1


@dataclass(frozen=True)
class Macro:
    nargs: int
    body: str
    default: str | None = None  # optional first argument's default (\newcommand{\x}[2][d]{...})


def extract_macros(text: str) -> tuple[dict[str, Macro], str]:
    """User macros defined with ``\\newcommand``/``\\renewcommand``/``\\providecommand``/``\\def``, and the text
    with those definitions removed.  Definitions that cannot be parsed are left in place."""
    macros: dict[str, Macro] = {}
    out, pos = [], 0
    for m in _DEF_START.finditer(text):
        if m.start() < pos:
            continue
        i = m.end()
        if m.group(1):  # \newcommand{\name}[n][default]{body} or \newcommand\name...
            g = _group(text, i)
            if g is not None:
                name, i = g[0].strip(), g[1]
            else:
                nm = re.match(r"\s*(\\[A-Za-z@]+)", text[i:])
                if not nm:
                    continue
                name, i = nm.group(1), i + nm.end()
            nargs, default = 0, None
            if am := re.match(r"\s*\[(\d)\]", text[i:]):
                nargs, i = int(am.group(1)), i + am.end()
                if dm := re.match(r"\s*\[([^\]]*)\]", text[i:]):
                    default, i = dm.group(1), i + dm.end()
        else:  # \def\name#1#2{body}
            nm = re.match(r"(\\[A-Za-z@]+)((?:#\d)*)", text[i:])
            if not nm:
                continue
            name, nargs, i = nm.group(1), len(nm.group(2)) // 2, i + nm.end()
            default = None
        body = _group(text, i)
        if body is None or not re.fullmatch(r"\\[A-Za-z@]+", name) or name[1:] in SECTION_COMMANDS:
            continue  # a redefined \section must stay a section
        macros[name[1:]] = Macro(nargs, body[0], default)
        out.append(text[pos : m.start()])
        pos = body[1]
    out.append(text[pos:])
    return macros, "".join(out)


def expand_macros(text: str, macros: dict[str, Macro], max_depth: int = 10, max_growth: float = 4.0) -> str:
    """Inline ``macros`` until none is left; raise :class:`MacroExpansionError` past ``max_depth`` passes or when
    the text grows beyond ``max_growth`` times its size (plus 100 kB)."""
    if not macros:
        return text
    names = sorted(macros, key=len, reverse=True)
    pattern = re.compile(r"\\(" + "|".join(re.escape(n) for n in names) + r")(?![A-Za-z@])")
    limit = int(len(text) * max_growth) + 100_000
    for _ in range(max_depth):
        out, pos, hits = [], 0, 0
        for m in pattern.finditer(text):
            if m.start() < pos:
                continue
            macro = macros[m.group(1)]
            i, args = m.end(), []
            if macro.default is not None:
                if om := re.match(r"\[([^\]]*)\]", text[i:]):
                    args.append(om.group(1))
                    i += om.end()
                else:
                    args.append(macro.default)
            while len(args) < macro.nargs:
                a = _argument(text, i)
                if a is None:
                    break
                args.append(a[0])
                i = a[1]
            if len(args) < macro.nargs:
                continue
            body = macro.body
            for k, a in enumerate(args, start=1):
                body = body.replace(f"#{k}", a)
            out.append(text[pos : m.start()])
            out.append(body)
            pos, hits = i, hits + 1
        if hits == 0:
            return text
        out.append(text[pos:])
        text = "".join(out)
        if len(text) > limit:
            names = {m.group(1) for m in pattern.finditer(text)}
            raise MacroExpansionError(f"macro expansion grew the text past {limit} characters", names)
    names = {m.group(1) for m in pattern.finditer(text)}
    if names:
        raise MacroExpansionError(f"macros {sorted(names)} still expanding after {max_depth} passes", names)
    return text


def drop_bibliography(text: str) -> str:
    text = _BIB_ENV.sub("", text)
    return _BIB_CMD.sub("", text)


def first_section(text: str) -> int | None:
    """Where the first sectioning command is, looking after ``\\begin{document}`` when there is one (a preamble
    may mention ``\\section`` while redefining it)."""
    begin = _BEGIN_DOC.search(text)
    m = SECTION.search(text, begin.end() if begin else 0)
    return m.start() if m else None


def drop_appendix(text: str) -> str:
    """Everything before the first appendix marker (after the first section, where this is called)."""
    m = _APPENDIX.search(text)
    return text[: m.start()] if m else text


def clean_latex(
    text: str,
    max_depth: int = 10,
    max_growth: float = 4.0,
    on_loop: str = "reject",
    keep_appendix: bool = False,
) -> tuple[str | None, str | None]:
    """(cleaned text, None) or (None, reason) for a resolved LaTeX source.

    ``on_loop``: ``reject`` a paper whose macros do not stop expanding, or ``keep`` it with those macros left
    unexpanded (TeX-level recursion guarded by ``\\@ifnextchar`` is real, e.g. LEGWORK's ``\\gobblenextarg``).
    """
    text = strip_comments(text)
    macros, body = extract_macros(text)
    for _ in range(3):
        try:
            text = expand_macros(body, macros, max_depth, max_growth)
            break
        except MacroExpansionError as exc:
            if on_loop != "keep":
                return None, "latex:macro_expansion_limit"
            macros = {k: v for k, v in macros.items() if k not in exc.names}
    else:
        return None, "latex:macro_expansion_limit"
    start = first_section(text)
    if start is None:
        return None, "latex:no_section"
    text = text[start:]
    if end := _END_DOC.search(text):
        text = text[: end.start()]
    if not keep_appendix:
        text = drop_appendix(text)
    text = drop_bibliography(text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
    return text, None


_PROSE_ENV_DROP = re.compile(r"\\begin\{(equation|align|figure|table|tabular)\*?\}.*?\\end\{\1\*?\}", re.S)
_PROSE_CMD_ARG = re.compile(r"\\(?:cite[pt]?|ref|label|eqref|url|includegraphics)\*?(?:\[[^\]]*\])?\{[^}]*\}")
_PROSE_CMD = re.compile(r"\\[a-zA-Z]+\*?(?:\[[^\]]*\])?")


def latex_to_prose(tex: str) -> str:
    """A light LaTeX -> prose conversion for model training text (the corpus keeps LaTeX; a language model of
    reference *prose* should not learn markup): the body after ``\\begin{document}``, comments, maths,
    floats, references and commands out, braces dropped."""
    if "\\begin{document}" in tex:
        tex = tex.split("\\begin{document}", 1)[1]
    tex = tex.split("\\end{document}", 1)[0]
    tex = strip_comments(tex)
    tex = _PROSE_ENV_DROP.sub("", tex)
    tex = _PROSE_CMD_ARG.sub("", tex)
    tex = re.sub(r"\$[^$]*\$", "", tex)
    tex = _PROSE_CMD.sub("", tex)
    return tex.replace("{", "").replace("}", "").replace("~", " ")


@dataclass
class CleanLatex(Step):
    """Transform: LLaMA-1's arXiv cleanup; papers whose macros never stop expanding or that have no section go."""

    kind: ClassVar[str] = "transform"

    max_macro_depth: int = 10
    max_macro_growth: float = 4.0
    #: reject: a paper whose macros never stop expanding is rejected; keep: those macros stay unexpanded
    on_macro_loop: Literal["reject", "keep"] = "reject"
    #: keep the appendices (``False``: cut from ``\\appendix`` on, as RedPajama v1 does)
    keep_appendix: bool = False

    def process(self, batch: pa.Table) -> StepResult:
        out, reasons = [], []
        for text in texts(batch):
            cleaned, reason = clean_latex(
                text, self.max_macro_depth, self.max_macro_growth, self.on_macro_loop, self.keep_appendix
            )
            out.append(text if cleaned is None else cleaned)
            reasons.append(reason)
        changed = sum(r is None for r in reasons)
        return StepResult(set_column(batch, "text", out, pa.large_string()), reasons, changed)
