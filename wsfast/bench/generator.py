"""The load generator of ``wsfast bench``: its connections and its loop (method in :mod:`wsfast.bench`)."""

from __future__ import annotations

import array
import itertools
import os
import selectors
import socket
import ssl
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._version import __version__
from ..exceptions import InvalidHandshake, ProtocolError
from ..frames import Opcode
from ..handshake import ClientHandshake, ResponseParser
from ..kernels import FrameParser, build_frame
from ..loop import Poller
from .options import BenchOptions
from .stats import BenchResult, cpu_busy_seconds, machine_info, percentiles, process_cpu_seconds

__all__ = ["MAX_BATCH", "POOL", "BenchError", "run"]

#: Pre-masked frames cycled through (see :mod:`wsfast.bench`).
POOL = 256
#: At most this many messages go out in one ``send()``.
MAX_BATCH = 1024
_RETRY = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_CLOSE_WAIT = 1.0  # seconds given to the servers to answer our close frames
_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


class BenchError(Exception):
    """The run could not start (no connection could be opened)."""


# --- connections ----------------------------------------------------------------------


class _Conn:
    """One WebSocket connection of the generator."""

    __slots__ = (
        "index",
        "sock",
        "fd",
        "parser",
        "times",
        "sent",
        "received",
        "quota",
        "pos",
        "pending",
        "open",
        "closing",
        "since_trigger",
        "tls",
        "early",
    )

    def __init__(self, index: int, sock: socket.socket, quota: int) -> None:
        self.index = index
        self.sock = sock
        self.fd = sock.fileno()
        self.parser = FrameParser(masked=False, max_frame_size=1 << 30)
        #: The send time of each message in flight, oldest first.
        self.times: deque[int] = deque()
        self.sent = 0
        self.received = 0
        self.quota = quota
        #: The next frame of the pool to send.
        self.pos = (index * 37) % POOL
        #: Bytes that the socket did not take yet.
        self.pending = bytearray()
        self.open = True
        self.closing = False
        self.since_trigger = 0
        self.tls = isinstance(sock, ssl.SSLSocket)
        self.early: list[Any] = []

    def fileno(self) -> int:
        """The socket's descriptor, for the poller."""
        return self.fd


def _masked_pool(opcode: int, payload: bytes, count: int) -> tuple[bytes, int]:
    """``count`` frames of ``payload``, each with its own random mask key, end to end."""
    frames = [build_frame(opcode, payload, mask_key=os.urandom(4)) for _ in range(count)]
    return b"".join(frames), len(frames[0])


def _control_frame(opcode: int, payload: bytes) -> bytes:
    return build_frame(opcode, payload, mask_key=os.urandom(4))


def _raise_fd_limit(wanted: int) -> None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        except (ValueError, OSError):
            pass


# --- the generator ----------------------------------------------------------------------------


@dataclass
class _Window:
    """The counters when the measured window opened (``start``, ``perf_counter_ns()``)."""

    start: int
    received: int = 0
    bytes: int = 0
    sent: int = 0
    cpu: float = 0.0
    server_cpu: float | None = None
    busy: list[float] | None = None


class _Generator:
    """One run of the load generator: its connections, its loop, its counters."""

    def __init__(self, options: BenchOptions) -> None:
        self.o = options
        self.handshake_template = ClientHandshake(options.url)  # validates the URL
        self.poller = Poller()
        self.conns: list[_Conn] = []
        self.open_count = 0
        self.errors = 0
        self.error_samples: list[str] = []
        opcode = Opcode.TEXT if options.text else Opcode.BINARY
        payload = (b"wsfast-bench-" * (options.size // 13 + 1))[: options.size]
        if not options.text:
            payload = os.urandom(options.size)
        if options.mode == "feed":
            trigger = (options.trigger or "").encode()
            self.ring, self.frame_len = _masked_pool(Opcode.TEXT, trigger, POOL + 1)
        else:
            batch = min(options.depth, MAX_BATCH)
            self.ring, self.frame_len = _masked_pool(opcode, payload, POOL + batch)
        self.ring_view = memoryview(self.ring)
        self.max_batch = min(options.depth, MAX_BATCH)
        self.latencies: array.array[int] = array.array("q")
        #: Payload bytes and messages received, messages sent, since the start.
        self.bytes = 0
        self.received = 0
        self.sent = 0
        self.stopping = False
        #: What handles a connection's readiness: the mode's, then closing's.
        self.on_ready: Callable[[_Conn, int], None] = self.on_feed if options.mode == "feed" else self.on_replies
        #: The receive buffer of every connection.
        self.buffer = bytearray(1 << 20)
        self.view = memoryview(self.buffer)
        #: ``--rate``: nanoseconds between two messages of a connection (0: as fast as replies come).
        self.rate_ns = 1e9 / options.rate if options.rate else 0.0
        self.t0 = 0  # perf_counter_ns() at the start
        self.t_recv = 0  # perf_counter_ns() when the last poll() returned
        self.t_wall = 0  # time.time_ns() then, with --timestamped
        self.last_activity = 0
        self.next_tick = 0
        self.measuring = False
        self.window = _Window(start=0)
        self.window_end: int | None = None
        #: Whether the progress line is rewritten in place (stderr is a terminal).
        self.progress_in_place = sys.stderr.isatty()
        self.ssl_context: ssl.SSLContext | None = None
        if self.handshake_template.secure:
            self.ssl_context = ssl.create_default_context()
            if options.insecure:
                self.ssl_context.check_hostname = False
                self.ssl_context.verify_mode = ssl.CERT_NONE

    # --- errors -----------------------------------------------------------------------------

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 10:
            self.error_samples.append(text)

    # --- opening ----------------------------------------------------------------------------

    def open_all(self) -> None:
        o = self.o
        _raise_fd_limit(o.connections + 64)
        quotas = [0] * o.connections
        if o.count is not None:
            share, extra = divmod(o.count, o.connections)
            quotas = [share + (1 if i < extra else 0) for i in range(o.connections)]
        for index in range(o.connections):
            try:
                conn = self.open_one(index, quotas[index])
            except (OSError, InvalidHandshake, ProtocolError, ValueError) as exc:
                self.error(f"connection {index}: {type(exc).__name__}: {exc}")
                continue
            self.conns.append(conn)
            self.open_count += 1
            self.poller.register(conn, _READ, self.on_ready)
            for frame in conn.early:
                if frame.opcode == Opcode.PING:
                    self.write(conn, _control_frame(Opcode.PONG, frame.payload))
            conn.early = []
        if not self.conns:
            raise BenchError(f"no connection to {o.url} could be opened: {self.error_samples[0]}")

    def open_one(self, index: int, quota: int) -> _Conn:
        o = self.o
        handshake = ClientHandshake(o.url, user_agent=f"wsfast-bench/{__version__}")
        sock = socket.create_connection((handshake.host, handshake.port), timeout=o.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                sock = self.ssl_context.wrap_socket(sock, server_hostname=handshake.host)
            sock.sendall(handshake.request().serialize())
            parser = ResponseParser()
            while True:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("the server closed the connection during the handshake")
                response = parser.feed(data)
                if response is not None:
                    break
            handshake.validate(response)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        conn = _Conn(index, sock, quota)
        # Frames sent before the clock starts are parsed, never counted.
        conn.early = conn.parser.feed(parser.trailing) if parser.trailing else []
        return conn

    # --- writing ------------------------------------------------------------------------------

    def write(self, conn: _Conn, data: Any) -> None:
        """Send ``data`` now, keeping what the socket does not take for later."""
        if conn.pending:
            conn.pending += data
            return
        try:
            n = conn.sock.send(data)
        except _RETRY:
            n = 0
        except OSError as exc:
            self.lost(conn, f"send failed: {exc}")
            return
        if n < len(data):
            conn.pending += data[n:]
            self.poller.modify(conn, _READ | _WRITE, self.on_ready)

    def flush(self, conn: _Conn) -> None:
        pending = conn.pending
        try:
            n = conn.sock.send(pending)
        except _RETRY:
            return
        except OSError as exc:
            self.lost(conn, f"send failed: {exc}")
            return
        del pending[:n]
        if not pending:
            self.poller.modify(conn, _READ, self.on_ready)

    def send_messages(self, conn: _Conn, k: int) -> None:
        """Send the next ``k`` messages of the pool on ``conn`` in one write."""
        flen = self.frame_len
        view = self.ring_view
        times = conn.times
        while k > 0:
            batch = k if k <= self.max_batch else self.max_batch
            pos = conn.pos
            conn.pos = (pos + batch) % POOL
            now = time.perf_counter_ns()
            if batch == 1:
                times.append(now)
            else:
                times.extend(itertools.repeat(now, batch))
            conn.sent += batch
            self.sent += batch
            self.write(conn, view[pos * flen : (pos + batch) * flen])
            k -= batch

    def send_trigger(self, conn: _Conn) -> None:
        pos = conn.pos
        conn.pos = (pos + 1) % POOL
        flen = self.frame_len
        conn.sent += 1
        self.sent += 1
        self.write(conn, self.ring_view[pos * flen : (pos + 1) * flen])

    # --- reading --------------------------------------------------------------------------------

    def lost(self, conn: _Conn, reason: str) -> None:
        if not conn.open:
            return
        conn.open = False
        self.open_count -= 1
        try:
            self.poller.unregister(conn)
        except (KeyError, ValueError, OSError):
            pass
        try:
            conn.sock.close()
        except OSError:
            pass
        if not conn.closing:
            self.error(f"connection {conn.index}: {reason}")

    def control(self, conn: _Conn, opcode: int, payload: bytes) -> None:
        """Answer a control frame (or a stray continuation) outside the hot path."""
        if opcode == Opcode.PING:
            self.write(conn, _control_frame(Opcode.PONG, payload))
        elif opcode == Opcode.CLOSE:
            if conn.closing:
                self.lost(conn, "closed")
                return
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            reason = payload[2:].decode("utf-8", "replace")
            self.write(conn, _control_frame(Opcode.CLOSE, payload[:2]))
            self.lost(conn, f"closed by the server: {code} {reason}".rstrip())

    # --- the loop -------------------------------------------------------------------------------

    def run(self) -> BenchResult:
        """Open the connections, run the traffic until the end of the window, measure."""
        o = self.o
        self.open_all()
        counting = o.count is not None
        self.t0 = t0 = time.perf_counter_ns()
        warmup_ns = int(o.warmup * 1e9) if not counting else 0
        self.window = self.snapshot(t0 + warmup_ns)
        self.measuring = warmup_ns == 0
        self.window_end = None if counting else self.window.start + int((o.duration or 0.0) * 1e9)
        self.last_activity = t0
        self.next_tick = t0
        self.start_traffic()
        interrupted = False
        next_progress = t0 + 1_000_000_000
        last_progress = (t0, 0)
        poll = self.poller.poll
        perf = time.perf_counter_ns
        try:
            while True:
                now = perf()
                if not self.measuring and now >= self.window.start:
                    self.open_window(now)
                if self.finished(now):
                    break
                if self.rate_ns and now >= self.next_tick:
                    self.send_on_schedule(now)
                if o.progress and now >= next_progress:
                    self.show_progress(now, last_progress)
                    last_progress = (now, self.received)
                    next_progress += 1_000_000_000
                ready = poll(max(0.0, (self.next_tick - now) / 1e9) if self.rate_ns else 0.1)
                if not ready:
                    continue
                self.t_recv = perf()
                self.t_wall = time.time_ns() if o.timestamped else 0
                self.last_activity = self.t_recv
                for conn, callback, events in ready:
                    callback(conn, events)
        except KeyboardInterrupt:  # Ctrl-C: stop and report what was measured
            interrupted = True
        return self.report(perf(), interrupted)

    def snapshot(self, start: int) -> _Window:
        """The counters now, for a window that opens at ``start``."""
        return _Window(
            start=start,
            received=self.received,
            bytes=self.bytes,
            sent=self.sent,
            cpu=time.process_time(),
            server_cpu=self.server_cpu(),
            busy=cpu_busy_seconds(),
        )

    def open_window(self, now: int) -> None:
        """The warm-up is over: measure from ``now``."""
        self.measuring = True
        self.window = self.snapshot(now)
        del self.latencies[:]
        if self.window_end is not None:
            self.window_end = now + int((self.o.duration or 0.0) * 1e9)

    def finished(self, now: int) -> bool:
        """Whether the run is over: the window ended, the count was reached, or it cannot go on."""
        o = self.o
        if self.window_end is not None and now >= self.window_end:
            return True
        if o.count is not None and self.received >= o.count:
            return True
        if not self.open_count:
            return True
        if o.count is not None and now - self.last_activity > o.timeout * 1e9:
            self.error(f"no message for {o.timeout:g} s: gave up")
            return True
        return False

    def start_traffic(self) -> None:
        """Fill every connection's window, or fire the first triggers."""
        o = self.o
        if o.mode == "feed":
            if o.trigger is not None:
                first = min(self.conns, key=lambda conn: conn.index)
                for _ in range(o.depth):
                    self.send_trigger(first)
        elif not self.rate_ns:
            for conn in list(self.conns):
                k = o.depth if o.count is None else min(o.depth, conn.quota)
                if k:
                    self.send_messages(conn, k)

    def send_on_schedule(self, now: int) -> None:
        """``--rate``: send what each connection is due by ``now`` (within its ``--depth``)."""
        o = self.o
        target = int((now - self.t0) / self.rate_ns) + 1
        for conn in self.conns:
            if not conn.open:
                continue
            k = min(target - conn.sent, o.depth - len(conn.times))
            if o.count is not None:
                k = min(k, conn.quota - conn.sent)
            if k > 0:
                self.send_messages(conn, k)
        self.next_tick = now + int(min(max(self.rate_ns, 1e5), 1e6))

    def read_frames(self, conn: _Conn, events: int) -> list[Any] | None:
        """Write what waits, read what came and parse it; ``None`` when there is nothing to handle."""
        if not conn.open:
            return None
        if events & _WRITE and conn.pending:
            self.flush(conn)
            if not conn.open:
                return None
        if not events & _READ:
            return None
        buffer = self.buffer
        sock = conn.sock
        try:
            n = sock.recv_into(buffer)
        except _RETRY:
            return None
        except OSError as exc:
            self.lost(conn, f"receive failed: {exc}")
            return None
        if not n:
            self.lost(conn, "the server closed the TCP connection")
            return None
        if conn.tls and sock.pending():  # type: ignore[attr-defined]
            # Decrypted bytes the selector cannot see: take them too.
            extra = sock.recv(sock.pending())  # type: ignore[attr-defined]
            buffer[n : n + len(extra)] = extra
            n += len(extra)
        try:
            return conn.parser.feed(self.view[:n])
        except ProtocolError as exc:
            self.lost(conn, f"protocol error: {exc}")
            return None

    def on_replies(self, conn: _Conn, events: int) -> None:
        """echo, pipeline: count the replies, record their latency, send as many messages again."""
        frames = self.read_frames(conn, events)
        if not frames:
            return
        t_recv = self.t_recv
        times = conn.times
        record = self.latencies.append
        nbytes = 0
        got = 0
        try:
            for frame in frames:
                opcode = frame.opcode
                if opcode > 2:
                    self.control(conn, opcode, frame.payload)
                    continue
                nbytes += len(frame.payload)
                if frame.fin:
                    got += 1
                    record(t_recv - times.popleft())
        except IndexError:
            self.lost(conn, "the server sent a message that was not a reply")
            return
        finally:
            self.bytes += nbytes
        if not got:
            return
        self.received += got
        conn.received += got
        k = got
        if self.rate_ns:
            k = min(got, int((t_recv - self.t0) / self.rate_ns) + 1 - conn.sent)
        if self.o.count is not None:
            k = min(k, conn.quota - conn.sent)
        if k > 0 and conn.open:
            self.send_messages(conn, k)

    def on_feed(self, conn: _Conn, events: int) -> None:
        """feed: count the messages (up to ``--count``), their latency with ``--timestamped``, triggers."""
        o = self.o
        budget = o.count - self.received if o.count is not None else -1
        frames = self.read_frames(conn, events)
        if not frames or budget == 0:  # the count may have been reached by another connection
            return
        timestamped = o.timestamped
        t_wall = self.t_wall
        record = self.latencies.append
        from_bytes = int.from_bytes
        nbytes = 0
        got = 0
        for frame in frames:
            opcode = frame.opcode
            if opcode > 2:
                self.control(conn, opcode, frame.payload)
                continue
            payload = frame.payload
            nbytes += len(payload)
            if timestamped and opcode:
                record(t_wall - from_bytes(payload[:8], "big"))
            if frame.fin:
                got += 1
                if got == budget:
                    break
        self.bytes += nbytes
        self.received += got
        if o.trigger is not None and conn.index == 0 and not self.stopping:
            conn.since_trigger += got
            while conn.since_trigger >= o.trigger_every:
                conn.since_trigger -= o.trigger_every
                self.send_trigger(conn)

    # --- the end --------------------------------------------------------------------------------

    def report(self, t_end: int, interrupted: bool) -> BenchResult:
        """Close every connection and make the result of the measured window, which ends at ``t_end``."""
        o = self.o
        end = self.snapshot(t_end)
        window = self.window
        if not self.measuring:  # stopped during the warm-up
            window = _Window(start=self.t0, cpu=window.cpu, server_cpu=window.server_cpu, busy=window.busy)
            del self.latencies[:]
        end_received = self.received
        if o.count is not None and end_received > o.count:
            end_received = o.count
        self.stopping = True
        if o.progress and self.progress_in_place:
            sys.stderr.write("\n")  # end the line rewritten in place
            sys.stderr.flush()
        self.close_all()

        seconds = max(t_end - window.start, 1) / 1e9
        messages = end_received - window.received
        total_bytes = end.bytes - window.bytes
        server_cpu_s = None
        if window.server_cpu is not None and end.server_cpu is not None:
            server_cpu_s = end.server_cpu - window.server_cpu
        busy = None
        if window.busy and end.busy:
            busy = [(b - a) / seconds for a, b in zip(window.busy, end.busy, strict=True)]
        return BenchResult(
            url=o.url,
            mode=o.mode,
            connections=o.connections,
            connected=len(self.conns),
            size=o.size,
            depth=o.depth,
            text=o.text,
            messages=messages,
            bytes=total_bytes,
            seconds=seconds,
            messages_per_s=messages / seconds,
            mb_per_s=total_bytes / seconds / 1e6,
            latency_ms=percentiles(self.latencies, 1e-6),  # ns -> ms
            latency_samples=len(self.latencies),
            errors=self.errors,
            error_samples=self.error_samples,
            generator_cpu=(end.cpu - window.cpu) / seconds,
            sent=self.sent - window.sent,
            server_pid=o.server_pid,
            server_cpu_s=server_cpu_s,
            server_cpu=server_cpu_s / seconds if server_cpu_s is not None else None,
            server_cpu_us_per_message=server_cpu_s / messages * 1e6 if server_cpu_s is not None and messages else None,
            cpu_busy=busy,
            interrupted=interrupted,
            machine=machine_info(),
        )

    def server_cpu(self) -> float | None:
        if self.o.server_pid is None:
            return None
        try:
            return process_cpu_seconds(self.o.server_pid)
        except OSError:
            return None

    def show_progress(self, now: int, last: tuple[int, int]) -> None:
        elapsed = (now - self.t0) / 1e9
        interval = max(now - last[0], 1) / 1e9
        rate = (self.received - last[1]) / interval
        open_conns = sum(1 for c in self.conns if c.open)
        phase = "" if self.measuring else "  (warm-up)"
        line = (
            f"{elapsed:6.1f} s  {self.received:>12,} msgs  {rate:>11,.0f} msg/s  "
            f"conns {open_conns}/{self.o.connections}  errors {self.errors}{phase}"
        )
        # On a terminal one line is rewritten in place; in a file or a pipe, one line per second.
        sys.stderr.write(f"\r{line}   " if self.progress_in_place else f"{line}\n")
        sys.stderr.flush()

    def close_all(self) -> None:
        """Send a close frame on every connection and wait briefly for the answers."""
        conns = [c for c in self.conns if c.open]
        self.on_ready = self.on_closing
        for conn in conns:
            conn.closing = True
            self.poller.modify(conn, _READ | (_WRITE if conn.pending else 0), self.on_ready)
            self.write(conn, _control_frame(Opcode.CLOSE, (1000).to_bytes(2, "big")))
        deadline = time.monotonic() + _CLOSE_WAIT
        while any(c.open for c in conns):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for conn, callback, events in self.poller.poll(remaining):
                callback(conn, events)
        for conn in conns:
            self.lost(conn, "closed")
        self.poller.close()

    def on_closing(self, conn: _Conn, events: int) -> None:
        """While closing: the connection is done at the server's close frame, or at EOF."""
        frames = self.read_frames(conn, events)
        if frames and any(frame.opcode == Opcode.CLOSE for frame in frames):
            self.lost(conn, "closed")


def run(options: BenchOptions) -> BenchResult:
    """Run one benchmark and return what it measured.

    Raises:
        BenchError: no connection could be opened.
        ValueError: the URL is not a ``ws://`` or ``wss://`` URL.
    """
    return _Generator(options).run()
