"""``python -m wsfast.cli``: the same as ``wsfast``."""

import sys

from . import main

sys.exit(main())
