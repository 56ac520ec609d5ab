"""Whole messages straight from a read, in pure Python.

On an OPEN server connection without extensions and with nothing partly
received, :func:`deliver_whole_messages` takes the complete, unfragmented,
masked text and binary frames at the start of a read and hands each
message to a callback, without frame or event objects; the caller gives
the rest of the read (a control frame, a fragment, a partial frame, or
anything the protocol must judge) to :meth:`wsfast.Connection.receive_data`.
``_receive_c.pyx`` is the compiled twin; ``wsfast.server`` picks one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .kernels import mask

__all__ = ["deliver_whole_messages"]

_TEXT_FIN = 0x81
_BINARY_FIN = 0x82


def deliver_whole_messages(data: Any, max_size: int, on_message: Callable[[str | bytes], bool]) -> int:
    """Hand each whole message at the start of ``data`` to ``on_message``.

    A frame is taken only if it is whole in ``data``, final, without RSV
    bits, text or binary, masked, with its length in the fewest bytes and at
    most ``max_size``, and (text) valid UTF-8; the first frame that is not
    stops the scan, untouched.

    Args:
        data: bytes-like, read from a client.
        max_size: the largest message accepted.
        on_message: called with each message (``str`` or ``bytes``);
            returning False stops the scan after it.

    Returns:
        How many bytes of ``data`` were delivered: the protocol gets the rest.
    """
    view = memoryview(data).cast("B")
    size = len(view)
    position = 0
    while size - position >= 6:
        b0 = view[position]
        b1 = view[position + 1]
        if (b0 != _TEXT_FIN and b0 != _BINARY_FIN) or not b1 & 0x80:
            break
        length = b1 & 0x7F
        header = 2
        if length == 126:
            if size - position < 8:
                break
            length = int.from_bytes(view[position + 2 : position + 4], "big")
            header = 4
            if length < 126:
                break
        elif length == 127:
            if size - position < 14:
                break
            length = int.from_bytes(view[position + 2 : position + 10], "big")
            header = 10
            if length < 65536 or length >> 63:
                break
        if length > max_size or size - position - header - 4 < length:
            break
        key = view[position + header : position + header + 4]
        start = position + header + 4
        payload = mask(view[start : start + length], key)
        message: str | bytes
        if b0 == _TEXT_FIN:
            try:
                message = payload.decode("utf-8")
            except UnicodeDecodeError:
                break  # the protocol fails the connection (1007)
        else:
            message = payload
        position = start + length
        if not on_message(message):
            break
    return position
