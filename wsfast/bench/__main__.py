"""``python -m wsfast.bench URL ...``: the same as ``wsfast bench``."""

import sys

from .command import main

sys.exit(main())
