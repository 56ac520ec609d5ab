"""gunicorn benchmark server: its ASGI worker (``-k asgi``, one worker) serving a Starlette echo endpoint.

Echo mode only, like ``uvicorn_server.py`` (whose endpoint it serves).
gunicorn's ASGI worker speaks WebSocket itself
(``gunicorn.asgi.websocket``). The ready line names the worker's PID, the
process that serves, so the runner measures its CPU; the runner stops the
arbiter.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

import _common
from gunicorn.app.base import BaseApplication
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from uvicorn_server import echo


class EchoApplication(BaseApplication):  # type: ignore[misc]
    """gunicorn with its settings given here, not read from a command line."""

    def __init__(self, app: Any, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.application


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def main() -> None:
    args = _common.parse_args(__doc__ or "")
    if args.mode != "echo":
        sys.exit("gunicorn_server.py serves --mode echo only")
    port = args.port or free_port(args.host)
    options = {
        "bind": f"{args.host}:{port}",
        "workers": 1,
        "worker_class": "asgi",
        "loglevel": "critical",
        "accesslog": None,
        "backlog": 4096,
        "post_worker_init": lambda worker: _common.ready(port),  # in the worker: its PID
    }
    sys.argv = sys.argv[:1]  # gunicorn parses the command line too
    EchoApplication(Starlette(routes=[WebSocketRoute("/", echo)]), options).run()


if __name__ == "__main__":
    main()
