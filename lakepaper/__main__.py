"""``python -m lakepaper`` is the ``lakepaper`` command."""

import sys

from lakepaper.cli import main

sys.exit(main())
