"""The adapters' registry, post-import hooks, and opt-in acceleration at start-up.

This module imports the standard library only, never ``wsfast`` itself: the
``wsfast-accelerate.pth`` file that ``python -m wsfast.adapters install-pth``
writes loads it by file path when ``WSFAST_ACCELERATE`` is set, so that an
interpreter that never imports a WebSocket library never pays for importing
wsfast. It then only *arms* the adapters: each library is patched right after
the module that holds its hot path is imported, by a meta-path finder that
wraps that module's loader for the duration of the import.

``WSFAST_ACCELERATE`` values: ``1``, ``all``, ``true``, ``yes`` or ``on``
accelerate every supported library; a comma-separated list of names
(``websockets,aiohttp``) accelerates those; empty, ``0``, ``false``, ``no``
or ``off`` accelerate nothing.
"""

from __future__ import annotations

# Only modules every interpreter has loaded at start-up: this file runs from a
# .pth, where importing typing, dataclasses or threading would cost milliseconds.
import _thread
import importlib
import os
import sys
import warnings

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any

__all__ = [
    "ENV_VAR",
    "LIBRARIES",
    "PTH_NAME",
    "Library",
    "autoload",
    "autoload_from_env",
    "canonical_name",
    "disarm",
    "known_names",
    "parse_env",
    "pth_line",
    "unwatch",
    "watch",
]

ENV_VAR = "WSFAST_ACCELERATE"
PTH_NAME = "wsfast-accelerate.pth"


class Library:
    """A supported library and the modules whose names its adapter patches.

    Attributes:
        name: the name ``wsfast.accelerate()`` takes and returns.
        adapter: the adapter module, with ``install()`` and ``uninstall()``.
        package: the library's top-level import package.
        distribution: its name on PyPI, for error messages.
        modules: every module the adapter patches a name in (its "sites");
            ``tests/adapters/test_accelerate.py`` checks them against the
            adapter.
    """

    __slots__ = ("name", "adapter", "package", "distribution", "modules")

    def __init__(self, name: str, adapter: str, package: str, distribution: str, modules: tuple[str, ...]) -> None:
        self.name = name
        self.adapter = adapter
        self.package = package
        self.distribution = distribution
        self.modules = modules

    def __repr__(self) -> str:
        return f"Library({self.name!r}, {self.adapter!r}, {self.package!r}, {self.distribution!r}, {self.modules!r})"


# In the order accelerate() reports them.
LIBRARIES: dict[str, Library] = {
    lib.name: lib
    for lib in (
        Library(
            "websockets",
            "wsfast.adapters.websockets",
            "websockets",
            "websockets",
            (
                "websockets.protocol",
                "websockets.asyncio.connection",
                "websockets.frames",
                "websockets.legacy.framing",
                "uvicorn.protocols.websockets.websockets_sansio_impl",
            ),
        ),
        Library(
            "wsproto",
            "wsfast.adapters.wsproto",
            "wsproto",
            "wsproto",
            ("wsproto.frame_protocol", "uvicorn.protocols.websockets.wsproto_impl"),
        ),
        Library(
            "aiohttp",
            "wsfast.adapters.aiohttp",
            "aiohttp",
            "aiohttp",
            ("aiohttp._websocket.writer", "aiohttp._websocket.reader_py"),
        ),
        Library("autobahn", "wsfast.adapters.autobahn", "autobahn", "autobahn", ("autobahn.websocket.protocol",)),
        Library(
            "websocket_client",
            "wsfast.adapters.websocket_client",
            "websocket",
            "websocket-client",
            ("websocket._abnf", "websocket._utils"),
        ),
        Library("ws4py", "wsfast.adapters.ws4py", "ws4py", "ws4py", ("ws4py.framing", "ws4py.streaming")),
        Library("tornado", "wsfast.adapters.tornado", "tornado", "tornado", ("tornado.util", "tornado.websocket")),
        Library("gunicorn", "wsfast.adapters.gunicorn", "gunicorn", "gunicorn", ("gunicorn.asgi.websocket",)),
    )
}

_TRUE = frozenset(("1", "all", "true", "yes", "on"))
_FALSE = frozenset(("", "0", "false", "no", "off"))


def canonical_name(name: str) -> str | None:
    """The registry name for ``name``: a library's PyPI or import name (case and ``-``/``_`` insensitive), or None."""
    key = name.strip().lower().replace("-", "_")
    for library in LIBRARIES.values():
        if key in (library.name, library.package, library.distribution.replace("-", "_")):
            return library.name
    return None


def known_names() -> str:
    """Every supported library as ``PyPI name``, or ``PyPI name / import name`` where they differ."""
    return ", ".join(
        lib.distribution if lib.package == lib.distribution else f"{lib.distribution} / {lib.package}"
        for lib in LIBRARIES.values()
    )


def parse_env(value: str | None) -> list[str]:
    """The libraries a ``WSFAST_ACCELERATE`` value asks for.

    Unknown names are reported with a :class:`RuntimeWarning` and skipped:
    a typo in an environment variable must not break every interpreter.
    """
    if value is None or value.strip().lower() in _FALSE:
        return []
    if value.strip().lower() in _TRUE:
        return list(LIBRARIES)
    names: list[str] = []
    for part in value.split(","):
        if not part.strip():
            continue
        name = canonical_name(part)
        if name is None:
            warnings.warn(
                f"{ENV_VAR}: unknown library {part.strip()!r} ignored; supported (PyPI name / import name): "
                f"{known_names()}",
                RuntimeWarning,
                stacklevel=2,
            )
        elif name not in names:
            names.append(name)
    return names


# -- post-import hooks ------------------------------------------------------------------------

_lock = _thread.RLock()
# module name -> {key: callback}; a callback receives the freshly executed module.
_watched: dict[str, dict[object, Callable[[ModuleType], None]]] = {}


def watch(module: str, key: object, callback: Callable[[ModuleType], None]) -> None:
    """Call ``callback(module)`` right after ``module`` is next imported.

    The callback runs once the module's code has executed and before the
    importer sees it, so a name patched there is what every importer gets.
    One callback per ``(module, key)``; it stays registered until
    :func:`unwatch`, so a module that is imported again (after being removed
    from ``sys.modules``) is patched again.
    """
    with _lock:
        _watched.setdefault(module, {})[key] = callback
        if not any(isinstance(finder, _PostImportFinder) for finder in sys.meta_path):
            sys.meta_path.insert(0, _FINDER)


def unwatch(key: object, modules: Iterable[str] | None = None) -> None:
    """Forget the callbacks registered under ``key`` (for ``modules``, or all)."""
    with _lock:
        for module in list(_watched if modules is None else modules):
            callbacks = _watched.get(module)
            if callbacks is None:
                continue
            callbacks.pop(key, None)
            if not callbacks:
                del _watched[module]
        if not _watched:
            for finder in [finder for finder in sys.meta_path if isinstance(finder, _PostImportFinder)]:
                sys.meta_path.remove(finder)


def _run_callbacks(module: ModuleType) -> None:
    with _lock:
        callbacks = list(_watched.get(module.__name__, {}).values())
    for callback in callbacks:
        try:
            callback(module)
        except Exception as exc:  # never break the program's own import
            warnings.warn(f"wsfast could not accelerate {module.__name__}: {exc!r}", RuntimeWarning, stacklevel=2)


class _HookedLoader:
    """Wraps a watched module's loader during its import, then steps aside."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        create = getattr(self.loader, "create_module", None)
        return None if create is None else create(spec)

    def exec_module(self, module: ModuleType) -> None:
        # Put the real loader back before the module's code can look at it.
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        _run_callbacks(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


class _PostImportFinder:
    """Finds nothing itself: asks the finders after it, then hooks the loader."""

    def __init__(self) -> None:
        self._finding = _thread._local()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in _watched or getattr(self._finding, "name", None) == fullname:
            return None
        self._finding.name = fullname
        try:
            for finder in list(sys.meta_path):
                if finder is self or isinstance(finder, _PostImportFinder):
                    continue
                find_spec = getattr(finder, "find_spec", None)
                if find_spec is None:
                    continue
                spec: ModuleSpec | None = find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            self._finding.name = None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _HookedLoader(spec.loader)  # type: ignore[assignment]  # a duck-typed Loader
        return spec


_FINDER = _PostImportFinder()


# -- opt-in acceleration at start-up ------------------------------------------------------------

_ARMED = object()  # the watch() key of autoload's triggers


def _arm(name: str) -> Callable[[ModuleType], None]:
    def callback(module: ModuleType) -> None:
        # Hand over to the adapter: it patches what is imported and watches the rest.
        disarm(name)
        adapter = importlib.import_module(LIBRARIES[name].adapter)
        adapter.install(import_modules=False)

    return callback


def autoload(names: Iterable[str] | None = None) -> list[str]:
    """Accelerate ``names`` (default: all supported) as their modules are imported.

    Nothing is imported now. A library already imported is patched at once;
    the others are patched right after their hot module is imported. This is
    what ``WSFAST_ACCELERATE`` runs at interpreter start.

    Returns:
        The libraries now armed, in registry order.

    Raises:
        ValueError: a name is not a supported library.
    """
    wanted = list(LIBRARIES) if names is None else [_require_name(name) for name in names]
    armed = []
    for name in LIBRARIES:
        if name not in wanted:
            continue
        library = LIBRARIES[name]
        imported = [module for module in library.modules if module in sys.modules]
        if imported:
            _arm(name)(sys.modules[imported[0]])
        else:
            for module in library.modules:
                watch(module, (_ARMED, name), _arm(name))
        armed.append(name)
    return armed


def disarm(name: str) -> None:
    """Cancel :func:`autoload`'s pending triggers for library ``name``."""
    unwatch((_ARMED, name), LIBRARIES[name].modules)


def autoload_from_env(environ: Mapping[str, str] | None = None) -> list[str]:
    """Run :func:`autoload` for the libraries ``WSFAST_ACCELERATE`` names."""
    names = parse_env((os.environ if environ is None else environ).get(ENV_VAR))
    try:
        return autoload(names) if names else []
    except Exception as exc:  # a .pth must never stop the interpreter from starting
        warnings.warn(f"{ENV_VAR}: wsfast could not arm its adapters: {exc!r}", RuntimeWarning, stacklevel=2)
        return []


def _require_name(name: str) -> str:
    canonical = canonical_name(name)
    if canonical is None:
        raise ValueError(f"unknown library {name!r}; supported: {', '.join(LIBRARIES)}")
    return canonical


def pth_line() -> str:
    """The one line of ``wsfast-accelerate.pth``.

    When ``WSFAST_ACCELERATE`` is unset or empty it costs one dictionary
    lookup. When it is set it locates wsfast without importing it, loads this
    file by path under its own module name, and arms the adapters.
    """
    code = (
        "import importlib.util as u, sys\n"
        "s = u.find_spec('wsfast')\n"
        "if s is not None and s.submodule_search_locations:\n"
        "    import os.path\n"
        "    p = os.path.join(s.submodule_search_locations[0], 'adapters', '_autoload.py')\n"
        "    m = sys.modules.get('wsfast.adapters._autoload')\n"
        "    if m is None:\n"
        "        spec = u.spec_from_file_location('wsfast.adapters._autoload', p)\n"
        "        m = u.module_from_spec(spec)\n"
        "        sys.modules[spec.name] = m\n"
        "        spec.loader.exec_module(m)\n"
        "    m.autoload_from_env()\n"
    )
    return f"import os; os.environ.get({ENV_VAR!r}, '').strip() and exec({code!r}, {{}})\n"
