"""The load generator of ``wsfast bench``: its connections and its loop (method in :mod:`wsfast.bench`)."""

from __future__ import annotations

import array
import itertools
import os
import select
import selectors
import socket
import ssl
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .._version import __version__
from ..exceptions import InvalidHandshake, ProtocolError
from ..frames import Opcode
from ..handshake import ClientHandshake, ResponseParser
from ..kernels import FrameParser, build_frame
from .options import BenchOptions
from .stats import BenchResult, cpu_busy_seconds, machine_info, percentiles, process_cpu_seconds

__all__ = ["MAX_BATCH", "POOL", "BenchError", "run"]

#: Pre-masked frames cycled through (see :mod:`wsfast.bench`).
POOL = 256
#: At most this many messages go out in one ``send()``.
MAX_BATCH = 1024
_RETRY = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_CLOSE_WAIT = 1.0  # seconds given to the servers to answer our close frames


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


def _masked_pool(opcode: int, payload: bytes, count: int) -> tuple[bytes, int]:
    """``count`` frames of ``payload``, each with its own random mask key, end to end."""
    frames = [build_frame(opcode, payload, mask_key=os.urandom(4)) for _ in range(count)]
    return b"".join(frames), len(frames[0])


def _control_frame(opcode: int, payload: bytes) -> bytes:
    return build_frame(opcode, payload, mask_key=os.urandom(4))


class _Poller:
    """epoll where there is one (Linux), else the best ``selectors`` offers."""

    def __init__(self) -> None:
        self.poll: Callable[[float], list[tuple[int, int]]]
        if hasattr(select, "epoll"):
            self._epoll = select.epoll()
            self.READ = select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR
            self.WRITE = select.EPOLLOUT
            self._read_only = select.EPOLLIN
            self.poll = self._epoll.poll
            self._selector: selectors.BaseSelector | None = None
        else:  # pragma: no cover - exercised on macOS and Windows only
            self._selector = selectors.DefaultSelector()
            self.READ = selectors.EVENT_READ
            self.WRITE = selectors.EVENT_WRITE
            self._read_only = selectors.EVENT_READ
            select_ = self._selector.select
            self.poll = lambda timeout: [(key.fd, events) for key, events in select_(timeout)]

    def register(self, fd: int, write: bool = False) -> None:
        events = self._read_only | (self.WRITE if write else 0)
        if self._selector is None:
            self._epoll.register(fd, events)
        else:  # pragma: no cover
            self._selector.register(fd, events)

    def modify(self, fd: int, write: bool) -> None:
        events = self._read_only | (self.WRITE if write else 0)
        if self._selector is None:
            self._epoll.modify(fd, events)
        else:  # pragma: no cover
            self._selector.modify(fd, events)

    def unregister(self, fd: int) -> None:
        try:
            if self._selector is None:
                self._epoll.unregister(fd)
            else:  # pragma: no cover
                self._selector.unregister(fd)
        except (KeyError, ValueError, OSError):
            pass

    def close(self) -> None:
        if self._selector is None:
            self._epoll.close()
        else:  # pragma: no cover
            self._selector.close()


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


class _Generator:
    def __init__(self, options: BenchOptions) -> None:
        self.o = options
        self.handshake_template = ClientHandshake(options.url)  # validates the URL
        self.poller = _Poller()
        self.conns: dict[int, _Conn] = {}
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
        self.bytes = 0
        self.received = 0
        self.sent = 0
        self.stopping = False
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
            self.conns[conn.fd] = conn
            self.open_count += 1
            self.poller.register(conn.fd)
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
            self.poller.modify(conn.fd, True)

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
            self.poller.modify(conn.fd, False)

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
        self.poller.unregister(conn.fd)
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
        o = self.o
        self.open_all()
        conns = self.conns
        feed = o.mode == "feed"
        counting = o.count is not None
        count = o.count if o.count is not None else 0
        duration_ns = int((o.duration or 0.0) * 1e9)
        warmup_ns = int(o.warmup * 1e9) if not counting else 0
        timeout_ns = int(o.timeout * 1e9)

        perf = time.perf_counter_ns
        wall = time.time_ns
        poll = self.poller.poll
        READ = self.poller.READ
        WRITE = self.poller.WRITE
        buffer = bytearray(1 << 20)
        view = memoryview(buffer)
        latencies = self.latencies
        record = latencies.append
        from_bytes = int.from_bytes
        timestamped = o.timestamped
        rate = o.rate
        depth = o.depth
        trigger = feed and o.trigger is not None
        trigger_every = o.trigger_every
        progress = o.progress

        t0 = perf()
        window_start = t0 + warmup_ns
        window_end = window_start + duration_ns if not counting else None
        measuring = warmup_ns == 0
        cpu0 = time.process_time()
        server_cpu0 = self.server_cpu()
        busy0 = cpu_busy_seconds()
        start_received = 0
        start_bytes = 0
        start_sent = 0
        last_activity = t0
        next_progress = t0 + 1_000_000_000
        last_progress = (t0, 0)
        rate_ns = 1e9 / rate if rate else 0.0
        tick_ns = int(min(max(rate_ns, 1e5), 1e6)) if rate else 0
        next_tick = t0

        # Start: fill every connection's window (or fire the triggers).
        if feed:
            if trigger:
                first = min(conns.values(), key=lambda c: c.index)
                for _ in range(depth):
                    self.send_trigger(first)
        elif not rate:
            for conn in list(conns.values()):
                k = depth if not counting else min(depth, conn.quota)
                if k:
                    self.send_messages(conn, k)

        received = 0
        nbytes = 0
        interrupted = False
        try:
            while True:
                now = perf()
                # -- timers: window, deadline, rate ticks, progress
                if not measuring and now >= window_start:
                    measuring = True
                    start_received, start_bytes, start_sent = received, nbytes, self.sent
                    del latencies[:]
                    cpu0 = time.process_time()
                    server_cpu0 = self.server_cpu()
                    busy0 = cpu_busy_seconds()
                    window_start = now
                    if window_end is not None:
                        window_end = now + duration_ns
                if window_end is not None and now >= window_end:
                    break
                if counting and received >= count:
                    break
                if not self.open_count:
                    break
                if counting and now - last_activity > timeout_ns:
                    self.error(f"no message for {o.timeout:g} s: gave up")
                    break
                if rate and now >= next_tick:
                    target = int((now - t0) / rate_ns) + 1
                    for conn in conns.values():
                        if not conn.open:
                            continue
                        k = min(target - conn.sent, depth - len(conn.times))
                        if counting:
                            k = min(k, conn.quota - conn.sent)
                        if k > 0:
                            self.send_messages(conn, k)
                    next_tick = now + tick_ns
                if progress and now >= next_progress:
                    self.show_progress(now, t0, received, nbytes, last_progress, measuring)
                    last_progress = (now, received)
                    next_progress += 1_000_000_000
                timeout = 0.1
                if rate:
                    timeout = max(0.0, (next_tick - now) / 1e9)
                events = poll(timeout)
                if not events:
                    continue
                t_recv = perf()
                t_wall = wall() if timestamped else 0
                last_activity = t_recv
                for fd, ev in events:
                    conn = conns[fd]
                    if not conn.open:
                        continue
                    if ev & WRITE:
                        self.flush(conn)
                        if not conn.open:
                            continue
                    if not ev & READ:
                        continue
                    try:
                        n = conn.sock.recv_into(buffer)
                    except _RETRY:
                        continue
                    except OSError as exc:
                        self.lost(conn, f"receive failed: {exc}")
                        continue
                    if not n:
                        self.lost(conn, "the server closed the TCP connection")
                        continue
                    if conn.tls and conn.sock.pending():  # type: ignore[attr-defined]
                        # Decrypted bytes the selector cannot see: take them too.
                        extra = conn.sock.recv(conn.sock.pending())  # type: ignore[attr-defined]
                        buffer[n : n + len(extra)] = extra
                        n += len(extra)
                    try:
                        frames = conn.parser.feed(view[:n])
                    except ProtocolError as exc:
                        self.lost(conn, f"protocol error: {exc}")
                        continue
                    got = 0
                    if feed:
                        budget = count - received if counting else -1
                        if budget == 0:
                            continue  # the count was reached by another connection of this batch
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
                        received += got
                        if trigger and conn.index == 0 and not self.stopping:
                            conn.since_trigger += got
                            while conn.since_trigger >= trigger_every:
                                conn.since_trigger -= trigger_every
                                self.send_trigger(conn)
                        continue
                    times = conn.times
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
                        continue
                    if got:
                        received += got
                        conn.received += got
                        if rate:
                            k = min(got, int((t_recv - t0) / rate_ns) + 1 - conn.sent)
                        else:
                            k = got
                        if counting:
                            k = min(k, conn.quota - conn.sent)
                        if k > 0 and conn.open:
                            self.send_messages(conn, k)
        except KeyboardInterrupt:  # Ctrl-C: stop and report what was measured
            interrupted = True
        t_end = perf()
        cpu1 = time.process_time()
        server_cpu1 = self.server_cpu()
        busy1 = cpu_busy_seconds()
        if not measuring:  # stopped during the warm-up
            start_received = start_bytes = start_sent = 0
            window_start = t0
            del latencies[:]
        end_received, end_bytes = received, nbytes
        if counting and received > count:
            end_received = count
        self.stopping = True
        if progress and self.progress_in_place:
            sys.stderr.write("\n")  # end the line rewritten in place
            sys.stderr.flush()
        self.close_all()

        seconds = max(t_end - window_start, 1) / 1e9
        messages = end_received - start_received
        total_bytes = end_bytes - start_bytes
        server_cpu_s = server_cpu1 - server_cpu0 if server_cpu0 is not None and server_cpu1 is not None else None
        scale = 1e-6  # ns -> ms
        return BenchResult(
            url=o.url,
            mode=o.mode,
            connections=o.connections,
            connected=len(conns),
            size=o.size,
            depth=o.depth,
            text=o.text,
            messages=messages,
            bytes=total_bytes,
            seconds=seconds,
            messages_per_s=messages / seconds,
            mb_per_s=total_bytes / seconds / 1e6,
            latency_ms=percentiles(latencies, scale),
            latency_samples=len(latencies),
            errors=self.errors,
            error_samples=self.error_samples,
            generator_cpu=(cpu1 - cpu0) / seconds,
            sent=self.sent - start_sent,
            server_pid=o.server_pid,
            server_cpu_s=server_cpu_s,
            server_cpu=server_cpu_s / seconds if server_cpu_s is not None else None,
            server_cpu_us_per_message=server_cpu_s / messages * 1e6 if server_cpu_s is not None and messages else None,
            cpu_busy=[(b - a) / seconds for a, b in zip(busy0, busy1, strict=True)] if busy0 and busy1 else None,
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

    def show_progress(
        self, now: int, t0: int, received: int, nbytes: int, last: tuple[int, int], measuring: bool
    ) -> None:
        elapsed = (now - t0) / 1e9
        interval = max(now - last[0], 1) / 1e9
        rate = (received - last[1]) / interval
        open_conns = sum(1 for c in self.conns.values() if c.open)
        phase = "" if measuring else "  (warm-up)"
        line = (
            f"{elapsed:6.1f} s  {received:>12,} msgs  {rate:>11,.0f} msg/s  "
            f"conns {open_conns}/{self.o.connections}  errors {self.errors}{phase}"
        )
        # On a terminal one line is rewritten in place; in a file or a pipe, one line per second.
        sys.stderr.write(f"\r{line}   " if self.progress_in_place else f"{line}\n")
        sys.stderr.flush()

    def close_all(self) -> None:
        """Send a close frame on every connection and wait briefly for the answers."""
        conns = [c for c in self.conns.values() if c.open]
        for conn in conns:
            conn.closing = True
            self.write(conn, _control_frame(Opcode.CLOSE, (1000).to_bytes(2, "big")))
        deadline = time.monotonic() + _CLOSE_WAIT
        buffer = bytearray(1 << 16)
        while any(c.open for c in conns):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for fd, ev in self.poller.poll(remaining):
                conn = self.conns[fd]
                if not conn.open:
                    continue
                if ev & self.poller.WRITE:
                    self.flush(conn)
                if not conn.open or not ev & self.poller.READ:
                    continue
                try:
                    n = conn.sock.recv_into(buffer)
                except _RETRY:
                    continue
                except OSError:
                    n = 0
                if not n:
                    self.lost(conn, "closed")
                    continue
                try:
                    frames = conn.parser.feed(memoryview(buffer)[:n])
                except ProtocolError:
                    frames = []
                    self.lost(conn, "closed")
                for frame in frames:
                    if frame.opcode == Opcode.CLOSE:
                        self.lost(conn, "closed")
                        break
        for conn in conns:
            conn.closing = True
            self.lost(conn, "closed")
        self.poller.close()


def run(options: BenchOptions) -> BenchResult:
    """Run one benchmark and return what it measured.

    Raises:
        BenchError: no connection could be opened.
        ValueError: the URL is not a ``ws://`` or ``wss://`` URL.
    """
    return _Generator(options).run()
