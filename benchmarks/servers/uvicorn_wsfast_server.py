"""Starlette under uvicorn with ``--ws wsfast.asgi:UvicornProtocol`` (see ``_uvicorn``)."""

from __future__ import annotations

import _uvicorn

if __name__ == "__main__":
    _uvicorn.serve("wsfast.asgi:UvicornProtocol")
