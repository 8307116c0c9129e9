"""``python -m winnow`` is the ``winnow`` command."""

import sys

from pipelines.cli import main

if __name__ == "__main__":
    sys.exit(main())
