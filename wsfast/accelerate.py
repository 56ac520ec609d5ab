"""Make the WebSocket library you already use faster: ``wsfast.accelerate()``.

Each supported library has an adapter in :mod:`wsfast.adapters` that swaps
the masking and UTF-8 validation functions its hot path looks up for twins
running on :mod:`wsfast.kernels`, with the library's own calling convention
and errors. Nothing else changes: the library keeps its API, its protocol
logic and its source of random masks.

Supported: websockets, wsproto, aiohttp, autobahn, websocket_client
(``websocket-client`` on PyPI), ws4py and tornado. Each adapter's docstring
says exactly what it patches and why.

To accelerate programs you cannot edit, set ``WSFAST_ACCELERATE=1`` (or a
comma-separated list of names) once ``python -m wsfast.adapters install-pth``
has written the opt-in ``.pth`` file; see :mod:`wsfast.adapters._autoload`.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import warnings
from types import ModuleType

from wsfast.adapters._autoload import LIBRARIES, canonical_name, disarm

__all__ = ["SUPPORTED", "accelerate", "accelerated", "deaccelerate"]

#: The names accelerate() accepts, in the order it reports them.
SUPPORTED: tuple[str, ...] = tuple(LIBRARIES)

_lock = threading.RLock()


def accelerate(*names: str) -> list[str]:
    """Patch WebSocket libraries to run their hot paths on wsfast's kernels.

    Call it once, before or after importing the library; calling it again
    changes nothing. Masking and UTF-8 validation then run on
    :mod:`wsfast.kernels`; results and exceptions stay the library's own.

    Args:
        *names: libraries to accelerate (see :data:`SUPPORTED`; case and
            ``-``/``_`` do not matter, ``websocket-client`` is accepted).
            None: every supported library that is installed. Each one is
            imported, so name yours to avoid importing the others.

    Returns:
        The libraries accelerated when the call returns, among those asked
        for, in :data:`SUPPORTED` order for a call without names, else in
        the order given. Without names, a library that is installed but fails
        to import is skipped with a :class:`RuntimeWarning`.

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
            if adapter.is_active():
                restored.append(name)
            adapter.uninstall()
    return restored


def accelerated() -> list[str]:
    """The libraries accelerated in this interpreter right now."""
    return [name for name in SUPPORTED if (adapter := _loaded_adapter(name)) is not None and adapter.is_active()]


def _canonical(names: tuple[str, ...]) -> list[str]:
    result: list[str] = []
    for name in names:
        canonical = canonical_name(name) if isinstance(name, str) else None
        if canonical is None:
            raise ValueError(f"unknown library {name!r}; supported: {', '.join(SUPPORTED)}")
        if canonical not in result:
            result.append(canonical)
    return result


def _adapter(name: str) -> ModuleType:
    return importlib.import_module(LIBRARIES[name].adapter)


def _loaded_adapter(name: str) -> ModuleType | None:
    # An adapter never imported has nothing to undo: do not import it (nor its kernels) for nothing.
    return sys.modules.get(LIBRARIES[name].adapter)
