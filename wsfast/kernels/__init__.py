"""The hot-path kernels, in Cython when built, else in pure Python.

This is the one module that chooses the implementation. ``WSFAST_PURE`` set
to any non-empty value forces the pure-Python twins even when the extension
is installed. Type checkers always see the pure-Python module.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from . import _py

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "HAS_EXTENSION",
    "IMPLEMENTATION",
    "SIMD",
    "Frame",
    "FrameParser",
    "Utf8Validator",
    "build_frame",
    "frame_header",
    "mask",
    "mask_into",
    "parse_header",
    "validate_utf8",
]

PURE = bool(os.environ.get("WSFAST_PURE"))

_impl = _py
#: Whether the compiled extension is installed (whether or not it is used).
HAS_EXTENSION = False
#: The vector instruction set of the active kernels: "avx2", "scalar" or "none".
SIMD = "none"

if not TYPE_CHECKING:
    try:
        from . import _cy
    except ImportError:
        pass
    else:
        HAS_EXTENSION = True
        if not PURE:
            _impl = _cy
            SIMD = _cy.SIMD

#: ``"cython"`` or ``"python"``: which twin the names below are bound to.
IMPLEMENTATION = "cython" if _impl is not _py else "python"

DEFAULT_MAX_FRAME_SIZE = _py.DEFAULT_MAX_FRAME_SIZE
Frame = _impl.Frame
FrameParser = _impl.FrameParser
Utf8Validator = _impl.Utf8Validator
build_frame = _impl.build_frame
frame_header = _impl.frame_header
mask = _impl.mask
mask_into = _impl.mask_into
parse_header = _impl.parse_header
validate_utf8 = _impl.validate_utf8
