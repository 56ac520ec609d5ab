"""wsfast.aio benchmark server: ``wsfast.aio.serve`` on uvloop with the ``Handler``s of ``wsfast_server.py``.

The same callbacks as the selectors server's (see ``_common``): they only use
``ws.send`` and ``server.broadcast``, which ``wsfast.aio`` offers too.
"""

from __future__ import annotations

import asyncio

import _common
import uvloop
from wsfast_server import Broadcast, Echo

import wsfast.aio


async def main() -> None:
    args = _common.parse_args(__doc__ or "")
    handler = Echo() if args.mode == "echo" else Broadcast(args.size)
    options = {"ping_interval": None, "max_connections": 100_000, "backlog": 4096}
    async with wsfast.aio.serve(handler, args.host, args.port, **options) as server:
        if isinstance(handler, Broadcast):
            handler.server = server  # type: ignore[assignment] - the same broadcast()
        _common.ready(server.port)
        await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main())
