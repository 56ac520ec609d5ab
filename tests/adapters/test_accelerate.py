"""wsfast.accelerate(): names, return values, and the WSFAST_ACCELERATE start-up hook."""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.adapters import REPO, run_python
from wsfast.accelerate import SUPPORTED, accelerate, accelerated, deaccelerate, native
from wsfast.adapters import _autoload
from wsfast.adapters.__main__ import main
from wsfast.adapters._autoload import LIBRARIES, PTH_NAME, parse_env, pth_line
from wsfast.adapters._patch import Patcher, Site, compiled, mark, original_of


def _all_native(name: str) -> bool:
    """Whether every site of an installed library already holds compiled code (nothing to patch)."""
    if name != "aiohttp":
        return False
    import aiohttp._websocket.writer as writer

    return compiled(Site("aiohttp._websocket.writer", "websocket_mask"), writer.websocket_mask) is not None


INSTALLED = [name for name in SUPPORTED if importlib.util.find_spec(LIBRARIES[name].package) is not None]
#: What accelerate() without names patches here: aiohttp's default build is native throughout.
PATCHED = [name for name in INSTALLED if not _all_native(name)]


@pytest.fixture(autouse=True)
def restore() -> Iterator[None]:
    yield
    deaccelerate()


def test_supported_libraries() -> None:
    assert SUPPORTED == (
        "websockets",
        "wsproto",
        "aiohttp",
        "autobahn",
        "websocket_client",
        "ws4py",
        "tornado",
        "gunicorn",
    )


@pytest.mark.parametrize("name", SUPPORTED)
def test_the_registry_lists_every_site_of_each_adapter(name: str) -> None:
    adapter = importlib.import_module(LIBRARIES[name].adapter)
    assert {site.module for site in adapter.SITES} == set(LIBRARIES[name].modules)
    assert callable(adapter.install) and callable(adapter.uninstall) and callable(adapter.is_active)
    assert adapter.__doc__ and "patched" in adapter.__doc__


def test_unknown_names_raise_value_error_listing_the_pypi_and_import_names() -> None:
    supported = (
        "supported (PyPI name / import name): websockets, wsproto, aiohttp, autobahn, "
        "websocket-client / websocket, ws4py, tornado, gunicorn"
    )
    with pytest.raises(ValueError) as error:
        accelerate("websockets", "nope")
    assert str(error.value) == f"unknown library 'nope'; {supported}"
    assert accelerated() == []  # nothing was patched before the error
    with pytest.raises(ValueError, match=r"supported \(PyPI name / import name\): "):
        deaccelerate("nope")


@pytest.mark.parametrize("name", ["websocket-client", "websocket_client", "websocket", "Websocket-Client"])
def test_the_pypi_name_and_the_import_name_are_accepted_alike(name: str) -> None:
    if "websocket_client" not in INSTALLED:
        pytest.skip("needs websocket-client")
    assert accelerate(name) == ["websocket_client"]
    assert deaccelerate(name) == ["websocket_client"]


def test_no_names_accelerates_every_installed_library() -> None:
    assert accelerate() == PATCHED
    assert accelerated() == PATCHED
    assert accelerate() == PATCHED  # idempotent, same answer
    assert deaccelerate() == PATCHED
    assert accelerated() == []
    assert deaccelerate() == []


def test_what_is_already_native_is_left_alone_logged_and_listed(caplog: pytest.LogCaptureFixture) -> None:
    if "aiohttp" not in INSTALLED or not _all_native("aiohttp"):
        pytest.skip("needs aiohttp with its C extensions")
    import aiohttp._websocket.writer as writer

    cython_mask = writer.websocket_mask
    with caplog.at_level("INFO", logger="wsfast.accelerate"):
        assert accelerate("aiohttp") == []
    assert writer.websocket_mask is cython_mask
    assert native() == {
        "aiohttp": {
            "aiohttp._websocket.writer.websocket_mask": "aiohttp._websocket.mask._websocket_mask_cython (compiled)"
        }
    }
    assert "aiohttp left alone where it is already native: aiohttp._websocket.writer.websocket_mask is " in caplog.text
    assert accelerated() == []
    assert deaccelerate("aiohttp") == []
    assert native() == {}


def test_names_are_normalised_and_deduplicated() -> None:
    present = [name for name in ("websocket_client", "websockets") if name in INSTALLED]
    if len(present) < 2:
        pytest.skip("needs websocket-client and websockets")
    assert accelerate("websocket-client", "WebSockets", "websocket_client") == ["websocket_client", "websockets"]
    assert accelerated() == ["websockets", "websocket_client"]
    assert deaccelerate("websocket") == ["websocket_client"]
    assert accelerated() == ["websockets"]


MISSING = """
import json, sys
sys.modules["ws4py"] = None  # as if ws4py were not installed
from wsfast.accelerate import accelerate
try:
    accelerate("ws4py")
except ModuleNotFoundError as exc:
    error = [type(exc).__name__, str(exc), exc.name]
print(json.dumps([error, "ws4py" in accelerate(), "ws4py.framing" in sys.modules]))
"""


def test_a_named_library_that_is_not_installed_raises_module_not_found() -> None:
    run = run_python(MISSING)
    assert run.returncode == 0, run.stderr
    error, all_has_it, imported = json.loads(run.stdout)
    assert error == [
        "ModuleNotFoundError",
        "wsfast.accelerate('ws4py'): ws4py is not installed (pip install ws4py)",
        "ws4py",
    ]
    assert not all_has_it
    assert not imported


LAZY_ADAPTERS = """
import json, sys
import wsfast.accelerate, wsfast.adapters.websockets, wsfast.adapters.aiohttp, wsfast.adapters.autobahn
import wsfast.adapters.tornado, wsfast.adapters.ws4py, wsfast.adapters.wsproto, wsfast.adapters.websocket_client
import wsfast.adapters.gunicorn, wsfast.compat.wsaccel
libraries = {"websockets", "aiohttp", "autobahn", "tornado", "ws4py", "wsproto", "websocket", "wsaccel", "gunicorn"}
print(json.dumps(sorted(set(sys.modules) & libraries)))
"""


def test_importing_the_adapters_imports_no_library() -> None:
    run = run_python(LAZY_ADAPTERS)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == []


def test_parse_env() -> None:
    assert parse_env(None) == parse_env("") == parse_env("0") == parse_env(" off ") == []
    assert parse_env("1") == parse_env("all") == parse_env("True") == list(LIBRARIES)
    assert parse_env("aiohttp, websocket-client,aiohttp") == ["aiohttp", "websocket_client"]
    with pytest.warns(RuntimeWarning, match="unknown library 'bogus'"):
        assert parse_env("bogus,tornado") == ["tornado"]


def test_post_import_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "wsfast_hook_target.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen: list[ModuleType] = []
    key = object()
    _autoload.watch("wsfast_hook_target", key, seen.append)
    try:
        module = importlib.import_module("wsfast_hook_target")
        assert seen == [module]
        assert module.__loader__.__class__.__name__ == "SourceFileLoader"  # the real loader is back
        del sys.modules["wsfast_hook_target"]
        again = importlib.import_module("wsfast_hook_target")
        assert seen == [module, again]
    finally:
        _autoload.unwatch(key)
        sys.modules.pop("wsfast_hook_target", None)
    assert not any(type(finder).__name__ == "_PostImportFinder" for finder in sys.meta_path)


def test_a_failing_hook_warns_and_the_import_still_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "wsfast_hook_broken.py").write_text("VALUE = 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    key = object()

    def broken(module: ModuleType) -> None:
        raise RuntimeError("boom")

    _autoload.watch("wsfast_hook_broken", key, broken)
    try:
        with pytest.warns(RuntimeWarning, match="boom"):
            assert importlib.import_module("wsfast_hook_broken").VALUE == 2
    finally:
        _autoload.unwatch(key)
        sys.modules.pop("wsfast_hook_broken", None)


def test_the_command_line_writes_and_removes_the_pth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install-pth", "--site-dir", str(tmp_path)]) == 0
    pth = tmp_path / PTH_NAME
    assert pth.read_text() == pth_line()
    assert len(pth.read_text().splitlines()) == 1 and pth.read_text().startswith("import ")
    assert main(["install-pth", "--site-dir", str(tmp_path)]) == 0  # rewriting is fine
    assert main(["uninstall-pth", "--site-dir", str(tmp_path)]) == 0
    assert not pth.exists()
    assert main(["uninstall-pth", "--site-dir", str(tmp_path)]) == 0
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "removed" in out and "websockets" in out


STARTUP = """
import json, site, sys
site.addsitedir(sys.argv[1])  # processes the .pth exactly as at start-up
loaded = "wsfast" in sys.modules
patched = {}
import websockets.frames
patched["websockets"] = websockets.frames.Frame.serialize.__module__
if sys.argv[2] == "wsproto":
    import wsproto.frame_protocol
    patched["wsproto"] = wsproto.frame_protocol.XorMaskerSimple.__module__
print(json.dumps([loaded, patched]))
"""


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, {"websockets": "websockets.frames"}),
        ({"WSFAST_ACCELERATE": "0"}, {"websockets": "websockets.frames"}),
        ({"WSFAST_ACCELERATE": "1"}, {"websockets": "wsfast.adapters.websockets"}),
        (
            {"WSFAST_ACCELERATE": "wsproto"},
            {"websockets": "websockets.frames", "wsproto": "wsfast.adapters.wsproto"},
        ),
    ],
    ids=["unset", "0", "1", "wsproto"],
)
def test_wsfast_accelerate_through_the_pth(tmp_path: Path, env: dict[str, str], expected: dict[str, str]) -> None:
    pytest.importorskip("websockets")
    if "wsproto" in expected:
        pytest.importorskip("wsproto")
    assert main(["install-pth", "--site-dir", str(tmp_path)]) == 0
    run = run_python(
        STARTUP.replace("sys.argv[1]", repr(str(tmp_path))).replace("sys.argv[2]", repr(env.get("WSFAST_ACCELERATE"))),
        env=env,
    )
    assert run.returncode == 0, run.stderr
    loaded, patched = json.loads(run.stdout)
    assert not loaded  # the start-up hook never imports wsfast itself
    assert patched == expected


USER_SITE = """
import json, site, sys
import websockets.frames
print(json.dumps([site.ENABLE_USER_SITE, websockets.frames.Frame.serialize.__module__]))
"""


def test_wsfast_accelerate_at_a_real_interpreter_start(tmp_path: Path) -> None:
    """The .pth in a user site-packages, processed by ``site`` at start-up."""
    pytest.importorskip("websockets")
    env = {"PYTHONUSERBASE": str(tmp_path), "WSFAST_ACCELERATE": "1"}
    install = run_python(
        "import sys; from wsfast.adapters.__main__ import main; sys.exit(main(['install-pth', '--user']))", env=env
    )
    assert install.returncode == 0, install.stderr
    run = run_python(USER_SITE, env=env)
    assert run.returncode == 0, run.stderr
    enabled, module = json.loads(run.stdout)
    if not enabled:
        pytest.skip("user site-packages are disabled in this interpreter (virtualenv?)")
    assert module == "wsfast.adapters.websockets"


def test_deaccelerate_cancels_what_the_environment_armed() -> None:
    code = """
import json, sys
from wsfast.adapters._autoload import autoload
from wsfast.accelerate import deaccelerate
armed = autoload(["websockets"])
deaccelerate("websockets")
import websockets.frames
print(json.dumps([armed, websockets.frames.Frame.serialize.__module__]))
"""
    pytest.importorskip("websockets")
    run = run_python(code)
    assert run.returncode == 0, run.stderr
    armed, module = json.loads(run.stdout)
    assert armed == ["websockets"]
    assert module != "wsfast.adapters.websockets"


def test_no_pth_is_shipped_by_the_package() -> None:
    assert not list((REPO / "wsfast").glob("**/*.pth"))
    assert ".pth" not in (REPO / "pyproject.toml").read_text()
    assert str(REPO) not in pth_line()  # wsfast is located when the line runs, never baked in


def _fake_library(monkeypatch: pytest.MonkeyPatch, **names: object) -> ModuleType:
    module = ModuleType("wsfast_fake_library")
    for name, value in names.items():
        setattr(module, name, value)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module


def _replace(site: Site, original: object) -> object:
    def replacement() -> str:
        return "wsfast"

    return mark(replacement, original)


def test_a_patcher_restores_exactly_and_leaves_later_patches_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    def f() -> str:
        return "f"

    def g() -> str:
        return "g"

    module = _fake_library(monkeypatch, f=f, g=g)
    patcher = Patcher("fake", [Site(module.__name__, "f"), Site(module.__name__, "g")], _replace)
    patcher.install()
    assert module.f() == module.g() == "wsfast"
    assert original_of(module.f) is f
    module.g = lambda: "someone else"
    patcher.uninstall()
    assert module.f is f
    assert module.g() == "someone else"  # not clobbered with the original
    patcher.uninstall()
    assert not patcher.active


def test_a_patcher_warns_about_missing_names_and_fails_without_any(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _fake_library(monkeypatch, f=lambda: "f")
    partial = Patcher("fake", [Site(module.__name__, "f"), Site(module.__name__, "Missing.attribute")], _replace)
    with pytest.warns(RuntimeWarning, match=r"fake has no wsfast_fake_library\.Missing\.attribute"):
        partial.install()
    assert partial.active and module.f() == "wsfast"
    partial.uninstall()
    none = Patcher("fake", [Site(module.__name__, "g")], _replace)
    with pytest.raises(ImportError, match="this version has none of wsfast_fake_library.g"):
        none.install()
    assert not none.active


def test_a_patcher_leaves_compiled_code_alone_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def f() -> str:
        return "f"

    module = _fake_library(monkeypatch, f=f, length=len)
    patcher = Patcher("fake", [Site(module.__name__, "f"), Site(module.__name__, "length")], _replace, compiled)
    patcher.install()
    assert module.f() == "wsfast"
    assert module.length is len
    assert patcher.native == {f"{module.__name__}.length": "builtins.len (compiled)"}
    assert patcher.patched()
    patcher.uninstall()
    assert patcher.native == {}
    assert not patcher.patched()
    only_native = Patcher("fake", [Site(module.__name__, "length")], _replace, compiled)
    only_native.install()  # nothing to patch is not an error: the library is native there
    assert only_native.active and not only_native.patched()
    only_native.uninstall()
