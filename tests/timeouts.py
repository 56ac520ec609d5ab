"""The bound on every wait in the test suite, in seconds.

One constant for every module, scaled by ``WSFAST_TEST_TIMEOUT_FACTOR`` on
slow machines (as websockets' tests scale theirs with
``WEBSOCKETS_TESTS_TIMEOUT_FACTOR``). A wait that reaches it is a failure,
never the expected outcome: tests that wait for something *not* to happen use
their own short delays.
"""

from __future__ import annotations

import os

__all__ = ["TIMEOUT"]

#: Seconds any single wait may take before the test fails.
TIMEOUT = 10.0 * float(os.environ.get("WSFAST_TEST_TIMEOUT_FACTOR", "1"))
