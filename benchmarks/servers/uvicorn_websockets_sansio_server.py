"""Starlette under uvicorn with ``--ws websockets-sansio`` (see ``_uvicorn``)."""

from __future__ import annotations

import _uvicorn

if __name__ == "__main__":
    _uvicorn.serve("websockets-sansio")
