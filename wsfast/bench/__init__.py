"""``wsfast bench URL``: a load generator for any RFC 6455 server.

Where each part lives: :mod:`~wsfast.bench.generator` (the connections and
the loop), :mod:`~wsfast.bench.stats` (what a run measured, percentiles,
CPU use), :mod:`~wsfast.bench.report` (the printed report) and
:mod:`~wsfast.bench.command` (the command line).

Three modes, all driven from one selector loop in one thread:

- ``echo``: request/response. Each connection sends one message and waits
  for the reply before sending the next.
- ``pipeline``: each connection keeps ``--depth`` messages in flight; every
  reply releases the next message.
- ``feed``: receive only. Every data message counts; with ``--timestamped``
  the first 8 bytes of each message are read as a big-endian unsigned
  ``time.time_ns()`` stamped by the server, and the latency is the time of
  arrival minus that stamp (meaningful when both ends share a clock, as on
  one host). With ``--trigger TEXT`` the first connection sends ``TEXT`` as a
  text message ``--depth`` times at the start and once more each time it has
  received ``--trigger-every`` messages: a closed loop that drives servers
  which broadcast on request (see ``benchmarks/servers/``).

How the numbers are made:

- Connections are opened one after the other, each with a real HTTP/1.1
  upgrade (:class:`~wsfast.handshake.ClientHandshake`), before the clock
  starts. No extension is offered, so no server compresses.
- Outgoing frames are built once: a pool of 256 frames of the same payload,
  each masked with its own random key, laid end to end (and wrapped around)
  in one buffer, so a batch of ``k`` messages is a zero-copy slice sent with
  one ``send()``. RFC 6455 §5.3 wants a fresh unpredictable key per frame
  from a client, to protect intermediaries from cache poisoning by hostile
  *browser* code; a load generator talking to a server under test cycles
  through its 256 keys instead, which a server cannot tell apart from fresh
  ones (it only unmasks). Control frames (pong, close) get fresh keys.
- Replies are parsed by the kernels' ``FrameParser(masked=False)`` straight
  from one shared receive buffer; no other object is made per message.
- Echo latency is ``time.perf_counter_ns()`` taken when ``poll()`` returned
  with the reply readable, minus the same clock read just before the
  request's ``send()``. Every latency is kept (8 bytes each) and the
  percentiles are exact (nearest rank). With ``--rate`` latencies are
  measured from the actual send, not from the schedule (no correction for
  coordinated omission).
- ``messages/s`` counts replies (or feed messages) received within the
  measured window, which starts after ``--warmup``; ``MB/s`` is their payload
  bytes (10^6) per second, one direction.
- The generator's own CPU use (``time.process_time()`` over the window,
  divided by wall time) is reported: near 100 % the generator, not the
  server, may be the bottleneck. ``--server-pid`` adds the server process'
  CPU time over the same window (Linux ``/proc``), and so its CPU time per
  message.

The exit status is 0 when the run completed without errors, 1 when it ran
with errors or could not run, and 2 for bad arguments.
"""

from __future__ import annotations

from .command import build_parser, main, options_from_args
from .generator import BenchError, run
from .options import BenchOptions
from .stats import BenchResult

__all__ = ["BenchError", "BenchOptions", "BenchResult", "build_parser", "main", "options_from_args", "run"]
