"""``python -m wsfast.adapters``: the opt-in start-up hook, and what is supported.

Commands:

- ``install-pth [--site-dir DIR | --user]``: write ``wsfast-accelerate.pth``
  into site-packages (default: this interpreter's ``purelib``). From then on,
  every interpreter started with ``WSFAST_ACCELERATE=1`` (or a list of names)
  in its environment accelerates those libraries as they are imported.
  Without the variable the file costs one environment lookup per start. pip
  never installs this file: only this command does.
- ``uninstall-pth [--site-dir DIR | --user]``: remove it.
- ``list``: the supported libraries, whether each is installed, and where the
  ``.pth`` is installed, if anywhere.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import site
import sys
import sysconfig
from collections.abc import Sequence

from wsfast.adapters._autoload import ENV_VAR, LIBRARIES, PTH_NAME, pth_line

__all__ = ["main", "pth_path"]


def pth_path(site_dir: str | None = None, user: bool = False) -> str:
    """Where ``wsfast-accelerate.pth`` goes for these options."""
    if site_dir is None:
        site_dir = site.getusersitepackages() if user else sysconfig.get_path("purelib")
    return os.path.join(site_dir, PTH_NAME)


def _install(path: str) -> int:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as file:
        file.write(pth_line())
    os.replace(temporary, path)
    print(f"wrote {path}")
    print(f"set {ENV_VAR}=1 (or a comma-separated list of libraries) to accelerate them at start-up")
    return 0


def _uninstall(path: str) -> int:
    try:
        os.remove(path)
    except FileNotFoundError:
        print(f"nothing to remove: {path} does not exist")
        return 0
    print(f"removed {path}")
    return 0


def _list() -> int:
    width = max(len(name) for name in LIBRARIES)
    for name, library in LIBRARIES.items():
        installed = importlib.util.find_spec(library.package) is not None
        print(f"{name:<{width}}  {'installed' if installed else 'not installed'}  ({library.distribution})")
    for path in (pth_path(), pth_path(user=True)):
        if os.path.exists(path):
            print(f"start-up hook: {path} ({ENV_VAR}={os.environ.get(ENV_VAR, '')!r})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m wsfast.adapters", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for command, help_text in (
        ("install-pth", f"write {PTH_NAME} so that {ENV_VAR} works at interpreter start"),
        ("uninstall-pth", f"remove {PTH_NAME}"),
    ):
        sub = commands.add_parser(command, help=help_text)
        where = sub.add_mutually_exclusive_group()
        where.add_argument("--site-dir", help="the site-packages directory (default: this interpreter's)")
        where.add_argument("--user", action="store_true", help="the user site-packages directory")
    commands.add_parser("list", help="supported libraries and whether they are installed")
    args = parser.parse_args(argv)
    if args.command == "list":
        return _list()
    path = pth_path(args.site_dir, args.user)
    return _install(path) if args.command == "install-pth" else _uninstall(path)


if __name__ == "__main__":
    sys.exit(main())
