"""The build switch: WSFAST_BUILD_EXTENSION=yes|no|unset, with and without a working compiler.

Builds real wheels from this checkout (without build isolation, so no
network): slow-ish, but it is the only way to know the switch works.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

if not os.environ.get("CI"):  # in CI the test extra installs Cython: a missing one fails
    pytest.importorskip("Cython")
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses CC=/bin/false to stand for a missing compiler")


def build_wheel(tmp_path: Path, **env: str) -> tuple[int, list[str]]:
    """Build a wheel of this checkout; return pip's exit status and the wheel's file names."""
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "node_modules", "build", "*.so", "*.c", ".*"))
    environment = {**os.environ, **env}
    environment.pop("WSFAST_BUILD_EXTENSION", None)
    environment.update(env)
    run = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=source,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    wheels = list(tmp_path.glob("wsfast-*.whl"))
    names = zipfile.ZipFile(wheels[0]).namelist() if wheels else []
    return run.returncode, names


def has_extension(names: list[str]) -> bool:
    return any(name.startswith("wsfast/kernels/_cy") and name.endswith((".so", ".pyd")) for name in names)


def test_no_builds_the_pure_python_wheel(tmp_path: Path) -> None:
    status, names = build_wheel(tmp_path, WSFAST_BUILD_EXTENSION="no")
    assert status == 0
    assert "wsfast/kernels/_py.py" in names and not has_extension(names)


def test_unset_without_a_compiler_falls_back_to_pure_python(tmp_path: Path) -> None:
    status, names = build_wheel(tmp_path, CC="/bin/false")
    assert status == 0
    assert "wsfast/kernels/_py.py" in names and not has_extension(names)


def test_yes_without_a_compiler_fails_the_build(tmp_path: Path) -> None:
    status, names = build_wheel(tmp_path, CC="/bin/false", WSFAST_BUILD_EXTENSION="yes")
    assert status != 0 and names == []


def test_yes_builds_the_extension_with_its_stub(tmp_path: Path) -> None:
    status, names = build_wheel(tmp_path, WSFAST_BUILD_EXTENSION="yes")
    assert status == 0
    assert has_extension(names)
    assert {"wsfast/kernels/_cy.pyi", "wsfast/py.typed", "wsfast/static/index.html"} <= set(names)
