"""What a user of ``wsfast.Server`` sees first: argument errors, the lines it logs, refused handshakes."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys

import pytest

import wsfast
from tests.servers import running_server, wait_until
from tests.timeouts import TIMEOUT
from wsfast import Server


@pytest.mark.parametrize("port", [-1, 65536, 99999, "abc", "8765", 1.5, True, None])
def test_a_bad_port_is_a_value_error_naming_it(port: object) -> None:
    with pytest.raises(ValueError, match=rf"port must be an int from 0 to 65535 .*, not {port!r}"):
        Server(port=port)  # type: ignore[arg-type]


def test_a_bad_host_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="host must be a str .*, not 127"):
        Server(host=127, port=0)  # type: ignore[arg-type]


def test_a_port_in_use_is_an_os_error_naming_host_and_port() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}: "):
            Server(port=port)


def test_the_url_names_scheme_host_and_port() -> None:
    with running_server() as server:
        assert server.url == f"ws://127.0.0.1:{server.port}/"


def test_serve_forever_logs_where_it_listens_and_when_it_stops(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="wsfast.server"):
        with running_server() as server:
            port = server.port
            assert wait_until(lambda: any("listening on" in r.getMessage() for r in caplog.records))
        assert wait_until(lambda: any(r.getMessage() == "stopped" for r in caplog.records))
    messages = [record.getMessage() for record in caplog.records if record.name == "wsfast.server"]
    assert f"listening on ws://127.0.0.1:{port}/" in messages


SCRIPT = """
import threading, wsfast
server = wsfast.Server(port=0)
threading.Timer(0.2, server.shutdown).start()
server.serve_forever()
"""


def test_serve_forever_configures_logging_when_the_program_did_not() -> None:
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 0, run.stderr
    assert "wsfast.server INFO: listening on ws://127.0.0.1:" in run.stderr
    assert "wsfast.server INFO: stopped" in run.stderr


def refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "wsfast.server" and "refused a handshake" in r.getMessage()]


def test_a_refused_handshake_is_a_warning_with_the_reason_and_the_value(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="wsfast.server"):
        with running_server(origins=["https://app.example.com"]) as server:
            with pytest.raises(wsfast.InvalidHandshake) as refused:
                wsfast.connect(server.url, origin="http://127.0.0.1:8765")
            assert refused.value.status == 403
            assert wait_until(lambda: refusals(caplog))
    (record,) = refusals(caplog)
    assert record.levelno == logging.WARNING
    assert "refused a handshake from 127.0.0.1: " in record.getMessage()
    assert "origin 'http://127.0.0.1:8765' not allowed" in record.getMessage()


def test_refusals_from_one_address_are_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="wsfast.server"):
        with running_server(origins=["https://app.example.com"]) as server:
            for _ in range(3):
                with pytest.raises(wsfast.InvalidHandshake):
                    wsfast.connect(server.url, origin="http://evil.example")
            assert wait_until(lambda: len(refusals(caplog)) == 3)
    assert [record.levelno for record in refusals(caplog)] == [logging.WARNING, logging.DEBUG, logging.DEBUG]


def test_origins_accept_a_client_that_sends_no_origin_by_default() -> None:
    with running_server(origins=["https://app.example.com"]) as server, wsfast.connect(server.url) as ws:
        ws.send("not a browser")
        assert ws.recv(timeout=TIMEOUT) == "not a browser"


def test_require_origin_refuses_a_client_that_sends_none() -> None:
    with running_server(origins=["https://app.example.com"], require_origin=True) as server:
        with pytest.raises(wsfast.InvalidHandshake) as refused:
            wsfast.connect(server.url)
        assert refused.value.status == 403


IN_A_THREAD = """
import logging, wsfast
server = wsfast.Server(port=0)
thread = server.start()
server.shutdown()
thread.join(10)
print(logging.getLogger().hasHandlers())
"""


def test_serve_forever_in_a_thread_leaves_logging_to_the_program() -> None:
    run = subprocess.run([sys.executable, "-c", IN_A_THREAD], capture_output=True, text=True, timeout=TIMEOUT)
    assert (run.returncode, run.stdout.strip(), run.stderr) == (0, "False", "")


def test_write_limit_is_fixed_for_the_servers_life() -> None:
    with running_server(write_limit=1234) as server:
        assert server.write_limit == 1234
        with pytest.raises(AttributeError):
            server.write_limit = 1  # type: ignore[misc]
