"""Imports point downwards only (docs/DESIGN.md "Layers"), and ``import wsfast`` stays light."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import wsfast

# The layers, bottom first: a module may import its own layer and those below,
# never one above. A package's modules take the layer of the package. New
# modules get their line here (the test below fails until they do).
LAYERS: list[tuple[str, ...]] = [
    ("wsfast._version", "wsfast.typing", "wsfast.exceptions", "wsfast._argtypes"),
    ("wsfast.kernels", "wsfast._inflate_py", "wsfast._inflate_c"),
    ("wsfast.frames", "wsfast.http11", "wsfast.extensions"),
    ("wsfast.handshake",),
    (
        "wsfast.events",
        "wsfast.protocol",
        "wsfast._receive_py",
        "wsfast._receive_c",
        "wsfast._outbox_py",
        "wsfast._outbox_c",
    ),
    ("wsfast.loop", "wsfast._stream_py", "wsfast._stream_c", "wsfast.keepalive", "wsfast.page"),
    ("wsfast._connection_py", "wsfast._connection_c"),
    ("wsfast.server", "wsfast.client", "wsfast.backplane"),
    ("wsfast.adapters", "wsfast.compat", "wsfast.accelerate"),
    ("wsfast.aio", "wsfast.asgi", "wsfast.bench"),
    ("wsfast.cli", "wsfast.__main__"),
]
# What the layers up to the protocol must never load: they do no I/O.
NO_IO = ("socket", "selectors", "ssl")
SANS_IO = next(rank for rank, layer in enumerate(LAYERS) if "wsfast.protocol" in layer)


def layer_of(module: str) -> int:
    for rank, layer in enumerate(LAYERS):
        if any(module == name or module.startswith(name + ".") for name in layer):
            return rank
    raise LookupError(f"{module} has no layer: give it one in LAYERS (tests/test_layering.py)")


# Every module of the package (``__main__`` modules run when imported: they are left out).
MODULES = sorted(
    info.name for info in pkgutil.walk_packages(wsfast.__path__, "wsfast.") if not info.name.endswith("__main__")
)

# wsfast/__init__.py imports the kernels, frames and accelerate: load the
# package without running it, so that only what the module itself needs is imported.
BARE_PACKAGE = """
import importlib, importlib.util, sys, types
spec = importlib.util.find_spec("wsfast")
package = types.ModuleType("wsfast")
package.__path__ = spec.submodule_search_locations
sys.modules["wsfast"] = package
importlib.import_module(sys.argv[1])
print(" ".join(sorted(sys.modules)))
"""


def modules_loaded_by(module: str) -> set[str]:
    run = subprocess.run([sys.executable, "-c", BARE_PACKAGE, module], check=True, capture_output=True, text=True)
    return set(run.stdout.split())


def test_the_package_has_modules_in_every_layer_it_lists() -> None:
    assert "wsfast.cli.workers" in MODULES and "wsfast.kernels._py" in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_a_module_does_not_import_the_layers_above_its_own(module: str) -> None:
    rank = layer_of(module)
    loaded = modules_loaded_by(module)
    above = sorted(name for name in loaded if name.startswith("wsfast.") and layer_of(name) > rank)
    assert not above, f"{module} (layer {rank}) imports {above}"
    if rank <= SANS_IO:
        assert not loaded & set(NO_IO), f"{module} is sans-IO but loads {sorted(loaded & set(NO_IO))}"


def test_import_wsfast_leaves_the_protocol_server_clients_and_tls_for_later() -> None:
    code = "import sys, wsfast; print(' '.join(sorted(sys.modules)))"
    run = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    loaded = set(run.stdout.split())
    heavy = {"wsfast.protocol", "wsfast.server", "wsfast.client", "wsfast.loop", *NO_IO}
    assert not loaded & heavy


def test_a_lazy_name_imports_its_layer_on_first_use() -> None:
    code = "import sys, wsfast; wsfast.Server; print('wsfast.server' in sys.modules, wsfast.Server.__module__)"
    run = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert run.stdout.split() == ["True", "wsfast.server"]


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="'Sever'"):
        wsfast.Sever  # noqa: B018
