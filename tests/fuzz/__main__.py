"""``python -m tests.fuzz --minutes N``: the long fuzz run (see run.py)."""

import sys

from .run import main

sys.exit(main())
