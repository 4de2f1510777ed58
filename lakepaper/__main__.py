"""``python -m lakepaper`` is the ``lakepaper`` command."""

import sys

from lakepaper.cli import main

if __name__ == "__main__":  # worker processes are spawned and re-import this module: run only once
    sys.exit(main())
