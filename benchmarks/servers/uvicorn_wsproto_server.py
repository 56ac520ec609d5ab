"""Starlette under uvicorn with ``--ws wsproto`` (see ``_uvicorn``)."""

from __future__ import annotations

import _uvicorn

if __name__ == "__main__":
    _uvicorn.serve("wsproto")
