"""Run a wsfast server in a thread for a test, and stop it whatever happens.

``running_server()`` starts a :class:`wsfast.server.Server` on 127.0.0.1 with
a free port, yields it, and always shuts it down with a bounded join: a test
can never leave a server thread behind, and a server that does not stop fails
the test. :class:`Recorder` is an echo handler that records what the server
saw, in queues a test reads with timeouts. :func:`in_loop` runs a function in
the server's loop thread (the ``ws`` objects are not thread-safe) and returns
its result. :func:`make_tls` builds a trustme CA, a server ``SSLContext`` and
a client one.

Every wait here is bounded; ``WSFAST_TEST_TIMEOUT_FACTOR`` scales them all
on slow CI machines (as websockets' ``tests/utils.py`` does).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import queue
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.timeouts import TIMEOUT
from wsfast.cli import build_parser
from wsfast.cli.serve import create_server
from wsfast.server import Handler, Server, ServerConnection

__all__ = [
    "Recorder",
    "TLS",
    "in_loop",
    "make_tls",
    "running_server",
    "serving",
    "url",
    "wait_until",
]



class Recorder(Handler):
    """An echo handler that records every callback in thread-safe queues.

    Attributes:
        opened: the ``ws`` of each connection, as it opens.
        messages: ``(ws, message)`` for each message received.
        closed: ``(ws, code, reason)`` for each connection that ended.
        errors: ``(ws, error)`` for each exception a callback raised.
        echo: whether messages are sent back (True by default).
    """

    def __init__(self, *, echo: bool = True) -> None:
        self.echo = echo
        self.opened: queue.Queue[ServerConnection] = queue.Queue()
        self.messages: queue.Queue[tuple[ServerConnection, str | bytes]] = queue.Queue()
        self.closed: queue.Queue[tuple[ServerConnection, int, str]] = queue.Queue()
        self.errors: queue.Queue[tuple[ServerConnection, BaseException]] = queue.Queue()

    def on_open(self, ws: ServerConnection) -> None:
        self.opened.put(ws)

    def on_message(self, ws: ServerConnection, message: str | bytes) -> None:
        self.messages.put((ws, message))
        if self.echo:
            ws.send(message)

    def on_close(self, ws: ServerConnection, code: int, reason: str) -> None:
        self.closed.put((ws, code, reason))

    def on_error(self, ws: ServerConnection, error: BaseException) -> None:
        self.errors.put((ws, error))

    def next_open(self, timeout: float = TIMEOUT) -> ServerConnection:
        """The next connection to open (raises ``queue.Empty`` after ``timeout``)."""
        return self.opened.get(timeout=timeout)

    def next_close(self, timeout: float = TIMEOUT) -> tuple[int, str]:
        """``(code, reason)`` of the next connection to end."""
        _, code, reason = self.closed.get(timeout=timeout)
        return code, reason

    def next_message(self, timeout: float = TIMEOUT) -> str | bytes:
        """The next message the server received."""
        return self.messages.get(timeout=timeout)[1]


@contextlib.contextmanager
def running_server(
    handler: Handler | None = None,
    *,
    setup: Callable[[Server], None] | None = None,
    stop_timeout: float = 2.0,
    **server_kwargs: Any,
) -> Iterator[Server]:
    """A :class:`~wsfast.server.Server` on 127.0.0.1, a free port, in a thread.

    Args:
        handler: the application callbacks (an echo :class:`Recorder` when
            ``None`` and no ``setup``).
        setup: called with the server before it starts, to register
            ``@server.on_*`` decorators.
        stop_timeout: the graceful shutdown's bound, passed to ``shutdown()``.
        server_kwargs: any other :class:`Server` argument (``port`` defaults
            to 0, ``host`` to ``127.0.0.1``).

    Yields:
        The running server; read ``server.port``.

    Raises:
        AssertionError: on exit, if the server thread did not stop in time
            (unless the test body already raised).
    """
    if handler is None and setup is None:
        handler = Recorder()
    server_kwargs.setdefault("host", "127.0.0.1")
    server_kwargs.setdefault("port", 0)
    server = Server(handler, **server_kwargs)
    if setup is not None:
        setup(server)
    thread = server.start()
    try:
        yield server
    except BaseException:
        server.shutdown(timeout=stop_timeout)
        thread.join(stop_timeout + TIMEOUT)
        raise
    server.shutdown(timeout=stop_timeout)
    thread.join(stop_timeout + TIMEOUT)
    assert not thread.is_alive(), "the server thread did not stop after shutdown()"


def url(server: Server, path: str = "/", *, tls: bool = False) -> str:
    """The ws:// (or wss://) URL of ``server`` on 127.0.0.1."""
    return f"{'wss' if tls else 'ws'}://127.0.0.1:{server.port}{path}"


def in_loop(server: Server, function: Callable[..., Any], *args: Any, timeout: float = TIMEOUT) -> Any:
    """Run ``function(*args)`` in the server's loop thread; return its result.

    Raises:
        Whatever ``function`` raised; ``TimeoutError`` if the loop did not run
        it within ``timeout``.
    """
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(function(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            future.set_exception(exc)

    server.call_soon_threadsafe(run)
    return future.result(timeout=timeout)


def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


@dataclass(frozen=True)
class TLS:
    """A trustme CA and the contexts of both ends, for wss:// on 127.0.0.1.

    Attributes:
        server_context: pass as ``Server(ssl=...)``.
        client_context: trusts the CA; for Python clients.
        ca_file: the CA certificate in PEM, for clients that take a path
            (Node's ``ws`` via ``ca``).
    """

    server_context: ssl.SSLContext
    client_context: ssl.SSLContext
    ca_file: Path


def make_tls(directory: Path) -> TLS:
    """A fresh CA with a certificate for ``127.0.0.1`` and ``localhost``.

    Args:
        directory: where to write the CA's PEM file.
    """
    import trustme  # a test dependency, needed only by wss:// tests

    ca = trustme.CA()
    certificate = ca.issue_cert("127.0.0.1", "localhost")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_context)
    client_context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client_context)
    ca_file = directory / "wsfast-test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return TLS(server_context, client_context, ca_file)


@contextlib.contextmanager
def serving(*flags: str) -> Iterator[int]:
    """The server of ``wsfast serve --port 0 FLAGS``, in a thread; yields its port."""
    args = build_parser().parse_args(["serve", "--port", "0", *flags])
    server, feed = create_server(args)
    if feed is not None:
        feed.start()
    thread = server.start()
    try:
        yield server.port
    finally:
        server.shutdown(timeout=1.0)
        thread.join(TIMEOUT)
        assert not thread.is_alive()
