"""Speed patches of third-party libraries, kept apart from Winnow's own code.

Each module here replaces or wraps internals of a library (trafilatura, datatrove) with output-identical faster code.
Internals change between releases, so each patch names the versions it was tested on and, through
:func:`version_tested`, logs a WARNING and leaves the library untouched on any other version.  Each has an
output-equality test on documents inside the repository (``tests/filters/patches/``).
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version

log = logging.getLogger(__name__)
_WARNED: set[str] = set()


def version_tested(distribution: str, tested: tuple[str, ...], patch: str) -> bool:
    """Whether the installed ``distribution`` is one ``patch`` was tested on; if not, say so once per process."""
    try:
        installed = version(distribution)
    except PackageNotFoundError:
        installed = "not installed"
    if installed in tested:
        return True
    if patch not in _WARNED:
        _WARNED.add(patch)
        log.warning(
            "%s skipped: tested on %s %s, installed %s; running %s unpatched (same output, slower). "
            "Re-run tests/filters/patches/ against this version and add it to the patch's TESTED_VERSIONS.",
            patch,
            distribution,
            " / ".join(tested),
            installed,
            distribution,
        )
    return False
