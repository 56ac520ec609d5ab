"""Build the optional Cython kernels; everything else is in pyproject.toml.

WSFAST_BUILD_EXTENSION: "yes" makes a failed compile fail the build, "no"
builds no extension, unset tries and falls back to the pure-Python twins.
"""

import os
import sys

from setuptools import Extension, setup

BUILD_EXTENSION = os.environ.get("WSFAST_BUILD_EXTENSION", "").lower()
if BUILD_EXTENSION not in ("", "yes", "no"):
    sys.exit(f"WSFAST_BUILD_EXTENSION must be yes, no or unset, not {BUILD_EXTENSION!r}")

COMPILER_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "embedsignature": True,
    "embedsignature.format": "clinic",
}


def extensions():
    if BUILD_EXTENSION == "no":
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        if BUILD_EXTENSION == "yes":
            raise
        print("wsfast: Cython is not available, installing the pure-Python kernels", file=sys.stderr)
        return []
    compile_args = [] if sys.platform == "win32" else ["-O3", "-fno-strict-aliasing"]

    def with_kernels(name, source):
        """An extension that includes the C kernels' header."""
        return Extension(
            name,
            [source],
            include_dirs=["wsfast/kernels"],
            depends=["wsfast/kernels/wsfast_kernels.h"],
            extra_compile_args=compile_args,
        )

    sources = [
        with_kernels("wsfast.kernels._cy", "wsfast/kernels/_cy.pyx"),
        with_kernels("wsfast._receive_c", "wsfast/_receive_c.pyx"),
        Extension("wsfast._outbox_c", ["wsfast/_outbox_c.pyx"], extra_compile_args=compile_args),
    ]
    if sys.platform != "win32":  # zlib's headers and library are the system's
        sources.append(
            Extension("wsfast._inflate_c", ["wsfast/_inflate_c.pyx"], libraries=["z"], extra_compile_args=compile_args)
        )
    if sys.platform != "win32":  # the stream core writes with writev()
        sources.append(Extension("wsfast._stream_c", ["wsfast/_stream_c.pyx"], extra_compile_args=compile_args))
        # The connection core cimports the stream core and the outbox.
        sources.append(
            Extension("wsfast._connection_c", ["wsfast/_connection_c.pyx"], extra_compile_args=compile_args)
        )
    modules = cythonize(sources, compiler_directives=COMPILER_DIRECTIVES)
    # cythonize() drops optional=: set it on what it returns.
    for module in modules:
        module.optional = BUILD_EXTENSION != "yes"
    return modules


setup(ext_modules=extensions())
