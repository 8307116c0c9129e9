"""Personal data in kept text: e-mail addresses, public IP addresses and phone numbers replaced with placeholders.

The e-mail and IP rules (regular expressions, public-IP validation, replacement values) are datatrove's
``PIIFormatter``, reused through its ``PIIReplacer`` objects; phone numbers are a rule of ours.  Two differences, both
for determinism: the placeholders cycle per document (datatrove's cycle runs on across documents, so a page's output
would depend on the pages before it in the same worker), and the count of replacements is kept in ``pii_count``.

``pii_fraction`` is the share of the page's characters that were personal data; a page dominated by it (a staff
directory, a list of e-mail addresses) is rejected by the ``pii_filter`` step of the recipe (a ``ScoreFilter`` on
that column), and both columns stay on rejected rows so the cut can be re-chosen in DuckDB.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from pipelines.core.steps import Step, StepResult, set_column, texts

#: international or North-American phone numbers written with separators: 9 to 15 digits in groups
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}(?![\w-])"
)
PHONE_REPLACEMENT = "+1 555 0100"


_DOTTED_QUAD = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")


def _phone_ok(match: str) -> bool:
    """9 to 15 digits (dates such as 2024-11-30 and version numbers have fewer), and not an IPv4 address (private
    addresses are kept by the IP rule; the IP placeholders must not be caught again)."""
    digits = sum(c.isdigit() for c in match)
    return 9 <= digits <= 15 and not _DOTTED_QUAD.fullmatch(match)


class _Replacer:
    """One rule: a compiled pattern, its placeholders (cycled within one document) and an optional validator."""

    def __init__(self, regex: re.Pattern, replacements: tuple[str, ...], validator: Any = None):
        self.regex, self.replacements, self.validator = regex, replacements, validator

    def apply(self, text: str) -> tuple[str, int, int]:
        """(new text, replacements made, characters replaced)."""
        n = chars = 0

        def sub(m: re.Match) -> str:
            nonlocal n, chars
            value = m.group(0)
            if self.validator is not None and not self.validator(value):
                return value
            out = self.replacements[n % len(self.replacements)]
            n += 1
            chars += len(value)
            return out

        return self.regex.sub(sub, text), n, chars


@dataclass
class PIIRedact(Step):
    """Replaces e-mails, public IPs (datatrove's rules) and phone numbers; adds ``pii_count`` and ``pii_fraction``."""

    kind: ClassVar[str] = "transform"

    emails: bool = True
    ips: bool = True
    only_public_ips: bool = True
    phones: bool = True

    def adds(self) -> dict[str, pa.DataType]:
        return {"pii_count": pa.int32(), "pii_fraction": pa.float32()}

    def setup(self) -> None:
        from datatrove.pipeline.formatters.pii import PIIFormatter

        reference = PIIFormatter(only_remove_public_ips=self.only_public_ips)
        self._rules: list[_Replacer] = []
        for wanted, rule in ((self.emails, reference.emails_replacer), (self.ips, reference.ip_replacer)):
            if wanted:
                self._rules.append(_Replacer(rule.regex, tuple(rule.replacements), rule.validator))
        if self.phones:
            self._rules.append(_Replacer(_PHONE, (PHONE_REPLACEMENT,), _phone_ok))

    def redact(self, text: str) -> tuple[str, int, int]:
        """(redacted text, replacements, characters of personal data in the original)."""
        total = chars = 0
        for rule in self._rules:
            text, n, c = rule.apply(text)
            total, chars = total + n, chars + c
        return text, total, chars

    def process(self, batch: pa.Table) -> StepResult:
        out, counts, fractions = [], [], []
        changed = 0
        for text in texts(batch):
            new, n, chars = self.redact(text)
            out.append(new)
            counts.append(n)
            fractions.append(chars / len(text) if text else 0.0)
            changed += n > 0
        batch = set_column(batch, "text", out, pa.string())
        batch = set_column(batch, "pii_count", counts, pa.int32())
        batch = set_column(batch, "pii_fraction", fractions, pa.float32())
        return StepResult(batch, changed=changed)
