"""``python -m noisereg``: the command line (see :mod:`noisereg.cli`)."""

import sys

from noisereg.cli import main

sys.exit(main())
