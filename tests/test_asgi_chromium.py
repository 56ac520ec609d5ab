"""The FastAPI app of ``tests/fastapi_app.py`` under uvicorn with wsfast's protocol, driven by Chromium.

Chromium (``/usr/bin/chromium``, through playwright) opens the app's page and
runs the echo and a chat room of two members from the browser's own
``WebSocket``. Skipped locally without Chromium or playwright; fails when
``CI`` is set.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.adapters import require
from tests.asgi_servers import uvicorn_subprocess
from tests.test_page_chromium import chromium  # noqa: F401 - the launched browser fixture
from tests.timeouts import TIMEOUT

ECHO_AND_CHAT = """async (base) => {
    const open = (path) => new Promise((resolve, reject) => {
        const ws = new WebSocket(base + path);
        ws.binaryType = "arraybuffer";
        const messages = [];
        ws.onmessage = (event) => messages.push(event.data);
        ws.onopen = () => resolve({ws, messages});
        ws.onerror = () => reject(new Error("cannot open " + path));
    });
    const until = async (condition) => {
        while (!condition()) await new Promise((resolve) => setTimeout(resolve, 10));
    };
    const echo = await open("/echo");
    echo.ws.send("héllo");
    echo.ws.send(new Uint8Array([1, 2, 3]));
    await until(() => echo.messages.length === 2);
    const closed = new Promise((resolve) => { echo.ws.onclose = (event) => resolve(event.code); });
    echo.ws.close(1000);
    const ann = await open("/chat/browser?name=ann");
    const bob = await open("/chat/browser?name=bob");
    ann.ws.send("hi bob");
    await until(() => ann.messages.length === 1 && bob.messages.length === 1);
    ann.ws.close();
    bob.ws.close();
    return {
        echo: [echo.messages[0], Array.from(new Uint8Array(echo.messages[1]))],
        echoClose: await closed,
        chat: [ann.messages[0], bob.messages[0]],
    };
}"""


@pytest.fixture
def fastapi_port() -> Iterator[int]:
    require("fastapi")
    with uvicorn_subprocess("tests.fastapi_app:app", "--ws", "wsfast.asgi:UvicornProtocol") as port:
        yield port


def test_chromium_echo_and_chat_room(chromium: Any, fastapi_port: int) -> None:  # noqa: F811
    page = chromium.new_page()
    page.set_default_timeout(TIMEOUT * 1000)
    page.goto(f"http://127.0.0.1:{fastapi_port}/")
    result = page.evaluate(ECHO_AND_CHAT, f"ws://127.0.0.1:{fastapi_port}")
    assert result == {
        "echo": ["héllo", [1, 2, 3]],
        "echoClose": 1000,
        "chat": ["ann: hi bob", "ann: hi bob"],
    }
