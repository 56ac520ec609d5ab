#!/usr/bin/env python
"""Run each accelerated library's OWN test suite, unpatched and under ``wsfast.accelerate()``.

For every library ``wsfast.accelerate()`` supports, this script downloads the
source distribution of the version that is *installed* (``pip download
--no-binary :all: --no-deps LIB==VERSION``), unpacks it in a temporary
directory, and runs the library's own tests twice with the library's own
runner:

1. **baseline**: nothing patched;
2. **accelerated**: ``WSFAST_ACCELERATE=1`` in the environment and the
   ``wsfast-accelerate.pth`` that ``python -m wsfast.adapters install-pth
   --site-dir DIR`` writes, so that *every* interpreter the suite starts
   (test runner, servers, subprocesses) patches the libraries as they are
   imported, exactly as a user who cannot edit code would do it.

Both runs get the same environment otherwise: a hook directory on
``PYTHONPATH`` holding ``sitecustomize.py`` (which processes the ``.pth``
with ``site.addsitedir``: ``.pth`` files are only read from site
directories), a ``wsfast`` link when wsfast is not installed, and a pytest
plugin that records every test's outcome. ``sitecustomize.py`` also

- writes one JSON line per interpreter at exit: which supported libraries it
  imported, from where, whether wsfast's adapter was active, whether every
  patched name still held wsfast's replacement, and how often each adapter
  called a wsfast kernel (counted by wrapping the kernel names the adapters
  look up at call time). The script requires, for the accelerated run, that
  every interpreter that imported the library had it accelerated and that
  the kernels were called; for the baseline, that nothing was;
- refuses DNS look-ups and connections to anything but loopback addresses
  and logs the test that tried (tests must only use 127.0.0.1).

The tests always import the *installed* library: the sdist's copy of the
package is moved out of the way, or, for suites that ship inside the package
(autobahn, websocket-client, tornado), the sdist's test files are checked to
be byte-identical to the installed ones and the installed copies are run.
Test-only dependencies that are small and missing (pytest plugins) are
installed with ``pip install --no-deps --target`` into the work directory,
never into the environment.

Output: one line per library (and per variant),
``LIB VERSION passed=N failed=M skipped=K | accelerated: passed=N failed=M skipped=K``,
followed by what was verified and what was deselected or not run, and why.
Tests whose outcome differs between the two runs are re-run in both modes
(``--reruns``) to tell a reproducible difference from a flaky test.

Exit status: 0 when every library's counts are equal (or differ only by
tests that are shown to be flaky on re-run; ``--strict`` refuses that too)
and the patch was verified in every accelerated run; 1 otherwise; 2 on
usage errors.

Usage::

    python scripts/own_suites.py                       # all seven
    python scripts/own_suites.py wsproto tornado       # some
    python scripts/own_suites.py --sdist-dir ~/.cache/wsfast-sdists --keep
    python scripts/own_suites.py --tests websockets=PATH/TO/websockets-checkout
"""

from __future__ import annotations

import argparse
import filecmp
import importlib
import importlib.metadata
import importlib.util
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # a plain checkout: use the tree this script is in

import wsfast  # noqa: E402
from wsfast.adapters._autoload import LIBRARIES  # noqa: E402

__all__ = ["main"]

DEFAULT_TIMEOUT = 300.0
LOG_ENV = "WSFAST_OWN_SUITE_LOG"
RESULTS_ENV = "WSFAST_OWN_SUITE_RESULTS"
OFFLINE_ENV = "WSFAST_OWN_SUITE_OFFLINE"
PLUGIN = "wsfast_own_suite_plugin"

# -- the files put in the hook directory ----------------------------------------------------------

SITECUSTOMIZE = '''\
"""Written by wsfast's scripts/own_suites.py; runs in every interpreter of a suite run.

- Processes the wsfast-accelerate.pth next to this file (a PYTHONPATH entry is
  not a site directory, so Python would not read it by itself): with
  WSFAST_ACCELERATE set, wsfast arms its adapters exactly as installed users get.
- With WSFAST_OWN_SUITE_LOG set: counts wsfast kernel calls made by the
  adapters, and appends one JSON line per interpreter at exit saying what was
  imported and whether it was accelerated.
- With WSFAST_OWN_SUITE_OFFLINE=1: refuses non-loopback DNS and connections.

Never writes to stdout or stderr (tornado's runner counts stderr bytes as errors).
"""

import os
import sys


def _wsfast_own_suite():
    import site

    here = os.path.dirname(os.path.abspath(__file__))
    site.addsitedir(here)  # runs wsfast-accelerate.pth
    log = os.environ.get("WSFAST_OWN_SUITE_LOG")
    if not log:
        return
    counts = {}
    autoload = sys.modules.get("wsfast.adapters._autoload")  # loaded by the .pth when armed
    if autoload is not None:
        _count_kernel_calls(autoload, counts)
    if os.environ.get("WSFAST_OWN_SUITE_OFFLINE") == "1":
        _offline_guard(log)
    import atexit

    atexit.register(_report, log, counts)


# The names through which each adapter reaches a wsfast kernel at call time.
_KERNEL_NAMES = ("_mask", "_mask_into", "_validate_utf8", "_Utf8Validator", "_parse_header", "_frame_header")


def _count_kernel_calls(autoload, counts):
    def wrap(module):
        short = module.__name__.rpartition(".")[2]
        for name in _KERNEL_NAMES:
            target = module.__dict__.get(name)
            if target is None or getattr(target, "_wsfast_counted", False):
                continue
            module.__dict__[name] = _counted(target, short + "." + name, counts)

    modules = [library.adapter for library in autoload.LIBRARIES.values()]
    modules += ["wsfast.adapters._utf8", "wsfast.adapters._websockets_protocol", "wsfast.adapters._uvicorn"]
    for module in modules:
        autoload.watch(module, "wsfast-own-suite-counter", wrap)


def _counted(function, key, counts):
    def counted(*args, **kwargs):
        counts[key] = counts.get(key, 0) + 1
        return function(*args, **kwargs)

    counted._wsfast_counted = True
    return counted


_LOCAL_NAMES = {"", "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def _address(host):
    """``(name, ip_address or None)`` for a host given to getaddrinfo or connect."""
    import ipaddress

    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode("ascii", "replace")
    host = str(host).strip("[]").lower()
    try:
        return host, ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return host, None


def _is_local(host):
    if host is None:
        return True
    host, address = _address(host)
    if address is None:
        return host in _LOCAL_NAMES or host.endswith(".localhost")
    return address.is_loopback or address.is_unspecified


def _offline_guard(log):
    import errno
    import socket

    def blocked(what):
        _append(log, {"pid": os.getpid(), "blocked": repr(what), "test": _current_test()})

    getaddrinfo = socket.getaddrinfo

    def guarded_getaddrinfo(host, *args, **kwargs):
        # Only a name that is not local needs DNS; IP literals resolve without the network.
        flags = kwargs.get("flags", args[4] if len(args) > 4 else 0)
        numeric = (flags or 0) & socket.AI_NUMERICHOST or (host is not None and _address(host)[1] is not None)
        if not numeric and not _is_local(host):
            blocked(host)
            raise socket.gaierror(socket.EAI_NONAME, "own_suites: only loopback hosts may be resolved")
        return getaddrinfo(host, *args, **kwargs)

    socket.getaddrinfo = guarded_getaddrinfo
    for method in ("connect", "connect_ex"):
        original = getattr(socket.socket, method)

        def guarded(self, address, _original=original, _method=method):
            if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
                blocked(address)
                if _method == "connect_ex":
                    return errno.ENETUNREACH
                raise OSError(errno.ENETUNREACH, "own_suites: only loopback addresses may be reached")
            return _original(self, address)

        setattr(socket.socket, method, guarded)


def _current_test():
    test = os.environ.get("PYTEST_CURRENT_TEST")
    if test:
        return test.rsplit(" ", 1)[0]
    frame = sys._getframe(2)
    while frame is not None:  # unittest: the innermost test_* method
        if frame.f_code.co_name.startswith("test"):
            owner = frame.f_locals.get("self")
            if owner is not None and hasattr(owner, "id"):
                try:
                    return owner.id()
                except Exception:
                    pass
            return frame.f_code.co_filename + ":" + frame.f_code.co_name
        frame = frame.f_back
    return " ".join(sys.argv[:3])


def _append(log, entry):
    import json

    try:
        with open(log, "a", encoding="utf-8") as file:
            file.write(json.dumps(entry) + "\\n")
    except Exception:
        pass


def _report(log, counts):
    try:
        import importlib

        from wsfast.adapters._autoload import LIBRARIES

        libraries = {}
        for name, library in LIBRARIES.items():
            imported = [module for module in library.modules if module in sys.modules]
            if not imported:
                continue
            adapter = sys.modules.get(library.adapter)
            sites = {}
            for site in importlib.import_module(library.adapter).SITES:
                module = sys.modules.get(site.module)
                if module is None:
                    continue
                owner = module
                *path, attribute = site.attribute.split(".")
                try:
                    for part in path:
                        owner = getattr(owner, part)
                except AttributeError:
                    continue
                value = vars(owner).get(attribute)
                value = getattr(value, "__func__", value)
                sites[site.module + "." + site.attribute] = getattr(value, "__wsfast_original__", None) is not None
            package = sys.modules.get(library.package)
            libraries[name] = {
                "imported": imported,
                "file": getattr(package, "__file__", None),
                "active": bool(adapter is not None and adapter.is_active()),
                "sites": sites,
                # Sites left alone because the library already runs compiled code there.
                "native": sorted(getattr(getattr(adapter, "PATCHER", None), "native", {})),
            }
        entry = {
            "pid": os.getpid(),
            "argv": sys.argv[:4],
            "env": os.environ.get("WSFAST_ACCELERATE"),
            "libraries": libraries,
            "calls": dict(counts),
        }
    except Exception as exc:
        entry = {"pid": os.getpid(), "argv": sys.argv[:4], "error": repr(exc)}
    _append(log, entry)


try:
    _wsfast_own_suite()
except Exception as exc:  # never stop an interpreter from starting
    _append(os.environ.get("WSFAST_OWN_SUITE_LOG") or os.devnull, {"pid": os.getpid(), "hook_error": repr(exc)})
'''

PYTEST_PLUGIN = '''\
"""Written by wsfast's scripts/own_suites.py: records each test's outcome (JSON lines)."""

import json
import os

_PATH = os.environ.get("WSFAST_OWN_SUITE_RESULTS")


def _write(entry):
    if _PATH:
        with open(_PATH, "a", encoding="utf-8") as file:
            file.write(json.dumps(entry) + "\\n")


def pytest_runtest_logreport(report):
    subtest = type(report).__name__ == "SubtestReport" or getattr(report, "context", None) is not None
    _write({"id": report.nodeid, "when": report.when, "outcome": report.outcome, "subtest": bool(subtest)})


def pytest_collectreport(report):
    if report.failed:
        _write({"id": report.nodeid or "<collection>", "when": "collect", "outcome": "failed", "subtest": False})
'''


# -- what a run produces --------------------------------------------------------------------------


@dataclass
class Counts:
    """A run's result: per-test outcomes when known, and the totals."""

    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failing: set[str] = field(default_factory=set)
    outcomes: dict[str, str] = field(default_factory=dict)
    timed_out: bool = False
    returncode: int | None = None
    seconds: float = 0.0
    log: list[dict[str, Any]] = field(default_factory=list)
    output: str = ""

    def totals(self) -> str:
        return f"passed={self.passed} failed={self.failed} skipped={self.skipped}"

    def key(self) -> tuple[int, int, int]:
        return (self.passed, self.failed, self.skipped)


@dataclass
class Plan:
    """How to run one library's suite (built by the library's ``prepare``)."""

    kind: str  # "pytest" or "unittest"
    args: list[str]  # after "python -P": ["-m", "pytest", ...] or ["-m", "tornado.test.runtests"]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    pythonpath: list[Path] = field(default_factory=list)
    rerun_args: Callable[[list[str]], list[str]] | None = None
    servers: list[tuple[list[str], str]] = field(default_factory=list)  # (args after python, port env var)
    deselected: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class NotRunnable(Exception):
    """The suite cannot be run here; the message says why."""


# -- helpers --------------------------------------------------------------------------------------


def run_quiet(cmd: Sequence[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def has_module(name: str) -> bool:
    """Whether ``name`` can be imported (a dotted name whose parent is missing cannot)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


def installed_package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise NotRunnable(f"{package} is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def download_sdist(distribution: str, version: str, sdist_dir: Path) -> Path:
    """The sdist of ``distribution==version`` in ``sdist_dir``, downloaded with pip if absent."""

    def found() -> Path | None:
        for path in sorted(sdist_dir.iterdir()):
            for suffix in (".tar.gz", ".zip", ".tar.bz2"):
                if path.name.endswith(suffix):
                    stem, _, got = path.name[: -len(suffix)].rpartition("-")
                    if _normalized(stem) == _normalized(distribution) and got == version:
                        return path
        return None

    sdist_dir.mkdir(parents=True, exist_ok=True)
    existing = found()
    if existing is not None:
        return existing
    base = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "--disable-pip-version-check"]
    base += [f"{distribution}=={version}", "-d", str(sdist_dir)]
    errors = []
    # Preparing the metadata needs the build backend: try the installed one first (fast),
    # then pip's isolated build environment (slow: build requirements come as sdists too).
    for extra in (["--no-build-isolation"], []):
        try:
            result = run_quiet([*base, *extra], timeout=900)
        except subprocess.TimeoutExpired:
            errors.append("timed out after 900 s")
            continue
        path = found()
        if path is not None:
            return path
        errors.append((result.stderr.strip().splitlines() or [f"pip exited {result.returncode}"])[-1])
    raise NotRunnable(f"pip download {distribution}=={version} failed: {errors}")


def unpack(archive: Path, into: Path) -> Path:
    """Unpack an sdist; returns its top directory."""
    into.mkdir(parents=True, exist_ok=True)
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(into)
    else:
        with tarfile.open(archive) as tarred:
            if hasattr(tarfile, "data_filter"):
                tarred.extractall(into, filter="data")
            else:  # pragma: no cover - Python < 3.11.4
                tarred.extractall(into)
    tops = [path for path in into.iterdir() if path.is_dir()]
    if len(tops) != 1:
        raise NotRunnable(f"unexpected sdist layout in {archive.name}: {[p.name for p in tops]}")
    return tops[0]


def hide_package(root: Path, package: str) -> None:
    """Move the sdist's copy of ``package`` out of the import path, so tests import the installed one."""
    for parent in (root, root / "src"):
        copy = parent / package
        if copy.is_dir():
            copy.rename(parent / f"_sdist_copy_of_{package}")


def same_tree(sdist_dir: Path, installed_dir: Path) -> list[str]:
    """Files under ``sdist_dir`` that are missing or different under ``installed_dir``."""
    different = []
    for path in sorted(sdist_dir.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts:
            continue
        twin = installed_dir / path.relative_to(sdist_dir)
        if not twin.is_file() or not filecmp.cmp(path, twin, shallow=False):
            different.append(str(path.relative_to(sdist_dir)))
    return different


def pip_target(work: Path, name: str, requirements: Iterable[tuple[str, str]]) -> list[Path]:
    """Install the missing ``(import name, requirement)`` pairs with --no-deps into a private dir."""
    missing = [req for module, req in requirements if importlib.util.find_spec(module) is None]
    if not missing:
        return []
    target = work / f"deps-{name}"
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"]
    result = run_quiet([*cmd, "--target", str(target), *missing], timeout=600)
    if result.returncode != 0:
        raise NotRunnable(f"pip install --target of {missing} failed: {result.stderr.strip()[-300:]}")
    return [target]


def pytest_args(*args: str) -> list[str]:
    return ["-m", "pytest", "-p", "no:cacheprovider", "-p", PLUGIN, "-q", "-rfE", "--color=no", *args]


# -- the libraries --------------------------------------------------------------------------------


@dataclass
class Suite:
    """A library (or a variant of one) and how to run its own tests."""

    label: str
    name: str  # registry name in wsfast.adapters._autoload.LIBRARIES
    prepare: Callable[[Path, Path, argparse.Namespace], Plan]  # (sdist root, work dir, options)
    sdist: str | None = None  # the distribution whose sdist holds the tests, when not the library's

    @property
    def library(self) -> Any:
        return LIBRARIES[self.name]

    @property
    def distribution(self) -> str:
        return self.sdist or self.library.distribution


def prepare_websockets(root: Path, work: Path, options: argparse.Namespace) -> Plan:
    given = options.tests.get("websockets")
    run_dir = work / "websockets-tests"
    notes = []
    modules: list[str] = []
    deselected = []
    if given and is_git_dir(Path(given)):
        commit, why = websockets_commit(Path(given), installed_version("websockets") or "")
        export_tests(Path(given), commit, run_dir)
        notes.append(f"tests from the repository {given} at {commit[:12]} ({why})")
        if not why.startswith("tag"):
            # Tests of another version: those of the paths wsfast patches and that run to the end.
            modules = list(WEBSOCKETS_MODULES)
            deselected.append(
                "the other modules (asyncio client and router, legacy, trio, CLI, proxy, ...): the tests are not "
                "the installed version's, and asyncio's test_reconnect waits forever against it"
            )
    else:
        tests = Path(given) / "tests" if given else root / "tests"
        if not tests.is_dir():
            manifest = root / "MANIFEST.in"
            why = (
                " (its MANIFEST.in says `prune tests`)"
                if manifest.is_file() and "prune tests" in manifest.read_text()
                else ""
            )
            raise NotRunnable(
                f"the sdist has no tests{why}; pass --tests websockets=DIR with a checkout (or a git "
                "repository) of websockets to run them"
            )
        shutil.copytree(tests, run_dir / "tests")
        notes.append(f"tests from {'--tests ' + str(given) if given else 'the sdist'}")
    # websockets' own runner: `python -m unittest` from the directory holding tests/, with
    # the library importable; here the INSTALLED one (its src/ is not put on the path).
    notes.append(
        "python -m unittest, WEBSOCKETS_TESTS_TIMEOUT_FACTOR=5" + (f": {' '.join(modules)}" if modules else "")
    )
    return Plan(
        kind="unittest",
        args=["-m", "unittest", *modules],
        cwd=run_dir,
        pythonpath=[run_dir],  # named modules (and re-run test ids) are imported, not discovered from cwd (-P)
        env={"WEBSOCKETS_TESTS_TIMEOUT_FACTOR": "5"},
        rerun_args=lambda ids: ["-m", "unittest", *ids],
        deselected=deselected,
        notes=notes,
    )


#: websockets' test modules for the sans-IO layer, its extensions, and the sync and asyncio connections.
WEBSOCKETS_MODULES = (
    "tests.test_frames",
    "tests.test_protocol",
    "tests.test_client",
    "tests.test_server",
    "tests.test_streams",
    "tests.test_http11",
    "tests.test_utils",
    "tests.extensions",
    "tests.sync",
    "tests.asyncio.test_connection",
    "tests.asyncio.test_messages",
    "tests.asyncio.test_server",
)


def is_git_dir(path: Path) -> bool:
    """Whether ``path`` is a git repository (bare, or a work tree's ``.git``, or a checkout)."""
    return (path / "HEAD").is_file() and (path / "objects").is_dir() or (path / ".git").exists()


def websockets_commit(repository: Path, version: str) -> tuple[str, str]:
    """The commit of the release tag ``version``, else the newest commit there is, and which it is."""
    git = ["git", f"--git-dir={repository / '.git' if (repository / '.git').exists() else repository}"]
    tagged = run_quiet([*git, "rev-parse", "--verify", "--quiet", f"refs/tags/{version}^{{commit}}"], 60)
    if tagged.returncode == 0:
        return tagged.stdout.strip(), f"tag {version}, the installed version"
    head = run_quiet([*git, "rev-parse", "HEAD"], 60)
    if head.returncode != 0:
        raise NotRunnable(f"{repository} is not a readable git repository: {head.stderr.strip()}")
    described = run_quiet([*git, "describe", "--tags", "HEAD"], 60).stdout.strip() or "untagged"
    return head.stdout.strip(), f"no tag {version} there: its newest commit, {described}"


def export_tests(repository: Path, commit: str, into: Path) -> None:
    """Write the ``tests`` directory of ``commit`` under ``into``."""
    into.mkdir(parents=True)
    git_dir = repository / ".git" if (repository / ".git").exists() else repository
    archive = subprocess.run(
        ["git", f"--git-dir={git_dir}", "archive", commit, "tests"], capture_output=True, timeout=120, check=False
    )
    if archive.returncode != 0:
        raise NotRunnable(f"git archive {commit} tests failed: {archive.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tarred:
        tarred.extractall(into, filter="data") if hasattr(tarfile, "data_filter") else tarred.extractall(into)


def prepare_wsproto(root: Path, work: Path, options: argparse.Namespace) -> Plan:
    hide_package(root, "wsproto")
    return Plan(kind="pytest", args=pytest_args("tests"), cwd=root, rerun_args=lambda ids: pytest_args(*ids))


def _aiohttp(no_extensions: bool) -> Callable[[Path, Path, argparse.Namespace], Plan]:
    # The WebSocket part of aiohttp's suite: the full suite takes longer than a run may,
    # and much of it needs services and optional packages unrelated to WebSocket.
    files = [
        "tests/test_websocket_parser.py",
        "tests/test_websocket_writer.py",
        "tests/test_websocket_data_queue.py",
        "tests/test_websocket_handshake.py",
        "tests/test_web_websocket.py",
        "tests/test_web_websocket_functional.py",
        "tests/test_client_ws.py",
        "tests/test_client_ws_functional.py",
    ]

    def prepare(root: Path, work: Path, options: argparse.Namespace) -> Plan:
        hide_package(root, "aiohttp")
        ini = root / "pytest.ini"
        lines = ini.read_text().splitlines()
        # Its warning filters name coverage and uvloop, which pytest must import; drop those
        # lines when the module is absent (filterwarnings = error stays).
        kept = [
            line
            for line in lines
            if not any(
                f":{module}" in line and importlib.util.find_spec(module) is None for module in ("coverage", "uvloop")
            )
        ]
        ini.write_text("\n".join(kept) + "\n")
        deps = pip_target(
            work,
            "aiohttp",
            [
                ("pytest_mock", "pytest-mock"),
                ("freezegun", "freezegun"),
                ("blockbuster", "blockbuster"),
                ("forbiddenfruit", "forbiddenfruit"),
                ("pytest_timeout", "pytest-timeout"),
            ],
        )
        marks = "not dev_mode and not autobahn and not internal"  # aiohttp's own default selection
        # addopts is replaced: it asks for pytest-xdist, pytest-cov and doctests of the package.
        plan = Plan(
            kind="pytest",
            args=pytest_args("-o", "addopts=", "-m", marks, *files),
            cwd=root,
            pythonpath=deps,
            rerun_args=lambda ids: pytest_args("-o", "addopts=", *ids),
            deselected=[
                "tests/test_benchmarks_client_ws.py, tests/test_benchmarks_http_websocket.py "
                "(need pytest-codspeed, whose `benchmark` fixture clashes with pytest-benchmark's)",
                "every non-WebSocket test module (the full suite exceeds the time bound and needs gunicorn, "
                "proxy.py, ...)",
            ],
            notes=[
                "WebSocket test modules: " + ", ".join(Path(f).name for f in files),
                "pytest.ini used with addopts cleared"
                + ("; filterwarnings lines for absent coverage/uvloop dropped" if kept != lines else ""),
            ],
        )
        if no_extensions:
            plan.env["AIOHTTP_NO_EXTENSIONS"] = "1"
            plan.notes.append("AIOHTTP_NO_EXTENSIONS=1: the pure-Python reader (a patched site) serves every test")
        return plan

    return prepare


def prepare_autobahn(root: Path, work: Path, options: argparse.Namespace) -> Plan:
    installed = installed_package_dir("autobahn")
    sdist_package = root / "src" / "autobahn"
    tests = [path for path in sdist_package.rglob("test") if path.is_dir()]
    different = [
        f"{t.relative_to(sdist_package)}/{f}"
        for t in tests
        for f in same_tree(t, installed / t.relative_to(sdist_package))
    ]
    if different:
        raise NotRunnable(f"the sdist's tests differ from the installed package's: {different[:5]}")
    deps = pip_target(work, "autobahn", [("pytest_asyncio", "pytest-asyncio")])
    ignore = [installed / "twisted"]
    deselect = []
    notes = ["autobahn's `just test-asyncio` run (USE_ASYNCIO=1 pytest, Twisted excluded)"]
    deselected = []
    # With --pyargs, pytest's node ids are relative to the package directory.
    if not has_module("twisted.internet"):
        deselected.append(
            "autobahn.twisted.* and `just test-twisted` (trial): Twisted is not installed and is not small"
        )
        deselect += [
            "test/test_import_all.py::test_import_framework",
            "test/test_import_websocket_only.py::TestWebSocketOnlyImports::test_no_flatbuffers_no_numpy",
            "test/test_import_websocket_only.py::TestWebSocketOnlyImports::test_broken_numpy_does_not_break_import",
        ]
    if importlib.util.find_spec("base58") is None or importlib.util.find_spec("nacl") is None:
        deselected.append("WAMP-cryptosign and TLS tests: autobahn's `encryption` extra (pynacl, base58, ...) absent")
        ignore += [
            installed / "wamp" / "test" / "test_wamp_cryptosign.py",
            installed / "asyncio" / "test" / "test_aio_tls.py",
        ]
        deselect += [
            "test/test_import_all.py::test_import[autobahn.wamp.cryptosign]",
            "test/test_import_all.py::test_crypto_extras_present",
        ]
    if importlib.util.find_spec("argon2") is None:
        deselected.append("WAMP-SCRAM key derivation: autobahn's `scram` extra (argon2-cffi) absent")
        deselect.append("wamp/test/test_wamp_scram.py::TestKey::test_derive_scram_credential")
    args = ["--pyargs", "autobahn", *[f"--ignore={path}" for path in ignore]]
    args += [f"--deselect={node}" for node in deselect]
    run_dir = work / "autobahn-run"
    run_dir.mkdir()
    (run_dir / "pytest.ini").write_text((root / "pytest.ini").read_text().replace("testpaths =\n    test\n", ""))
    notes.append("the sdist's test files are byte-identical to the installed package's; the installed copies run")
    return Plan(
        kind="pytest",
        args=pytest_args(*args),
        cwd=run_dir,
        env={"USE_ASYNCIO": "1"},
        pythonpath=deps,
        rerun_args=lambda ids: pytest_args(*[str(installed / i) for i in ids]),
        deselected=deselected,
        notes=notes,
    )


def prepare_websocket_client(root: Path, work: Path, options: argparse.Namespace) -> Plan:
    installed = installed_package_dir("websocket")
    tests = root / "websocket" / "tests"
    if not tests.is_dir():
        raise NotRunnable("the sdist has no websocket/tests")
    different = same_tree(tests, installed / "tests")
    if different:
        raise NotRunnable(f"the sdist's tests differ from the installed package's: {different[:5]}")
    # Its own CI starts tests/echo-server.py (a websockets server on localhost) and sets
    # LOCAL_WS_SERVER_PORT, which turns on the round-trip tests.
    run_dir = work / "websocket-client-run"
    run_dir.mkdir()
    # They ask the resolver for names that do not exist, to check the error: no test may use
    # the network here, so they are left out.
    dns = [
        "test_app.py::WebSocketAppTest::test_suppress_host_parameter",
        "test_websocket.py::HandshakeTest::test_bad_urls",
        "test_websocket.py::HandshakeTest::test_suppress_host_websocket_connect",
    ]
    return Plan(
        kind="pytest",
        args=pytest_args("--pyargs", "websocket.tests", *[f"--deselect={node}" for node in dns]),
        cwd=run_dir,
        rerun_args=lambda ids: pytest_args(*[str(installed / "tests" / i) for i in ids]),
        servers=[([str(installed / "tests" / "echo-server.py")], "LOCAL_WS_SERVER_PORT")],
        deselected=[
            "the tests marked TEST_WITH_INTERNET stay skipped (they reach public servers)",
            "3 tests that resolve non-existent public names (DNS): " + ", ".join(dns),
        ],
        notes=[
            "the sdist's test files are byte-identical to the installed package's; the installed copies run",
            "tests/echo-server.py (websockets) runs on localhost, LOCAL_WS_SERVER_PORT set: the round trips run",
        ],
    )


def prepare_ws4py(root: Path, work: Path, options: argparse.Namespace) -> Plan:
    hide_package(root, "ws4py")
    args = ["test"]
    deselected = []
    if importlib.util.find_spec("cherrypy") is None:
        args.append("--ignore=test/test_cherrypy.py")
        deselected.append("test/test_cherrypy.py (1 test): needs CherryPy and its ~9 dependencies")
    return Plan(
        kind="pytest",
        args=pytest_args(*args),
        cwd=root,
        rerun_args=lambda ids: pytest_args(*ids),
        deselected=deselected,
    )


def prepare_tornado(root: Path, work: Path, options: argparse.Namespace) -> Plan:
    installed = installed_package_dir("tornado")
    different = same_tree(root / "tornado" / "test", installed / "test")
    if different:
        raise NotRunnable(f"the sdist's tests differ from the installed package's: {different[:5]}")
    run_dir = work / "tornado-run"
    run_dir.mkdir()
    return Plan(
        kind="unittest",
        args=["-m", "tornado.test.runtests"],
        cwd=run_dir,
        # tornado's own knobs: NO_NETWORK skips the tests that need the internet; EMULATION
        # gives test_request_timeout 0.5 s instead of 0.1 s (a TLS handshake on a busy 2-core
        # box takes longer); ASYNC_TEST_TIMEOUT raises the 5 s per-test limit.
        env={"ASYNC_TEST_TIMEOUT": "30", "NO_NETWORK": "1", "EMULATION": "1"},
        rerun_args=lambda ids: ["-m", "tornado.test.runtests", *ids],
        deselected=["the tests tornado marks skipIfNoNetwork (NO_NETWORK=1): they resolve public names"],
        notes=[
            "python -m tornado.test.runtests (ships in the installed package; the sdist's tornado/test is "
            "byte-identical to it)",
            "NO_NETWORK=1, EMULATION=1, ASYNC_TEST_TIMEOUT=30 in both runs (tornado's own switches; see the script)",
        ],
    )


def prepare_uvicorn(root: Path, work: Path, options: argparse.Namespace) -> Plan:
    # uvicorn's WebSocket tests run every case on each of its implementations: websockets (legacy),
    # websockets-sansio and wsproto. Its other modules test HTTP, the CLI and the supervisors.
    hide_package(root, "uvicorn")
    deps = pip_target(
        work,
        "uvicorn",
        [("httpx2", "httpx2==2.16.2"), ("httpcore2", "httpcore2==2.16.2"), ("truststore", "truststore")],
    )
    return Plan(
        kind="pytest",
        # addopts is replaced: it asks for pytest-xdist (-n 8).
        args=pytest_args("-o", "addopts=-rxXs", "tests/protocols/test_websocket.py"),
        cwd=root,
        pythonpath=deps,
        rerun_args=lambda ids: pytest_args("-o", "addopts=", *ids),
        deselected=["every non-WebSocket test module (HTTP, CLI, supervisors: no WebSocket library in their path)"],
        notes=[
            "tests/protocols/test_websocket.py on --ws websockets, websockets-sansio and wsproto; the accelerated "
            "run accelerates all of them (WSFAST_ACCELERATE=1); verified here for websockets",
            "pyproject's pytest options with addopts replaced (no pytest-xdist)",
        ],
    )


def prepare_gunicorn(root: Path, work: Path, options: argparse.Namespace) -> Plan:
    hide_package(root, "gunicorn")
    files = [
        "tests/test_asgi_websocket_protocol.py",
        "tests/test_asgi_websocket_enhanced.py",
        "tests/test_asgi_websocket_handshake.py",
    ]
    deps = pip_target(work, "gunicorn", [("pytest_asyncio", "pytest-asyncio")])
    return Plan(
        kind="pytest",
        # addopts is replaced: it asks for pytest-cov.
        args=pytest_args("-o", "addopts=--assert=plain", *files),
        cwd=root,
        pythonpath=deps,
        rerun_args=lambda ids: pytest_args("-o", "addopts=--assert=plain", *ids),
        deselected=["every non-WebSocket test module (the arbiter, HTTP parsers, workers, dirty apps)"],
        notes=["WebSocket test modules: " + ", ".join(Path(f).name for f in files)],
    )


SUITES = [
    Suite("websockets", "websockets", prepare_websockets),
    Suite("wsproto", "wsproto", prepare_wsproto),
    Suite("aiohttp", "aiohttp", _aiohttp(no_extensions=False)),
    Suite("aiohttp[no-ext]", "aiohttp", _aiohttp(no_extensions=True)),
    Suite("autobahn", "autobahn", prepare_autobahn),
    Suite("websocket-client", "websocket_client", prepare_websocket_client),
    Suite("ws4py", "ws4py", prepare_ws4py),
    Suite("tornado", "tornado", prepare_tornado),
    Suite("uvicorn", "websockets", prepare_uvicorn, sdist="uvicorn"),
    Suite("gunicorn", "gunicorn", prepare_gunicorn),
]


# -- running --------------------------------------------------------------------------------------


def make_hook_dir(path: Path) -> Path:
    """sitecustomize, the pytest plugin, the .pth (written by wsfast's own command) and a wsfast link."""
    path.mkdir(parents=True)
    (path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (path / f"{PLUGIN}.py").write_text(PYTEST_PLUGIN)
    package = Path(wsfast.__file__).resolve().parent
    probe = run_quiet([sys.executable, "-P", "-c", "import wsfast, sys; print(wsfast.__file__)"], 60, cwd=path)
    if probe.returncode != 0 or Path(probe.stdout.strip()).resolve().parent != package:
        (path / "wsfast").symlink_to(package, target_is_directory=True)  # wsfast is not installed
    env = {**os.environ, "PYTHONPATH": str(path)}
    env.pop("WSFAST_ACCELERATE", None)
    result = run_quiet(
        [sys.executable, "-P", "-m", "wsfast.adapters", "install-pth", "--site-dir", str(path)], 60, cwd=path, env=env
    )
    if result.returncode != 0 or not (path / "wsfast-accelerate.pth").is_file():
        raise SystemExit(f"python -m wsfast.adapters install-pth failed: {result.stdout}{result.stderr}")
    return path


def child_env(plan: Plan, hook: Path, accelerated: bool, log: Path, results: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("WSFAST_ACCELERATE", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTHONSTARTUP", "PYTHONNOUSERSITE"):
        env.pop(name, None)
    paths = [str(hook), *map(str, plan.pythonpath)]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    env.update(plan.env)
    env.update({"PYTHONPATH": os.pathsep.join(paths), LOG_ENV: str(log), RESULTS_ENV: str(results), OFFLINE_ENV: "1"})
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if accelerated:
        env["WSFAST_ACCELERATE"] = "1"
    return env


def kill_group(process: subprocess.Popen[Any]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_once(plan: Plan, args: list[str], hook: Path, accelerated: bool, run_dir: Path, timeout: float) -> Counts:
    """One run of a suite (or of some of its tests); returns its counts and logs."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log, results, output = run_dir / "interpreters.jsonl", run_dir / "results.jsonl", run_dir / "output.txt"
    env = child_env(plan, hook, accelerated, log, results)
    servers = []
    try:
        for server_args, port_variable in plan.servers:
            port = free_port()
            env[port_variable] = str(port)
            server_log = (run_dir / f"server-{port}.txt").open("w")
            servers.append(
                subprocess.Popen(
                    [sys.executable, "-P", *server_args],
                    cwd=plan.cwd,
                    env=env,
                    stdout=server_log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            )
            wait_for_port(port, 20)
        started = time.monotonic()
        with output.open("w") as out:
            process = subprocess.Popen(
                [sys.executable, "-P", *args],
                cwd=plan.cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
            timed_out = False
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                kill_group(process)
                process.wait()
            kill_group(process)  # whatever the suite left behind
        counts = Counts(timed_out=timed_out, returncode=process.returncode, seconds=time.monotonic() - started)
    finally:
        for server in servers:
            server.send_signal(signal.SIGINT)  # a clean exit, so that its interpreter reports too
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                pass
            kill_group(server)
    counts.output = output.read_text(errors="replace")
    counts.log = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    if plan.kind == "pytest":
        parse_pytest(results, counts)
    else:
        parse_unittest(counts.output, counts)
    return counts


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise NotRunnable(f"the suite's server did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


RANK = {"passed": 0, "skipped": 1, "failed": 2}


def parse_pytest(results: Path, counts: Counts) -> None:
    """Reduce the plugin's reports: a test failed if any phase (or subtest) failed, else skipped, else passed."""
    outcomes: dict[str, str] = {}
    if results.exists():
        for line in results.read_text().splitlines():
            report = json.loads(line)
            nodeid, outcome = report["id"], report["outcome"]
            if report["subtest"] and outcome != "failed":
                continue  # subtests count through their test, when they fail
            if outcome == "passed" and report["when"] not in ("call", "collect"):
                continue  # a setup or teardown that passed says nothing
            previous = outcomes.get(nodeid)
            if previous is None or RANK[outcome] > RANK[previous]:
                outcomes[nodeid] = outcome
    counts.outcomes = outcomes
    counts.passed = sum(1 for o in outcomes.values() if o == "passed")
    counts.failed = sum(1 for o in outcomes.values() if o == "failed")
    counts.skipped = sum(1 for o in outcomes.values() if o == "skipped")
    counts.failing = {nodeid for nodeid, o in outcomes.items() if o == "failed"}


UNITTEST_SUMMARY = re.compile(r"^Ran (\d+) tests? in ", re.MULTILINE)
UNITTEST_RESULT = re.compile(r"^(OK|FAILED)(?: \((.*)\))?\s*$", re.MULTILINE)
UNITTEST_FAILURE = re.compile(r"^(?:FAIL|ERROR): (\S+) \(([^)]*)\)", re.MULTILINE)


def parse_unittest(output: str, counts: Counts) -> None:
    """unittest's summary: Ran N tests; OK/FAILED (failures=, errors=, skipped=, expected failures=, ...)."""
    ran = UNITTEST_SUMMARY.findall(output)
    results = UNITTEST_RESULT.findall(output)
    if not ran or not results:
        counts.failed = 1
        counts.failing = {"<no unittest summary: the run crashed or timed out>"}
        return
    total = int(ran[-1])
    fields = dict(
        (key.strip(), int(value))
        for key, value in (item.split("=") for item in (results[-1][1] or "").split(",") if "=" in item)
    )
    failed = fields.get("failures", 0) + fields.get("errors", 0) + fields.get("unexpected successes", 0)
    skipped = fields.get("skipped", 0) + fields.get("expected failures", 0)
    counts.passed, counts.failed, counts.skipped = total - failed - skipped, failed, skipped
    counts.failing = {full if "." in full else name for name, full in UNITTEST_FAILURE.findall(output)}


# -- verification ----------------------------------------------------------------------------------


def verify(suite: Suite, counts: Counts, accelerated: bool, work: Path) -> tuple[bool, str]:
    """Did the run import the installed library, and was it (not) accelerated in every interpreter?"""
    name = suite.name
    errors = [entry for entry in counts.log if "error" in entry or "hook_error" in entry]
    blocked = sorted({f"{entry.get('test')} -> {entry['blocked']}" for entry in counts.log if "blocked" in entry})
    interpreters = [entry for entry in counts.log if "libraries" in entry]
    users = [entry for entry in interpreters if name in entry["libraries"]]
    problems = [f"hook error: {entry}" for entry in errors]
    if blocked:
        problems.append(f"tests tried to leave loopback (blocked): {blocked[:10]}")
    if not users:
        problems.append(f"no interpreter imported {suite.library.package}'s patched modules")
    for entry in users:
        info = entry["libraries"][name]
        if info["file"] and (str(work) in info["file"]):
            problems.append(f"pid {entry['pid']} imported {suite.library.package} from the sdist: {info['file']}")
    calls: dict[str, int] = {}
    for entry in interpreters:
        for key, value in entry.get("calls", {}).items():
            calls[key] = calls.get(key, 0) + value
    adapter = suite.library.adapter.rpartition(".")[2]
    # An adapter's own module, its private helpers (``_websockets_protocol``) and the shared UTF-8 module.
    own_calls = {
        key: value for key, value in calls.items() if key.startswith((adapter + ".", f"_{adapter}_", "_utf8."))
    }
    if accelerated:
        inactive = [entry["pid"] for entry in users if not entry["libraries"][name]["active"]]
        unpatched = [
            (entry["pid"], site)
            for entry in users
            for site, patched in entry["libraries"][name]["sites"].items()
            if not patched and site not in entry["libraries"][name].get("native", ())
        ]
        native = sorted({site for entry in users for site in entry["libraries"][name].get("native", ())})
        all_native = bool(users) and all(
            set(entry["libraries"][name]["sites"]) <= set(entry["libraries"][name].get("native", ())) for entry in users
        )
        if inactive:
            problems.append(f"{len(inactive)} interpreter(s) imported {name} without acceleration")
        if unpatched:
            problems.append(f"names not holding wsfast's replacement at exit: {unpatched[:5]}")
        if not sum(own_calls.values()) and not all_native:
            problems.append("the adapters never called a wsfast kernel")
        summary = (
            f"{len(users) - len(inactive)}/{len(users)} interpreter(s) that imported {name} had it accelerated "
            f"(of {len(interpreters)} started); kernel calls: "
            + (", ".join(f"{key}={value}" for key, value in sorted(own_calls.items())) or "none")
            + (f"; left alone as already native: {', '.join(native)}" if native else "")
        )
    else:
        active = [entry["pid"] for entry in users if entry["libraries"][name]["active"]]
        if active or calls:
            problems.append(f"baseline was accelerated: pids {active}, calls {calls}")
        summary = f"{len(users)} interpreter(s) imported {name}, none accelerated"
    return (not problems, summary + ("" if not problems else "; PROBLEMS: " + "; ".join(problems)))


# -- main -----------------------------------------------------------------------------------------


@dataclass
class Outcome:
    suite: Suite
    version: str | None
    baseline: Counts | None = None
    accelerated: Counts | None = None
    ok: bool = True
    lines: list[str] = field(default_factory=list)
    not_run: str | None = None


def run_suite(suite: Suite, options: argparse.Namespace, work: Path, hook: Path, sdist_dir: Path) -> Outcome:
    version = installed_version(suite.distribution)
    outcome = Outcome(suite, version)
    if version is None:
        outcome.not_run = f"{suite.distribution} is not installed"
        return outcome
    try:
        archive = download_sdist(suite.distribution, version, sdist_dir)
        suite_work = work / re.sub(r"\W+", "-", suite.label)
        shutil.rmtree(suite_work, ignore_errors=True)
        root = unpack(archive, suite_work / "sdist")
        plan = suite.prepare(root, suite_work, options)
    except NotRunnable as exc:
        outcome.not_run = str(exc)
        return outcome
    for note in plan.notes:
        outcome.lines.append(f"    note: {note}")
    for item in plan.deselected:
        outcome.lines.append(f"    not run: {item}")
    runs = {}
    for mode in ("baseline", "accelerated"):
        try:
            counts = run_once(plan, plan.args, hook, mode == "accelerated", suite_work / mode, options.timeout)
        except NotRunnable as exc:
            outcome.not_run = f"{mode} run: {exc}"
            outcome.ok = False
            return outcome
        verified, summary = verify(suite, counts, mode == "accelerated", work)
        outcome.lines.append(f"    {mode}: {counts.seconds:.0f} s, exit {counts.returncode}; {summary}")
        if counts.timed_out:
            outcome.lines.append(f"    {mode}: TIMED OUT after {options.timeout:.0f} s (counts are partial)")
            outcome.ok = False
        if counts.passed + counts.failed + counts.skipped == 0 or (
            plan.kind == "pytest" and counts.returncode in (2, 3, 4)
        ):
            tail = counts.output.strip().splitlines()[-3:]
            outcome.lines.append(f"    {mode}: THE RUNNER DID NOT RUN THE SUITE (exit {counts.returncode}): {tail}")
            outcome.ok = False
        if not verified:
            outcome.ok = False
        runs[mode] = counts
    outcome.baseline, outcome.accelerated = runs["baseline"], runs["accelerated"]
    base, fast = outcome.baseline, outcome.accelerated
    if base.key() != fast.key() or base.failing != fast.failing:
        differing = sorted((base.failing ^ fast.failing) | changed_outcomes(base, fast))
        outcome.lines.append(f"    DIFFERENCE in: {differing[:20]}")
        explained = False
        if differing and plan.rerun_args is not None and options.reruns > 0:
            explained = rerun(plan, differing, hook, suite_work, options, outcome)
        if not explained or options.strict:
            outcome.ok = False
    return outcome


def changed_outcomes(base: Counts, fast: Counts) -> set[str]:
    return {
        nodeid
        for nodeid in set(base.outcomes) | set(fast.outcomes)
        if base.outcomes.get(nodeid) != fast.outcomes.get(nodeid)
    }


def rerun(plan: Plan, ids: list[str], hook: Path, work: Path, options: argparse.Namespace, outcome: Outcome) -> bool:
    """Re-run the differing tests in both modes; True if no difference reproduces."""
    assert plan.rerun_args is not None
    runnable = [i for i in ids if not i.startswith("<")]
    if not runnable:
        return False
    reproduced: set[str] = set()
    for attempt in range(1, options.reruns + 1):
        results = {}
        for mode in ("baseline", "accelerated"):
            counts = run_once(
                plan,
                plan.rerun_args(runnable),
                hook,
                mode == "accelerated",
                work / f"rerun{attempt}-{mode}",
                options.timeout,
            )
            results[mode] = counts
        base, fast = results["baseline"], results["accelerated"]
        for test in runnable:
            b, f = rerun_outcome(plan, base, test, runnable), rerun_outcome(plan, fast, test, runnable)
            outcome.lines.append(f"    rerun {attempt}: {test}: baseline {b}, accelerated {f}")
            if b != f:
                reproduced.add(test)
    if reproduced:
        outcome.lines.append(f"    REPRODUCED: {sorted(reproduced)}")
        return False
    outcome.lines.append("    not reproduced on rerun: a flaky test, not a difference made by wsfast")
    return True


def rerun_outcome(plan: Plan, counts: Counts, test: str, runnable: list[str]) -> str:
    """What became of ``test`` in a re-run of ``runnable``: passed, failed, skipped, or not run."""
    if plan.kind != "unittest":
        return "failed" if test in counts.failing else counts.outcomes.get(test, "?")
    # unittest names only the tests that did not pass: the others passed only if every test named ran.
    if counts.passed + counts.failed + counts.skipped != len(runnable) or not counts.failing <= set(runnable):
        return f"not run ({sorted(counts.failing - set(runnable))[:1] or 'a different number of tests ran'})"
    return "failed" if test in counts.failing else "passed"


def parse_tests(values: list[str]) -> dict[str, str]:
    tests = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            raise SystemExit(f"--tests wants LIB=DIR, not {value!r}")
        tests[name] = path
    return tests


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], epilog="Labels: " + ", ".join(s.label for s in SUITES)
    )
    parser.add_argument(
        "libraries", nargs="*", help="labels to run (default: all); a library name runs its variants too"
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per run (default %(default)s)")
    parser.add_argument("--sdist-dir", type=Path, help="where sdists are kept and reused (default: a temp dir)")
    parser.add_argument("--work-dir", type=Path, help="where to unpack and run (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (outputs, logs) and print its path")
    parser.add_argument("--tests", action="append", default=[], metavar="LIB=DIR", help="use DIR/tests for LIB")
    parser.add_argument("--reruns", type=int, default=1, help="re-runs of differing tests in both modes (default 1)")
    parser.add_argument("--strict", action="store_true", help="fail on any difference, even one not reproduced")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    options = parser.parse_args(argv)
    options.tests = parse_tests(options.tests)

    wanted = options.libraries or [suite.label for suite in SUITES]

    def names(suite: Suite) -> tuple[str, ...]:
        return (suite.label, suite.distribution) + (() if suite.sdist else (suite.name,))

    suites = [s for s in SUITES if any(name in wanted for name in names(s))]
    unknown = [w for w in wanted if not any(w in names(s) for s in SUITES)]
    if unknown:
        parser.error(f"unknown libraries {unknown}; known: {', '.join(s.label for s in SUITES)}")

    work = (options.work_dir or Path(tempfile.mkdtemp(prefix="wsfast-own-suites-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    sdist_dir = (options.sdist_dir or work / "sdists").resolve()
    hook = make_hook_dir(work / f"hook-{os.getpid()}")
    print(
        f"wsfast {wsfast.__version__} ({wsfast.IMPLEMENTATION}); Python {sys.version.split()[0]}; "
        f"hook: WSFAST_ACCELERATE=1 + {hook / 'wsfast-accelerate.pth'} (python -m wsfast.adapters install-pth)",
        flush=True,
    )
    outcomes = []
    try:
        for suite in suites:
            outcome = run_suite(suite, options, work, hook, sdist_dir)
            outcomes.append(outcome)
            print(format_line(outcome), flush=True)
            for line in outcome.lines:
                print(line, flush=True)
    finally:
        if options.keep or options.work_dir:
            print(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if options.json:
        options.json.write_text(json.dumps([as_json(o) for o in outcomes], indent=2) + "\n")
    failed = [o.suite.label for o in outcomes if not o.ok]
    print(
        f"{'FAILED: ' + ', '.join(failed) if failed else 'all equal'}; not run: "
        + (", ".join(o.suite.label for o in outcomes if o.not_run) or "none")
    )
    return 1 if failed else 0


def format_line(outcome: Outcome) -> str:
    label, version = outcome.suite.label, outcome.version or "-"
    if outcome.not_run is not None:
        return f"{label} {version} NOT RUN: {outcome.not_run}"
    assert outcome.baseline is not None and outcome.accelerated is not None
    mark = (
        "" if outcome.ok else "  <-- DIFFERS" if outcome.baseline.key() != outcome.accelerated.key() else "  <-- CHECK"
    )
    return f"{label} {version} {outcome.baseline.totals()} | accelerated: {outcome.accelerated.totals()}{mark}"


def as_json(outcome: Outcome) -> dict[str, Any]:
    def counts(c: Counts | None) -> dict[str, Any] | None:
        if c is None:
            return None
        return {"passed": c.passed, "failed": c.failed, "skipped": c.skipped, "failing": sorted(c.failing),
                "seconds": round(c.seconds, 1), "timed_out": c.timed_out}  # fmt: skip

    return {
        "library": outcome.suite.label,
        "version": outcome.version,
        "baseline": counts(outcome.baseline),
        "accelerated": counts(outcome.accelerated),
        "ok": outcome.ok,
        "not_run": outcome.not_run,
        "details": [line.strip() for line in outcome.lines],
    }


if __name__ == "__main__":
    sys.exit(main())
