"""wsfast's server against real peers: Node's ws, websockets, websocket-client, aiohttp.

Every peer plays the same scripted scenario (a list of steps, also the JSON
that ``tests/peers/ws_client.mjs`` reads) and reports what it observed in the
same shape, so one test body states a behaviour for all of them:

    outcome = peer.run(url(server), [send_binary(65536), RECV])
    assert outcome.results == [received(pattern(65536))]

Node's ws must really run in CI: with ``CI`` set, a missing ``node`` or a
missing ``tests/peers/node_modules/ws`` (``npm install --prefix tests/peers``)
fails the Node tests instead of skipping them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import os
import shutil
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.servers import TLS, Recorder, make_tls, running_server, url
from tests.timeouts import TIMEOUT
from wsfast.server import ServerConnection

PEERS_DIR = Path(__file__).parent / "peers"
NODE_CLIENT = PEERS_DIR / "ws_client.mjs"

# --- the scenario: steps every peer understands ----------------------------------

Step = dict[str, Any]
RECV: Step = {"op": "recv"}
WAIT_CLOSE: Step = {"op": "wait_close"}


def send_text(text: str) -> Step:
    return {"op": "send_text", "text": text}


def send_long_text(unit: str, size: int) -> Step:
    """A text message of ``size`` UTF-8 bytes: ``unit`` repeated (see :func:`long_text`)."""
    return {"op": "send_text", "repeat": unit, "size": size}


def send_binary(size: int) -> Step:
    """A binary message of ``size`` bytes: :func:`pattern` ``(size)``."""
    return {"op": "send_binary", "size": size}


def ping(data: str) -> Step:
    """Send a ping and wait for its pong."""
    return {"op": "ping", "data": data}


def close(code: int, reason: str) -> Step:
    """Start the closing handshake and wait for the server's close frame."""
    return {"op": "close", "code": code, "reason": reason}


def pattern(size: int) -> bytes:
    """``size`` bytes ``i % 251``: no period of 2, 4 or 8 hides a masking bug."""
    return (bytes(range(251)) * (size // 251 + 1))[:size]


def long_text(unit: str, size: int) -> str:
    """``unit`` (ASCII) repeated to ``size`` characters: compresses very well."""
    return (unit * (size // len(unit) + 1))[:size]


def received(message: str | bytes) -> dict[str, Any]:
    """What a peer reports for a message it received (as ws_client.mjs does)."""
    data = message.encode() if isinstance(message, str) else bytes(message)
    result: dict[str, Any] = {
        "op": "recv",
        "type": "text" if isinstance(message, str) else "binary",
        "length": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    if isinstance(message, str) and len(data) <= 4096:
        result["text"] = message
    return result


def pong(data: str) -> dict[str, Any]:
    return {"op": "pong", "data": data}


def closed(code: int, reason: str) -> dict[str, Any]:
    return {"op": "close", "code": code, "reason": reason}


@dataclass
class Outcome:
    """What a peer observed: the handshake, each step's result, the close."""

    subprotocol: str | None = None
    extensions: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)
    close: dict[str, Any] | None = None
    #: Bytes on the wire, handshake included (Node only: None elsewhere).
    bytes_read: int | None = None
    bytes_written: int | None = None


@dataclass(frozen=True)
class Options:
    """How a peer connects."""

    protocols: Sequence[str] = ()
    compression: bool = False
    tls: TLS | None = None


# --- one interpreter for the Python peers ------------------------------------------


def _message_of(step: Step) -> str | bytes:
    if step["op"] == "send_binary":
        return pattern(step["size"])
    if "repeat" in step:
        return long_text(step["repeat"], step["size"])
    return str(step["text"])


def _play(session: Any, steps: Sequence[Step], outcome: Outcome) -> Outcome:
    for step in steps:
        op = step["op"]
        if op in ("send_text", "send_binary"):
            session.send(_message_of(step))
        elif op == "recv":
            outcome.results.append(received(session.recv()))
        elif op == "ping":
            outcome.results.append(pong(session.ping(step["data"].encode()).decode()))
        elif op == "close":
            outcome.close = closed(*session.close(step["code"], step["reason"]))
            outcome.results.append(outcome.close)
        elif op == "wait_close":
            outcome.close = closed(*session.wait_close())
            outcome.results.append(outcome.close)
        else:
            raise ValueError(f"unknown step {step}")
    return outcome


async def _play_async(session: Any, steps: Sequence[Step], outcome: Outcome) -> Outcome:
    for step in steps:
        op = step["op"]
        if op in ("send_text", "send_binary"):
            await session.send(_message_of(step))
        elif op == "recv":
            outcome.results.append(received(await session.recv()))
        elif op == "ping":
            outcome.results.append(pong((await session.ping(step["data"].encode())).decode()))
        elif op == "close":
            outcome.close = closed(*await session.close(step["code"], step["reason"]))
            outcome.results.append(outcome.close)
        elif op == "wait_close":
            outcome.close = closed(*await session.wait_close())
            outcome.results.append(outcome.close)
        else:
            raise ValueError(f"unknown step {step}")
    return outcome


class Pending:
    """A scenario running in the background; :meth:`result` waits for it (bounded)."""

    def __init__(self, wait: Callable[[float], Outcome]) -> None:
        self._wait = wait

    def result(self, timeout: float = 3 * TIMEOUT) -> Outcome:
        return self._wait(timeout)


class Peer:
    """A WebSocket client library, driven by a scenario."""

    name = "?"
    #: Whether the peer can offer permessage-deflate.
    compression = True

    def check_available(self) -> None:
        """Skip (or fail, in CI) when the peer cannot run here."""

    def cleanup(self) -> None:
        """Stop whatever a failed test left running (Python peers stop on their own timeouts)."""

    def start(self, address: str, steps: Sequence[Step], options: Options = Options()) -> Pending:
        """Run the scenario in a thread; the returned handle gives the outcome."""
        future: concurrent.futures.Future[Outcome] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(self.play(address, steps, options))
            except BaseException as exc:  # noqa: BLE001 - handed to the test
                future.set_exception(exc)

        threading.Thread(target=run, name=f"peer-{self.name}", daemon=True).start()
        return Pending(lambda timeout: future.result(timeout))

    def run(self, address: str, steps: Sequence[Step], options: Options = Options()) -> Outcome:
        return self.start(address, steps, options).result()

    def play(self, address: str, steps: Sequence[Step], options: Options) -> Outcome:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.name


class WebsocketsSync(Peer):
    name = "websockets-sync"

    def play(self, address: str, steps: Sequence[Step], options: Options) -> Outcome:
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect

        class Session:
            def __init__(self, ws: Any) -> None:
                self.ws = ws

            def send(self, message: str | bytes) -> None:
                self.ws.send(message)

            def recv(self) -> str | bytes:
                return self.ws.recv(timeout=TIMEOUT)  # type: ignore[no-any-return]

            def ping(self, data: bytes) -> bytes:
                assert self.ws.ping(data).wait(TIMEOUT), "no pong"
                return data  # websockets matches the pong to this ping by its payload

            def close(self, code: int, reason: str) -> tuple[int, str]:
                self.ws.close(code, reason)
                return self.ws.close_code, self.ws.close_reason

            def wait_close(self) -> tuple[int, str]:
                with pytest.raises(ConnectionClosed):
                    self.ws.recv(timeout=TIMEOUT)
                return self.ws.close_code, self.ws.close_reason

        with connect(
            address,
            subprotocols=list(options.protocols) or None,
            compression="deflate" if options.compression else None,
            ssl=options.tls.client_context if options.tls else None,
            proxy=None,
            max_size=None,
            open_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
        ) as ws:
            assert ws.response is not None
            outcome = Outcome(ws.subprotocol, ws.response.headers.get("Sec-WebSocket-Extensions", ""))
            return _play(Session(ws), steps, outcome)


class WebsocketsAsyncio(Peer):
    name = "websockets-asyncio"

    def play(self, address: str, steps: Sequence[Step], options: Options) -> Outcome:
        return asyncio.run(asyncio.wait_for(self._play(address, steps, options), 3 * TIMEOUT))

    async def _play(self, address: str, steps: Sequence[Step], options: Options) -> Outcome:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        class Session:
            def __init__(self, ws: Any) -> None:
                self.ws = ws

            async def send(self, message: str | bytes) -> None:
                await self.ws.send(message)

            async def recv(self) -> str | bytes:
                return await asyncio.wait_for(self.ws.recv(), TIMEOUT)  # type: ignore[no-any-return]

            async def ping(self, data: bytes) -> bytes:
                await asyncio.wait_for(await self.ws.ping(data), TIMEOUT)
                return data

            async def close(self, code: int, reason: str) -> tuple[int, str]:
                await self.ws.close(code, reason)
                return self.ws.close_code, self.ws.close_reason

            async def wait_close(self) -> tuple[int, str]:
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(self.ws.recv(), TIMEOUT)
                return self.ws.close_code, self.ws.close_reason

        async with connect(
            address,
            subprotocols=list(options.protocols) or None,
            compression="deflate" if options.compression else None,
            ssl=options.tls.client_context if options.tls else None,
            proxy=None,
            max_size=None,
            open_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
        ) as ws:
            outcome = Outcome(ws.subprotocol, ws.response.headers.get("Sec-WebSocket-Extensions", ""))
            return await _play_async(Session(ws), steps, outcome)


class WebsocketClient(Peer):
    name = "websocket-client"
    compression = False  # websocket-client does not implement permessage-deflate

    def play(self, address: str, steps: Sequence[Step], options: Options) -> Outcome:
        import websocket

        opcode = websocket.ABNF

        def close_of(frame: Any) -> tuple[int, str]:
            data = bytes(frame.data)
            return struct.unpack("!H", data[:2])[0], data[2:].decode()

        class Session:
            def __init__(self, ws: Any) -> None:
                self.ws = ws

            def send(self, message: str | bytes) -> None:
                if isinstance(message, str):
                    self.ws.send(message)
                else:
                    self.ws.send_binary(message)

            def recv(self) -> str | bytes:
                kind, data = self.ws.recv_data()
                assert kind in (opcode.OPCODE_TEXT, opcode.OPCODE_BINARY), kind
                return data.decode() if kind == opcode.OPCODE_TEXT else bytes(data)

            def ping(self, data: bytes) -> bytes:
                self.ws.ping(data)
                kind, frame = self.ws.recv_data_frame(control_frame=True)
                assert kind == opcode.OPCODE_PONG, kind
                return bytes(frame.data)

            def close(self, code: int, reason: str) -> tuple[int, str]:
                # recv_frame(), not close(): close() does not report the server's frame.
                self.ws.send_close(code, reason.encode())
                for _ in range(100):
                    frame = self.ws.recv_frame()
                    if frame.opcode == opcode.OPCODE_CLOSE:
                        return close_of(frame)
                raise AssertionError("no close frame")

            def wait_close(self) -> tuple[int, str]:
                kind, frame = self.ws.recv_data_frame(control_frame=True)  # answers the close
                assert kind == opcode.OPCODE_CLOSE, kind
                return close_of(frame)

        sslopt = {"ca_certs": str(options.tls.ca_file)} if options.tls else None
        assert not options.compression, "websocket-client cannot offer compression"
        ws = websocket.create_connection(
            address,
            timeout=TIMEOUT,
            subprotocols=list(options.protocols) or None,
            sslopt=sslopt,
            http_no_proxy=["127.0.0.1"],
        )
        try:
            outcome = Outcome(ws.getsubprotocol(), (ws.getheaders() or {}).get("sec-websocket-extensions", ""))
            return _play(Session(ws), steps, outcome)
        finally:
            ws.shutdown()


class Aiohttp(Peer):
    name = "aiohttp"

    def play(self, address: str, steps: Sequence[Step], options: Options) -> Outcome:
        return asyncio.run(asyncio.wait_for(self._play(address, steps, options), 3 * TIMEOUT))

    async def _play(self, address: str, steps: Sequence[Step], options: Options) -> Outcome:
        import aiohttp

        kinds = aiohttp.WSMsgType

        class Session:
            def __init__(self, ws: Any) -> None:
                self.ws = ws

            async def send(self, message: str | bytes) -> None:
                if isinstance(message, str):
                    await self.ws.send_str(message)
                else:
                    await self.ws.send_bytes(message)

            async def _next(self) -> Any:
                # autoping is off (so that pongs are seen): answer pings here.
                for _ in range(100):
                    message = await self.ws.receive(timeout=TIMEOUT)
                    if message.type is kinds.PING:
                        await self.ws.pong(message.data)
                        continue
                    return message
                raise AssertionError("only pings")

            async def recv(self) -> str | bytes:
                message = await self._next()
                assert message.type in (kinds.TEXT, kinds.BINARY), message
                return message.data  # type: ignore[no-any-return]

            async def ping(self, data: bytes) -> bytes:
                await self.ws.ping(data)
                message = await self._next()
                assert message.type is kinds.PONG, message
                return bytes(message.data)

            async def close(self, code: int, reason: str) -> tuple[int, str]:
                # send_frame, not close(): close() does not report the server's reason.
                await self.ws.send_frame(struct.pack("!H", code) + reason.encode(), kinds.CLOSE)
                message = await self._next()
                assert message.type is kinds.CLOSE, message
                return message.data, message.extra

            async def wait_close(self) -> tuple[int, str]:
                message = await self._next()
                assert message.type is kinds.CLOSE, message
                await self.ws.close(code=message.data)  # the answer: autoclose is off
                return message.data, message.extra

        timeout = aiohttp.ClientWSTimeout(ws_receive=TIMEOUT, ws_close=TIMEOUT)
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                address,
                protocols=options.protocols,
                compress=15 if options.compression else 0,
                ssl=options.tls.client_context if options.tls else True,
                max_msg_size=0,
                autoping=False,
                autoclose=False,
                timeout=timeout,
            ) as ws,
        ):
            outcome = Outcome(ws.protocol, "permessage-deflate" if ws.compress else "")
            return await _play_async(Session(ws), steps, outcome)


class NodeWs(Peer):
    """Node's ``ws`` package, the most used server-side WebSocket of Node."""

    name = "node-ws"

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[str]] = []

    def cleanup(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()  # our own child, by its handle
                process.communicate(timeout=TIMEOUT)
        self.processes.clear()

    def check_available(self) -> None:
        missing = None
        if shutil.which("node") is None:
            missing = "node is not installed"
        elif not (PEERS_DIR / "node_modules" / "ws" / "package.json").exists():
            missing = "Node's ws is not installed: run `npm install --prefix tests/peers`"
        if missing is None:
            return
        if os.environ.get("CI"):
            pytest.fail(f"{missing} (CI must run the Node peer)")
        pytest.skip(missing)

    def start(self, address: str, steps: Sequence[Step], options: Options = Options()) -> Pending:
        scenario = {
            "url": address,
            "protocols": list(options.protocols),
            "compression": options.compression,
            "ca": str(options.tls.ca_file) if options.tls else None,
            "timeoutMs": int(3 * TIMEOUT * 1000),
            "steps": list(steps),
        }
        # The scenario goes in argv: the client starts at once, before result() is called.
        process = subprocess.Popen(
            ["node", str(NODE_CLIENT), json.dumps(scenario)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.processes.append(process)

        def wait(timeout: float) -> Outcome:
            try:
                stdout, stderr = process.communicate(timeout=timeout + 2)
            except subprocess.TimeoutExpired:
                process.kill()  # our own child, by its handle
                process.communicate(timeout=TIMEOUT)
                raise
            assert process.returncode == 0, f"node exited {process.returncode}: {stdout} {stderr}"
            report = json.loads(stdout)
            assert report["error"] is None, report["error"]
            return Outcome(
                report["open"]["protocol"] or None,
                report["open"]["extensions"],
                report["results"],
                report["close"],
                report["bytesRead"],
                report["bytesWritten"],
            )

        return Pending(wait)


PEERS: list[Peer] = [NodeWs(), WebsocketsSync(), WebsocketsAsyncio(), WebsocketClient(), Aiohttp()]


@pytest.fixture(params=PEERS, ids=lambda peer: peer.name)
def peer(request: pytest.FixtureRequest) -> Iterator[Peer]:
    """Each peer in turn; whatever it left running is stopped after the test."""
    chosen: Peer = request.param
    chosen.check_available()
    yield chosen
    chosen.cleanup()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLS:
    return make_tls(tmp_path_factory.mktemp("tls"))


# --- echo ----------------------------------------------------------------------------

TEXTS = {
    "ascii": "Hello, wsfast!",
    "multibyte": "héllo wörld — ελληνικά, 日本語, 🎉🚀 (1, 2, 3 and 4 bytes)",
    "empty": "",
}


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_text_echo(peer: Peer, text: str) -> None:
    recorder = Recorder()
    with running_server(recorder) as server:
        outcome = peer.run(url(server), [send_text(text), RECV])
        assert recorder.next_message() == text
    assert outcome.results == [received(text)]


@pytest.mark.parametrize("size", [0, 125, 126, 65536, 4 * 1024 * 1024], ids=["0B", "125B", "126B", "64KiB", "4MiB"])
def test_binary_echo(peer: Peer, size: int) -> None:
    with running_server(Recorder()) as server:
        outcome = peer.run(url(server), [send_binary(size), RECV])
    assert outcome.results == [received(pattern(size))]


def test_many_messages_keep_their_order(peer: Peer) -> None:
    steps = [send_text(f"message {i}") for i in range(50)] + [RECV] * 50
    with running_server(Recorder()) as server:
        outcome = peer.run(url(server), steps)
    assert outcome.results == [received(f"message {i}") for i in range(50)]


def test_ping_is_answered_with_a_pong_of_the_same_payload(peer: Peer) -> None:
    with running_server(Recorder()) as server:
        outcome = peer.run(url(server), [ping("are you there?"), send_text("after"), RECV])
    assert outcome.results == [pong("are you there?"), received("after")]


# --- closing -------------------------------------------------------------------------


def test_client_close_code_and_reason_reach_the_server(peer: Peer) -> None:
    recorder = Recorder()
    with running_server(recorder) as server:
        outcome = peer.run(url(server), [send_text("hi"), RECV, close(4001, "client done")])
        assert recorder.next_close() == (4001, "client done")
    # RFC 6455 §5.5.1: the server echoes the client's close code (and wsfast its reason).
    assert outcome.close == closed(4001, "client done")


def test_server_close_code_and_reason_reach_the_client(peer: Peer) -> None:
    class Closer(Recorder):
        def on_message(self, ws: ServerConnection, message: str | bytes) -> None:
            ws.close(4000, "bye")

    recorder = Closer()
    with running_server(recorder) as server:
        outcome = peer.run(url(server), [send_text("close me"), WAIT_CLOSE])
        code, _ = recorder.next_close()
    assert outcome.close == closed(4000, "bye")
    # The client's answer may echo 4000 or say 1000: RFC 6455 §5.5.1 lets it choose.
    assert code in (4000, 1000)


# --- negotiation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["chat.v1", "chat.v2"], "chat.v2"),
        (["x-unknown", "chat.v1"], "chat.v1"),
        ([], None),
    ],
    ids=["server-preference-wins", "the-one-supported", "none-offered"],
)
def test_subprotocol_negotiation(peer: Peer, offered: list[str], chosen: str | None) -> None:
    recorder = Recorder()
    with running_server(recorder, subprotocols=("chat.v2", "chat.v1")) as server:
        outcome = peer.run(url(server), [send_text("hi"), RECV], Options(protocols=offered))
        assert recorder.next_open().subprotocol == chosen
    assert outcome.subprotocol == chosen
    assert outcome.results == [received("hi")]


COMPRESSIBLE = "wsfast compresses repetitive text very well. "
MIB = 1024 * 1024


@pytest.mark.parametrize("server_compression", [True, False], ids=["server-deflate", "server-no-deflate"])
def test_compression(peer: Peer, server_compression: bool) -> None:
    """permessage-deflate is negotiated when both ends want it, and 1 MiB of text survives it."""
    client_compression = peer.compression
    with running_server(Recorder(), compression=server_compression) as server:
        outcome = peer.run(
            url(server),
            [send_long_text(COMPRESSIBLE, MIB), RECV],
            Options(compression=client_compression),
        )
    assert outcome.results == [received(long_text(COMPRESSIBLE, MIB))]
    negotiated = server_compression and client_compression
    assert ("permessage-deflate" in outcome.extensions) == negotiated
    if outcome.bytes_read is not None and outcome.bytes_written is not None:
        # Node counts the bytes on the wire: compressed both ways, or not at all.
        if negotiated:
            assert outcome.bytes_read < MIB // 10 and outcome.bytes_written < MIB // 10
        else:
            assert outcome.bytes_read > MIB and outcome.bytes_written > MIB


# --- TLS -----------------------------------------------------------------------------


def test_wss_with_a_trusted_ca(peer: Peer, tls: TLS) -> None:
    with running_server(Recorder(), ssl=tls.server_context) as server:
        outcome = peer.run(
            url(server, tls=True),
            [send_text("over TLS"), RECV, send_binary(MIB), RECV, close(1000, "")],
            Options(tls=tls),
        )
    assert outcome.results == [received("over TLS"), received(pattern(MIB)), closed(1000, "")]


# --- pub/sub and broadcast -----------------------------------------------------------


class TopicHandler(Recorder):
    """Subscribes each client to the topic its path names: ``/topics/<name>``."""

    def on_open(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        ws.subscribe(ws.request.path.rsplit("/", 1)[-1])
        super().on_open(ws)


def test_publish_from_another_thread_reaches_every_subscriber_and_no_one_else(peer: Peer) -> None:
    recorder = TopicHandler(echo=False)
    with running_server(recorder) as server:
        readers_a = [peer.start(url(server, "/topics/a"), [RECV] * 3) for _ in range(2)]
        reader_b = peer.start(url(server, "/topics/b"), [RECV] * 2)
        for _ in range(3):
            recorder.next_open()
        # From this (non-loop) thread, as a feed producer would.
        server.publish("a", "for a")
        server.publish("b", pattern(1000))
        server.publish("a", pattern(70000))
        server.publish("nobody", "lost")
        server.broadcast("end")
        outcomes_a = [reader.result() for reader in readers_a]
        outcome_b = reader_b.result()
    for outcome in outcomes_a:
        assert outcome.results == [received("for a"), received(pattern(70000)), received("end")]
    # "end" comes right after b's one message: nothing for "a" or "nobody" came between.
    assert outcome_b.results == [received(pattern(1000)), received("end")]


def test_broadcast_reaches_every_client(peer: Peer) -> None:
    recorder = Recorder(echo=False)
    with running_server(recorder) as server:
        readers = [peer.start(url(server), [RECV, RECV]) for _ in range(3)]
        for _ in range(3):
            recorder.next_open()
        server.broadcast("to everyone")
        server.broadcast(pattern(MIB))
        outcomes = [reader.result() for reader in readers]
    for outcome in outcomes:
        assert outcome.results == [received("to everyone"), received(pattern(MIB))]
