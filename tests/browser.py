"""Headless Chromium and a loopback file server for tests that open pages in a browser."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
LOOPBACK = "127.0.0.1"

# Flags that keep Chromium from contacting any host on its own. The resolver rule
# makes every host fail to resolve except 127.0.0.1, which Chromium 156 would
# otherwise map to "not found" too, although it is an address literal.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {LOOPBACK}",
]

# Milliseconds that a Playwright call waits before it fails the test.
PAGE_TIMEOUT_MS = 10_000


@dataclass
class BrowserPage:
    """A Playwright page with the problems and requests it has recorded so far.

    Attributes:
        page: The ``playwright.sync_api.Page``.
        console_errors: Text of every console message of type ``error``.
        page_errors: Every uncaught JavaScript exception, as text.
        requests: URL of every request the page made, including blocked ones.
        blocked: URLs of requests to any host other than 127.0.0.1, which the
            page aborted instead of sending.
    """

    page: Any
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    def errors(self) -> list[str]:
        """Return the console errors and uncaught exceptions together."""
        return self.console_errors + self.page_errors


def is_loopback_url(url: str) -> bool:
    """Check whether ``url`` stays on this machine: host 127.0.0.1, or a data, blob or about URL."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname == LOOPBACK


@contextmanager
def chromium() -> Iterator[Any]:
    """Start the system Chromium at ``CHROMIUM`` headless, with ``CHROMIUM_ARGS``.

    Playwright gives the browser a new temporary profile and never downloads one.
    The test is skipped when Chromium or the playwright package is missing.

    Yields:
        The ``playwright.sync_api.Browser``, closed when the block ends.
    """
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: install Chromium with `apt-get install chromium` to run browser tests.")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the playwright package is missing: install the project's test extra."
    )

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def recording_page(browser: Any) -> Iterator[BrowserPage]:
    """Open a page in a new browser context that records problems and requests.

    Every request goes through a route that aborts it unless its host is
    127.0.0.1, in addition to the resolver rule in ``CHROMIUM_ARGS``.

    Args:
        browser: A browser from ``chromium()``, which several pages can share.

    Yields:
        The page with its console errors, exceptions and requests recorded.
    """
    context = browser.new_context()
    recorded = BrowserPage(page=None)

    def route_request(route: Any) -> None:
        url = route.request.url
        if is_loopback_url(url):
            route.continue_()
        else:
            recorded.blocked.append(url)
            route.abort()

    try:
        context.route("**/*", route_request)
        page = context.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        page.on("console", lambda message: _record_console(recorded, message))
        page.on("pageerror", lambda error: recorded.page_errors.append(str(error)))
        page.on("request", lambda request: recorded.requests.append(request.url))
        recorded.page = page
        yield recorded
    finally:
        context.close()


@contextmanager
def chromium_page() -> Iterator[BrowserPage]:
    """Open one recording page in a fresh headless Chromium that can only reach 127.0.0.1.

    Yields:
        The page with its console errors, exceptions and requests recorded.
    """
    with chromium() as browser, recording_page(browser) as recorded:
        yield recorded


def _record_console(recorded: BrowserPage, message: Any) -> None:
    if message.type == "error":
        location = message.location
        recorded.console_errors.append(f"{message.text} ({location['url']}:{location['lineNumber']})")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        # Keep the test output free of one access-log line per request.
        pass


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 at a free port, in a background thread.

    Args:
        folder: The folder whose files the server returns.

    Yields:
        The base URL, ending in a slash, for example ``http://127.0.0.1:40123/``.
    """
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), handler)
    thread = threading.Thread(target=server.serve_forever, name=f"serve {folder}", daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
