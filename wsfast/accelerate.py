"""Make the WebSocket library you already use faster: ``wsfast.accelerate()``.

Each supported library has an adapter in :mod:`wsfast.adapters` that swaps
the functions its hot path looks up (masking, UTF-8 validation, framing; for
websockets also its sans-IO ``Protocol``'s and asyncio ``Connection``'s
steady-state methods) for twins running on :mod:`wsfast.kernels`, with the
library's own calling convention and errors, each falling back to the
original for anything out of the ordinary. The library keeps its API, its
protocol logic and its source of random masks.

Supported: websockets, wsproto, aiohttp, autobahn, websocket_client
(``websocket-client`` on PyPI, ``websocket`` to import), ws4py, tornado and
gunicorn. Each adapter's docstring says exactly what it patches and why.

Where a library already runs C (websockets' ``speedups``, aiohttp's Cython
mask), a wrapper could only cost more: that site is left alone, logged on
the ``wsfast.accelerate`` logger at INFO, and listed by :func:`native`.

To accelerate programs you cannot edit, set ``WSFAST_ACCELERATE=1`` (or a
comma-separated list of names) once ``python -m wsfast.adapters install-pth``
has written the opt-in ``.pth`` file; see :mod:`wsfast.adapters._autoload`.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import threading
import warnings
from types import ModuleType

from wsfast.adapters._autoload import LIBRARIES, canonical_name, disarm, known_names

__all__ = ["SUPPORTED", "accelerate", "accelerated", "deaccelerate", "native"]

#: The names accelerate() accepts, in the order it reports them.
SUPPORTED: tuple[str, ...] = tuple(LIBRARIES)

_lock = threading.RLock()
_log = logging.getLogger("wsfast.accelerate")


def accelerate(*names: str) -> list[str]:
    """Patch WebSocket libraries to run their hot paths on wsfast's kernels.

    Call it once, before or after importing the library; calling it again
    changes nothing. Masking, UTF-8 validation and framing then run on
    :mod:`wsfast.kernels`; results and exceptions stay the library's own.

    Args:
        *names: libraries to accelerate, by the name on PyPI or the name to
            import (``"websocket-client"`` or ``"websocket"``; see
            :data:`SUPPORTED`; case and ``-``/``_`` do not matter).
            None: every supported library that is installed. Each one is
            imported, so name yours to avoid importing the others.

    Returns:
        The libraries in which something was patched, among those asked for,
        in :data:`SUPPORTED` order for a call without names, else in the
        order given. A library whose hot path is already native everywhere
        wsfast could patch is not among them: see :func:`native`. Without
        names, a library that is installed but fails to import is skipped
        with a :class:`RuntimeWarning`.

    Raises:
        ValueError: a name is not a supported library.
        ModuleNotFoundError: a named library is not installed.
        ImportError: a named library is installed but cannot be imported.
    """
    wanted = _canonical(names) if names else list(SUPPORTED)
    done: list[str] = []
    with _lock:
        for name in wanted:
            library = LIBRARIES[name]
            if not names and importlib.util.find_spec(library.package) is None:
                continue
            try:
                _adapter(name).install()
            except ImportError as exc:
                if names:
                    if importlib.util.find_spec(library.package) is None:
                        raise ModuleNotFoundError(
                            f"wsfast.accelerate({name!r}): {library.distribution} is not installed "
                            f"(pip install {library.distribution})",
                            name=library.package,
                        ) from exc
                    raise
                warnings.warn(f"wsfast.accelerate(): skipping {name}: {exc}", RuntimeWarning, stacklevel=2)
                continue
            patcher = _adapter(name).PATCHER
            if patcher.native:
                _log.info(
                    "wsfast.accelerate(): %s left alone where it is already native: %s",
                    name,
                    "; ".join(f"{site} is {what}" for site, what in patcher.native.items()),
                )
            if patcher.patched():
                done.append(name)
    return done


def deaccelerate(*names: str) -> list[str]:
    """Undo :func:`accelerate`: put every original function back exactly.

    Also cancels what ``WSFAST_ACCELERATE`` armed for those libraries.

    Args:
        *names: libraries to restore; None: every accelerated library.

    Returns:
        The libraries that were accelerated and are now restored.

    Raises:
        ValueError: a name is not a supported library.
    """
    wanted = _canonical(names) if names else list(SUPPORTED)
    restored: list[str] = []
    with _lock:
        for name in wanted:
            disarm(name)
            adapter = _loaded_adapter(name)
            if adapter is None:
                continue
            if adapter.PATCHER.patched():
                restored.append(name)
            adapter.uninstall()
    return restored


def accelerated() -> list[str]:
    """The libraries in which something is patched in this interpreter right now."""
    return [name for name in SUPPORTED if (adapter := _loaded_adapter(name)) is not None and adapter.PATCHER.patched()]


def native() -> dict[str, dict[str, str]]:
    """What :func:`accelerate` left alone because the library already runs C there.

    Returns:
        ``{library: {"module.name": "what runs there"}}`` for every library
        accelerated now, e.g. ``{"aiohttp": {"aiohttp._websocket.writer.websocket_mask":
        "aiohttp._websocket.mask._websocket_mask_cython (compiled)"}}``.
    """
    found: dict[str, dict[str, str]] = {}
    for name in SUPPORTED:
        adapter = _loaded_adapter(name)
        if adapter is not None and adapter.is_active() and adapter.PATCHER.native:
            found[name] = dict(adapter.PATCHER.native)
    return found


def _canonical(names: tuple[str, ...]) -> list[str]:
    result: list[str] = []
    for name in names:
        canonical = canonical_name(name) if isinstance(name, str) else None
        if canonical is None:
            raise ValueError(f"unknown library {name!r}; supported (PyPI name / import name): {known_names()}")
        if canonical not in result:
            result.append(canonical)
    return result


def _adapter(name: str) -> ModuleType:
    return importlib.import_module(LIBRARIES[name].adapter)


def _loaded_adapter(name: str) -> ModuleType | None:
    # An adapter never imported has nothing to undo: do not import it (nor its kernels) for nothing.
    return sys.modules.get(LIBRARIES[name].adapter)
