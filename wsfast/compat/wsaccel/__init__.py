"""wsaccel's module API on wsfast's kernels: code written for wsaccel runs unchanged.

Replace ``import wsaccel`` by ``from wsfast.compat import wsaccel`` (or
``from wsfast.compat.wsaccel.xormask import XorMaskerSimple``, ...):

- :mod:`.xormask`: ``XorMaskerNull``, ``XorMaskerSimple(mask)`` with
  ``process(data)``, ``pointer()`` and ``reset()``, and
  ``createXorMasker(mask, len=None)``;
- :mod:`.utf8validator`: ``Utf8Validator`` with ``validate(buf)``,
  ``reset()``, ``decode(b)`` and the public ``state``, ``i`` and
  ``codepoint``.

Answers and errors are wsaccel's on every input, including chunks that split
a code point and calls after a failure; the differences are listed in each
module. ``patch_autobahn()`` and ``patch_ws4py()`` do what wsaccel's do for
today's versions of those libraries: they install wsfast's adapters.
"""

from __future__ import annotations

from wsfast.compat.wsaccel import utf8validator, xormask

__all__ = ["__version__", "patch_autobahn", "patch_ws4py", "utf8validator", "xormask"]

#: The wsaccel release whose API this package mirrors.
__version__ = "0.6.6"


def patch_autobahn() -> None:
    """Accelerate autobahn (wsaccel's name for ``wsfast.accelerate("autobahn")``)."""
    from wsfast.adapters import autobahn

    autobahn.install()


def patch_ws4py() -> None:
    """Accelerate ws4py (wsaccel's name for ``wsfast.accelerate("ws4py")``)."""
    from wsfast.adapters import ws4py

    ws4py.install()
