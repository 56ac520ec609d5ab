"""Memory a hostile peer can make a connection hold: the figures of issue 9's holes.

Each case runs in a fresh process (so one case's heap never hides another's)
and prints one line: the case, the implementation, and what it measured.

- ``fragments``: a server :class:`~wsfast.protocol.Connection` fed 120,000
  one-byte fragments of a text message, then empty ones until it fails (in
  reads of 60,000 frames): growth of VmRSS, and the close.
- ``announced``: 50 server ``FrameParser`` objects, each fed a header that
  announces a 16 MiB frame plus 24 bytes of it: growth of VmSize (the address
  space) and VmRSS.
- ``bomb``: a server connection with permessage-deflate and
  ``max_message_size`` 16 MiB receives a message of zeros that inflates to
  64 MiB, in one frame and in sixteen fragments: peak RSS (VmHWM, reset
  first) above the baseline, as a multiple of the limit.

Run: ``python benchmarks/limits.py [case ...]`` (all cases, both
implementations when the extension is built; ``WSFAST_PURE`` is set per run).
"""

from __future__ import annotations

import os
import subprocess
import sys
import zlib

MiB = 1024 * 1024
CASES = ("fragments", "announced", "bomb")


def _status_kib(field: str) -> int:
    """A ``/proc/self/status`` field (VmRSS, VmSize, VmHWM) in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def _reset_peak() -> None:
    """Make VmHWM (the peak RSS) restart from the current RSS (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def _frame(opcode: int, payload: bytes, fin: bool, rsv: int = 0) -> bytes:
    from wsfast.kernels import build_frame

    return build_frame(opcode, payload, fin=fin, rsv=rsv, mask_key=b"\x01\x02\x03\x04")


def fragments() -> str:
    from wsfast.events import Closed
    from wsfast.protocol import Connection

    connection = Connection("server", max_message_size=16 * MiB)
    one_byte = _frame(0, b"a", False)
    empty = _frame(0, b"", False)
    before = _status_kib("VmRSS")
    connection.receive_data(_frame(1, b"a", False))
    frames = 1
    for _ in range(2):
        connection.receive_data(one_byte * 60_000)
        frames += 60_000
    after_one_byte = _status_kib("VmRSS")
    while connection.state.name == "OPEN":
        events = connection.receive_data(empty * 60_000)
        frames += 60_000
    after_empty = _status_kib("VmRSS")
    closed = events[-1]
    assert isinstance(closed, Closed), events
    return (
        f"RSS +{_mib(after_one_byte - before)} after 120,001 one-byte fragments, "
        f"+{_mib(after_empty - before)} after empty ones more, until closed with {closed.code} "
        f"({closed.reason!r}) within {frames:,} frames"
    )


def announced() -> str:
    from wsfast.frames import frame_header
    from wsfast.kernels import FrameParser

    data = frame_header(2, 16 * MiB, fin=True, mask_key=b"\x01\x02\x03\x04") + bytes(24)
    size, rss = _status_kib("VmSize"), _status_kib("VmRSS")
    parsers = [FrameParser(masked=True) for _ in range(50)]
    for parser in parsers:
        assert parser.feed(data) == []
    return f"50 parsers: VmSize +{_mib(_status_kib('VmSize') - size)}, VmRSS +{_mib(_status_kib('VmRSS') - rss)}"


def bomb() -> str:
    from wsfast.exceptions import PayloadTooBig
    from wsfast.extensions import PerMessageDeflate
    from wsfast.protocol import Connection

    limit = 16 * MiB
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = compressor.compress(bytes(64 * MiB)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    deflated = deflated[:-4]  # RFC 7692 §7.2.1: the peer strips 00 00 ff ff
    piece = len(deflated) // 16 + 1
    pieces = [deflated[i : i + piece] for i in range(0, len(deflated), piece)]
    one_frame = _frame(1, deflated, True, rsv=4)
    fragmented = b"".join(
        _frame(0 if i else 1, part, i == len(pieces) - 1, rsv=0 if i else 4) for i, part in enumerate(pieces)
    )
    results = []
    for name, data in (("one frame", one_frame), ("16 fragments", fragmented)):
        negotiated = PerMessageDeflate().accept([])  # a client offering permessage-deflate, no parameters
        assert negotiated is not None
        connection = Connection("server", extensions=[negotiated[1]], max_message_size=limit)
        _reset_peak()
        baseline = _status_kib("VmRSS")
        events = connection.receive_data(data)
        peak = _status_kib("VmHWM") - baseline
        error = getattr(events[-1], "error", None)
        assert isinstance(error, PayloadTooBig), events
        results.append(f"{name}: peak +{_mib(peak)} ({peak * 1024 / limit:.2f}x the limit)")
    return ", ".join(results)


def _run_case(case: str) -> str:
    return {"fragments": fragments, "announced": announced, "bomb": bomb}[case]()


def main(argv: list[str]) -> int:
    """Run each case of ``argv`` (all by default) on each implementation, in its own process."""
    if argv[:1] == ["--case"]:
        from wsfast import IMPLEMENTATION

        print(f"{argv[1]:<10} {IMPLEMENTATION:<7} {_run_case(argv[1])}", flush=True)
        return 0
    cases = argv or list(CASES)
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        print(f"unknown case(s): {', '.join(unknown)}; choose from {', '.join(CASES)}", file=sys.stderr)
        return 2
    status = 0
    for case in cases:
        for pure in ("", "1"):
            env = {**os.environ, "WSFAST_PURE": pure}
            status |= subprocess.call([sys.executable, __file__, "--case", case], env=env)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
