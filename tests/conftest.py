"""Shared fixtures: every kernel test runs over both implementations."""

from __future__ import annotations

import os
import types

import pytest

from wsfast.kernels import _py

IMPLS: list[types.ModuleType] = [_py]
IDS = ["py"]
try:
    from wsfast.kernels import _cy
except ImportError:
    if os.environ.get("WSFAST_BUILD_EXTENSION") == "yes":
        raise  # CI builds the extension: its absence is a failure, not a skip.
else:
    IMPLS.append(_cy)
    IDS.append("cy")


@pytest.fixture(params=IMPLS, ids=IDS)
def impl(request: pytest.FixtureRequest) -> types.ModuleType:
    """The kernel module under test: ``_py``, then ``_cy`` when it is built."""
    module: types.ModuleType = request.param
    return module
