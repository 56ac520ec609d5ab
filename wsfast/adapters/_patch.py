"""Patch names where a library looks them up, and put them back exactly.

An adapter lists its *sites*: a module and the name in it that the library's
hot path reads at call time (``"apply_mask"``, or ``"Frame.mask"`` for a class
attribute). :class:`Patcher` swaps each site for a replacement built from the
original, remembers the original, and restores it on :meth:`Patcher.uninstall`
only where the site still holds wsfast's replacement (a later patch by someone
else is left alone). Sites in modules that are not imported yet are patched
right after their import, through :mod:`wsfast.adapters._autoload`'s hooks, so
wsfast never imports a library's optional or legacy modules itself.

A site whose original already runs C, where a wrapper could only cost more,
is left alone when the adapter's ``native`` test says so: the patcher records
why in :attr:`Patcher.native`, and such a site counts as handled.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from wsfast.adapters import _autoload

__all__ = ["Patcher", "Site", "compiled", "is_replacement", "original_of"]

#: The attribute every replacement carries, pointing at what it replaced.
ORIGINAL_ATTRIBUTE = "__wsfast_original__"


@dataclass(frozen=True)
class Site:
    """One name the library looks up on its hot path.

    Attributes:
        module: the module holding the name (where it is *looked up*).
        attribute: the name, or ``"Class.name"`` for a class attribute.
        required: whether :meth:`Patcher.install` imports ``module`` itself;
            optional sites (a legacy module, a pure-Python fallback) are
            patched only if and when the program imports them.
    """

    module: str
    attribute: str
    required: bool = True


def original_of(obj: Any) -> Any:
    """What a wsfast replacement replaced, or None for anything else."""
    target = obj.__func__ if isinstance(obj, (staticmethod, classmethod)) else obj
    return getattr(target, ORIGINAL_ATTRIBUTE, None)


def compiled(site: Site, original: Any) -> str | None:
    """What ``original`` is when it is compiled code rather than a Python function, else None.

    The ``native`` test of adapters whose library may already run C at a site.
    """
    target = original.__func__ if isinstance(original, (staticmethod, classmethod)) else original
    if isinstance(target, (types.FunctionType, types.MethodType)):
        return None
    name = getattr(target, "__qualname__", None) or type(target).__name__
    # A C function's __module__ (and its module's __name__) is what its C code says; the spec is where it was found.
    owner = getattr(target, "__self__", None)
    if isinstance(owner, types.ModuleType):
        module = getattr(owner.__spec__, "name", None) or owner.__name__
    else:
        module = getattr(target, "__module__", None)
    return f"{module or site.module}.{name} (compiled)"


def is_replacement(obj: Any) -> bool:
    """Whether ``obj`` is a wsfast replacement."""
    return original_of(obj) is not None


class Patcher:
    """Installs and removes one library's replacements.

    Args:
        name: the library's registry name (``"websockets"``).
        sites: every name to patch.
        replace: ``replace(site, original)`` returns the replacement for
            ``original``; it is called once per distinct original.
        native: ``native(site, original)`` says what native code ``original``
            is when wsfast should leave the site alone (else None).

    Attributes:
        native: ``"module.attribute"`` -> what native code runs there, for
            every site left alone since :meth:`install`.
    """

    def __init__(
        self,
        name: str,
        sites: Sequence[Site],
        replace: Callable[[Site, Any], Any],
        native: Callable[[Site, Any], str | None] | None = None,
    ) -> None:
        self.name = name
        self.sites = tuple(sites)
        self._replace = replace
        self._native = native
        self.native: dict[str, str] = {}
        self._lock = threading.RLock()
        # (site, owner, original, replacement) for every site patched, in order.
        self._patched: list[tuple[Site, Any, Any, Any]] = []
        # id(original) -> (original, replacement): one replacement per original.
        self._replacements: dict[int, tuple[Any, Any]] = {}
        self.active = False

    def install(self, import_modules: bool = True) -> None:
        """Patch every site; idempotent.

        Args:
            import_modules: import the required sites' modules first (raises
                ImportError when the library is missing). When False, only
                modules already imported are patched now.

        Sites whose module is not imported yet are patched right after their
        import.
        """
        if import_modules:
            # Outside the lock: another thread importing the same module may be
            # waiting for it in _on_import while holding that module's import lock.
            for site in self.sites:
                if site.required:
                    importlib.import_module(site.module)
        with self._lock:
            self.active = True
            for site in self.sites:
                module = sys.modules.get(site.module)
                if module is not None:
                    self._patch(site, module)
                # Also for imported modules: a module imported again is patched again.
                _autoload.watch(site.module, self, self._on_import)
            if import_modules:
                self._check_required()

    def _check_required(self) -> None:
        """Fail if this version of the library has none of the required names; warn if it lacks some."""
        required = [site for site in self.sites if site.required]
        missing = [
            site
            for site in required
            if not is_replacement(self.current(site)) and f"{site.module}.{site.attribute}" not in self.native
        ]
        if missing and len(missing) == len(required):
            self.uninstall()
            names = ", ".join(f"{site.module}.{site.attribute}" for site in missing)
            raise ImportError(f"{self.name}: this version has none of {names}; wsfast cannot accelerate it")
        if missing:
            names = ", ".join(f"{site.module}.{site.attribute}" for site in missing)
            warnings.warn(f"wsfast: {self.name} has no {names}; the rest is accelerated", RuntimeWarning, stacklevel=4)

    def uninstall(self) -> None:
        """Restore every original the patcher replaced; idempotent."""
        with self._lock:
            _autoload.unwatch(self)
            for site, owner, original, replacement in reversed(self._patched):
                attribute = site.attribute.rpartition(".")[2]
                if vars(owner).get(attribute) is replacement:
                    setattr(owner, attribute, original)
            self._patched.clear()
            self.native.clear()
            self.active = False

    def patched(self) -> bool:
        """Whether some site holds a wsfast replacement now."""
        with self._lock:
            return any(
                vars(owner).get(site.attribute.rpartition(".")[2]) is new for site, owner, _, new in self._patched
            )

    def current(self, site: Site) -> Any:
        """The raw value at ``site`` now (the descriptor, for class attributes), or None."""
        module = sys.modules.get(site.module)
        if module is None:
            return None
        try:
            owner, attribute = _resolve(module, site.attribute)
        except AttributeError:
            return None
        return vars(owner).get(attribute)

    def _on_import(self, module: ModuleType) -> None:
        with self._lock:
            if not self.active:
                return
            for site in self.sites:
                if site.module == module.__name__:
                    self._patch(site, module)

    def _patch(self, site: Site, module: ModuleType) -> None:
        try:
            owner, attribute = _resolve(module, site.attribute)
        except AttributeError:
            return  # a class this version of the library does not have
        original = vars(owner).get(attribute)
        if original is None or is_replacement(original):
            return  # absent in this version of the library, or already ours
        why = None if self._native is None else self._native(site, original)
        if why is not None:
            self.native[f"{site.module}.{site.attribute}"] = why
            return
        pair = self._replacements.get(id(original))
        if pair is None or pair[0] is not original:
            pair = (original, self._replace(site, original))
            self._replacements[id(original)] = pair
        setattr(owner, attribute, pair[1])
        self._patched.append((site, owner, original, pair[1]))


def _resolve(module: ModuleType, dotted: str) -> tuple[Any, str]:
    """The object holding the last name of ``dotted`` in ``module``, and that name."""
    owner: Any = module
    *path, attribute = dotted.split(".")
    for part in path:
        owner = getattr(owner, part)
    return owner, attribute


def mark(replacement: Any, original: Any) -> Any:
    """Record ``original`` on ``replacement`` (see :func:`original_of`) and return it."""
    target = replacement.__func__ if isinstance(replacement, (staticmethod, classmethod)) else replacement
    setattr(target, ORIGINAL_ATTRIBUTE, original)
    return replacement
