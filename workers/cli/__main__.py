"""`python -m workers.cli` is `relay` (how `relay up` starts its workers with the same interpreter)."""

import sys

from workers.cli import main

sys.exit(main())
