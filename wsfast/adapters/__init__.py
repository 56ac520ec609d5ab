"""Adapters that run other WebSocket libraries' hot paths on wsfast's kernels.

One module per library (``websockets``, ``wsproto``, ``aiohttp``,
``autobahn``, ``websocket_client``, ``ws4py``, ``tornado``, ``gunicorn``),
each with ``install()``, ``uninstall()``, ``is_active()``, its ``PATCHER``
(a :class:`wsfast.adapters._patch.Patcher`: ``patched()`` and ``native``,
what it left alone as already compiled), and a docstring that says exactly
which names it patches, where, and how it converts the calling convention.
Adapters import nothing from wsfast but :mod:`wsfast.kernels`; each is
imported explicitly, usually through :func:`wsfast.accelerate`.

``python -m wsfast.adapters install-pth`` / ``uninstall-pth`` add or remove
the opt-in ``wsfast-accelerate.pth`` that applies ``WSFAST_ACCELERATE`` at
interpreter start; ``python -m wsfast.adapters list`` shows what is
supported and installed.
"""
