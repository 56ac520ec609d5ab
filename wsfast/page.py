"""The live page that ``wsfast serve`` shows at ``/``, and the HTTP handler serving it.

The page (``wsfast/static/index.html``) is one self-contained file: plain
JavaScript and CSS, no external resources. It opens two WebSockets to the
host it came from (``ws://`` or ``wss://`` as the page's own scheme): one
to ``/echo`` and one to ``/feed``. It shows, under stable element ids:

- ``#state`` and ``#feed-state``: the echo and feed sockets' ``readyState``
  (CONNECTING, OPEN, CLOSING, CLOSED);
- ``#rate`` and ``#throughput``: messages/s and MB/s received on both;
- ``#latency``: the round trip in ms of a text ``ping:<performance.now()>``
  that it sends to the echo socket once a second;
- ``#feed-count``, ``#feed-last`` and ``#feed-missed``: feed messages
  received, the last value, and the sequence numbers skipped (messages the
  server dropped for a slow consumer);
- ``#chart``: a canvas with the last feed values;
- ``#message`` and ``#send`` (send a text), ``#send-binary`` (send the 16
  bytes 0..15), ``#close`` (``ws.close(1000, "bye")``), ``#reconnect``;
- ``#log``: what was sent and echoed, opens and closes, newest first;
- ``#origin-warning``: shown when the server's ``Origin`` allowlist refuses
  the page's own origin (see :func:`page_handler`);
- ``#chart``'s ``data-ticks``: the labels of its value axis.
"""

from __future__ import annotations

import functools
import html
import logging
import os
from collections.abc import Callable, Iterable
from importlib import resources

from .handshake import Headers, Request, Response

__all__ = ["WORKER_HEADER", "http_handler", "index_html", "page_handler"]

logger = logging.getLogger("wsfast.page")

#: The response header of ``/healthz`` that names the worker process (its PID).
WORKER_HEADER = "X-Wsfast-Worker"


@functools.cache
def index_html() -> bytes:
    """The live page, as UTF-8 bytes (read once from the package data)."""
    return resources.files("wsfast").joinpath("static/index.html").read_bytes()


def http_handler(request: Request) -> Response | None:
    """Answer the plain HTTP requests of ``wsfast serve``.

    ``GET /`` (or ``/index.html``) returns the live page; ``GET /healthz``
    returns ``ok`` with the serving process's PID in the ``X-Wsfast-Worker``
    header, so that one can tell ``--workers`` apart. ``HEAD`` gets the same
    headers without a body; other methods on these paths get 405.

    Args:
        request: a request that is not a WebSocket upgrade.

    Returns:
        The response, or ``None`` for any other path (the server answers 404).
    """
    path = request.path
    if path in ("/", "/index.html"):
        body = index_html()
        content_type = "text/html; charset=utf-8"
        extra: list[tuple[str, str]] = [("Cache-Control", "no-store")]
    elif path == "/healthz":
        body = b"ok\n"
        content_type = "text/plain; charset=utf-8"
        extra = [("Cache-Control", "no-store"), (WORKER_HEADER, str(os.getpid()))]
    else:
        return None
    if request.method not in ("GET", "HEAD"):
        return Response.plain(405, "Method Not Allowed", [("Allow", "GET, HEAD")])
    headers = Headers(
        [
            ("Connection", "close"),
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("X-Content-Type-Options", "nosniff"),
            *extra,
        ]
    )
    return Response(200, "OK", headers, body if request.method == "GET" else b"")


# The placeholder of the page that page_handler() fills in.
_ORIGIN_WARNING = b'<p id="origin-warning" class="card warning" role="alert" hidden></p>'
# The refused origins that page_handler() logs once each, at most.
_WARNED_ORIGINS = 64


def page_handler(
    origins: Iterable[str] | None = None, *, secure: bool = False
) -> Callable[[Request], Response | None]:
    """:func:`http_handler` for a server whose ``Origin`` allowlist is ``origins``.

    A browser sends the page's own origin (``http://`` or ``https://`` and
    the ``Host`` it asked for) with the page's WebSockets. When ``origins``
    does not include it, those WebSockets would be refused with 403 and the
    page would only show them closing: instead the page says so at the top,
    and the server logs a warning (once per origin).

    Args:
        origins: the allowlist of the server (``None``: all are allowed).
        secure: whether the server serves TLS (the page's origin is then ``https://``).
    """
    if origins is None:
        return http_handler
    allowed = {origin.lower() for origin in origins}
    scheme = "https" if secure else "http"
    warned: set[str] = set()

    def handler(request: Request) -> Response | None:
        response = http_handler(request)
        host = request.headers.get("Host")
        if response is None or response.status != 200 or request.path not in ("/", "/index.html") or not host:
            return response
        origin = f"{scheme}://{host}".lower()
        if origin in allowed:
            return response
        if origin not in warned and len(warned) < _WARNED_ORIGINS:
            warned.add(origin)
            logger.warning(
                "the page was opened from %s, which the Origin allowlist does not include: "
                "its WebSockets will be refused (403); allow it with --origin %s",
                origin,
                origin,
            )
        text = html.escape(
            f"This server refuses WebSockets from this page: its Origin allowlist does not include {origin}. "
            f"Allow it with --origin {origin} (or open the page from an allowed origin)."
        )
        warning = _ORIGIN_WARNING.replace(b" hidden></p>", f">{text}</p>".encode())
        body = index_html().replace(_ORIGIN_WARNING, warning)
        headers = Headers(
            [(name, str(len(body)) if name == "Content-Length" else value) for name, value in response.headers.items()]
        )
        return Response(200, "OK", headers, body if request.method == "GET" else b"")

    return handler
