"""Sphinx configuration for wsfast's documentation site.

Build: ``python -m sphinx -W --keep-going docs docs/_build`` (what CI runs).
Pages are Markdown (MyST); the API reference is generated from the
docstrings. The pure-Python twins are documented: they carry the contract
(docstrings, signatures) that the Cython kernels implement.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

# Document the pure-Python twins, whose docstrings are the specification.
os.environ["WSFAST_PURE"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wsfast import __version__  # noqa: E402

# sphinx-autodoc-typehints calls an API that Sphinx 9 deprecates: not ours to fix.
warnings.filterwarnings("ignore", message=".*set_application.*")

project = "wsfast"
author = "The wsfast developers"
copyright = "2026, the wsfast developers"
version = release = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx_autodoc_typehints",
]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "README.md"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autoclass_content = "both"  # the class docstring, then __init__'s Args
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
typehints_fully_qualified = False
always_document_param_types = False

html_theme = "furo"
html_title = f"wsfast {version}"
html_static_path = ["_static"]
