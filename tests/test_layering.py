"""Imports point downwards only (DESIGN.md "Layers"): a layer never imports one above it."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Each module, and the wsfast modules it must never pull in.
LAYERS = {
    "wsfast.kernels": ["wsfast.frames", "wsfast.handshake", "wsfast.protocol", "wsfast.server", "wsfast.loop"],
    "wsfast.frames": ["wsfast.handshake", "wsfast.protocol", "wsfast.server", "wsfast.loop"],
    "wsfast.extensions": ["wsfast.handshake", "wsfast.protocol", "wsfast.server", "wsfast.loop"],
    "wsfast.http11": ["wsfast.handshake", "wsfast.extensions", "wsfast.protocol", "wsfast.server", "wsfast.loop"],
    "wsfast.handshake": ["wsfast.protocol", "wsfast.server", "wsfast.loop"],
    "wsfast.protocol": ["wsfast.server", "wsfast.loop", "wsfast.cli", "socket", "selectors"],
    "wsfast.server": ["wsfast.cli"],
}


# wsfast/__init__.py imports every layer to re-export it: load the package
# without running it, so that only what the module itself needs is imported.
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


@pytest.mark.parametrize("module", sorted(LAYERS))
def test_a_layer_does_not_import_the_layers_above(module: str) -> None:
    assert not modules_loaded_by(module) & set(LAYERS[module])
