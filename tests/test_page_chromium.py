"""The live page of ``wsfast serve``, driven in a real browser: what does it show?

Runs Debian's Chromium (``/usr/bin/chromium``, or ``WSFAST_CHROMIUM``)
through the ``playwright`` package against the server that ``serve`` builds,
in process on a free port. Without Chromium or playwright the test is
skipped locally, and fails when ``CI`` is set.

It saves a screenshot to ``artifacts/page.png``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import serving
from tests.timeouts import TIMEOUT

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts"
CHROMIUM = os.environ.get("WSFAST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Pixels of the chart's line: the page's --accent colour, #2563eb.
COUNT_LINE_PIXELS = """() => {
    const canvas = document.getElementById("chart");
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let count = 0;
    for (let i = 0; i < data.length; i += 4) {
        const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
        if (a > 200 && Math.abs(r - 37) < 40 && Math.abs(g - 99) < 40 && Math.abs(b - 235) < 40) count++;
    }
    return count;
}"""


def _missing(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why} (required when CI is set)")
    pytest.skip(why)


@pytest.fixture
def chromium() -> Iterator[Any]:
    """A launched Chromium browser (playwright's ``Browser``)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed")
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=TIMEOUT * 3000)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def server_port() -> Iterator[int]:
    """``wsfast serve --rate 50``: echo and feed."""
    with serving("--rate", "50") as port:
        yield port


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def assert_round_ticks(labels: list[str]) -> None:
    """Axis labels: evenly spaced by 1, 2 or 5 times a power of ten, with the decimals that step needs."""
    decimals = {len(label.partition(".")[2]) for label in labels}
    assert len(decimals) == 1, labels
    places = decimals.pop()
    units = [round(float(label) * 10**places) for label in labels]
    steps = {b - a for a, b in zip(units, units[1:], strict=False)}
    assert len(steps) == 1, labels
    (step,) = steps
    assert step > 0 and str(step).rstrip("0") in ("1", "2", "5"), labels
    assert places == 0 or step % 10 != 0, labels  # no needless trailing zero


def test_live_page(chromium: Any, server_port: int) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT * 1000)
    page = chromium.new_page(viewport={"width": 960, "height": 920})
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: message.type == "error" and problems.append(f"console: {message.text}"))
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))

    page.goto(f"http://127.0.0.1:{server_port}/")
    expect(page.locator("#state")).to_have_text("OPEN")
    expect(page.locator("#feed-state")).to_have_text("OPEN")

    # A text message comes back, and is listed.
    page.fill("#message", "hello from chromium")
    page.click("#send")
    log = page.locator("#log")
    expect(log).to_contain_text('\u2192 text "hello from chromium"')
    expect(log).to_contain_text('\u2190 text "hello from chromium"')

    # So do the 16 bytes 0..15.
    page.click("#send-binary")
    expect(log).to_contain_text("\u2190 binary 16 bytes: 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f")

    # The feed counts up and shows its last value.
    count = _number(page.inner_text("#feed-count"))
    page.wait_for_function(
        "(n) => Number(document.getElementById('feed-count').textContent.replace(/,/g, '')) >= n + 10",
        arg=count,
        timeout=TIMEOUT * 1000,
    )
    assert _number(page.inner_text("#feed-last")) > 0

    # The numbers: latency from the echoed pings, rates from the feed.
    expect(page.locator("#latency")).to_have_text(re.compile(r"^\d+\.\d\d$"))
    assert _number(page.inner_text("#latency")) < TIMEOUT * 1000
    expect(page.locator("#rate")).not_to_have_text("0")
    assert _number(page.inner_text("#rate")) > 0
    assert _number(page.inner_text("#throughput")) >= 0

    # The chart has a line, and its axis round values: 1, 2 or 5 times a power of ten apart.
    page.wait_for_function(f"({COUNT_LINE_PIXELS})() > 200", timeout=TIMEOUT * 1000)
    labels = (page.get_attribute("#chart", "data-ticks") or "").split()
    assert len(labels) >= 2, labels
    assert_round_ticks(labels)

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page.png"), full_page=True)

    # Close: a clean 1000 "bye", and the state follows.
    page.click("#close")
    expect(log).to_contain_text('echo closed: code 1000, reason "bye", wasClean true')
    expect(page.locator("#state")).to_have_text("CLOSED")
    expect(page.locator("#latency")).to_have_text("\u2013")  # no stale round trip
    expect(page.locator("#reconnect")).to_be_enabled()
    expect(page.locator("#feed-state")).to_have_text("OPEN")

    # Reconnect opens a new echo socket.
    page.click("#reconnect")
    expect(page.locator("#state")).to_have_text("OPEN")

    page.close()
    assert not problems
    assert all(url.startswith(f"http://127.0.0.1:{server_port}/") for url in requests), requests


def test_live_page_without_the_feed(chromium: Any) -> None:
    """With ``--mode echo`` the page says why the feed is closed, and echoes."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT * 1000)
    with serving("--mode", "echo") as port:
        page = chromium.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        expect(page.locator("#state")).to_have_text("OPEN")
        expect(page.locator("#feed-state")).to_have_text("CLOSED")
        expect(page.locator("#log")).to_contain_text('feed closed: code 1008, reason "no feed here')
        page.click("#send-binary")
        expect(page.locator("#log")).to_contain_text("\u2190 binary 16 bytes: 00 01 02")
        assert page.inner_text("#feed-count") == "0"
        page.close()


def test_the_page_says_when_the_servers_origin_allowlist_refuses_it(chromium: Any) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT * 1000)
    with serving("--origin", "https://app.example.com") as port:
        page = chromium.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        warning = page.locator("#origin-warning")
        expect(warning).to_be_visible()
        expect(warning).to_contain_text(f"Allow it with --origin http://127.0.0.1:{port}")
        expect(page.locator("#state")).to_have_text("CLOSED")
        page.close()
