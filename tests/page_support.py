"""Debian's Chromium driven by Playwright, and the page served in this process: how page tests
(and bench scripts) open the page. The ``browser`` and ``page`` fixtures are in conftest.py."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from serving import free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from engine.factory import Services

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(
    browser: Browser, url: str, *, height: int = 1000, listen: Callable[[Page], None] | None = None
) -> Page:
    """A new page (its own context) on ``url``, once the message box is there; ``listen`` hooks
    events before the page loads."""
    page = browser.new_page(viewport={"width": 1400, "height": height})
    if listen is not None:
        listen(page)
    page.goto(url)
    page.wait_for_selector("#message-box textarea")
    return page


@contextmanager
def serve_page(data_dir: Path, *, load_model: bool = True, **settings) -> Iterator[tuple[Services, str]]:
    """The page (app.ui.launch) served in this process on a free loopback port, over services
    built on ``data_dir``; yields (services, base URL)."""
    from app.ui import launch
    from engine import Settings, build

    services = build(Settings(data_dir=data_dir, **{"n_ctx": 2048, **settings}), load_model=load_model)
    port = free_port()
    server = launch(services, port=port, block=False)
    try:
        yield services, f"http://127.0.0.1:{port}"
    finally:
        server.close()
        services.close()


#: the chat's answers that show their timing line
TIMING_LINES = (
    "[...document.querySelectorAll('#hearth-chat *')]"
    ".filter(e => e.children.length === 0 && e.textContent.includes('tok/s')).length"
)


#: the chat shows no answer
EMPTY_CHAT = "document.querySelectorAll('#hearth-chat [data-testid=bot]').length === 0"


def new_chat(page: Page) -> None:
    """Start a new chat and wait until the page shows it empty: ``send`` counts the answers
    shown before it sends, and a loaded machine applies the click late. A page that shows no
    chat yet (a fresh one) is left as it is: the click's late reply could otherwise land after
    ``send`` typed, and the empty chat would not say when it had."""
    if page.evaluate(EMPTY_CHAT):
        return
    page.click("#new-chat")
    page.wait_for_function(EMPTY_CHAT, timeout=30_000)


def send(page: Page, text: str) -> None:
    """Type a message, send it, and wait for its answer's timing line."""
    before = page.evaluate(TIMING_LINES)  # counted as the wait below counts, in the chat only
    page.fill("#message-box textarea", text)
    page.click("#send")
    page.wait_for_function(
        f"document.querySelectorAll('#hearth-chat [data-testid=bot]').length > 0 && ({TIMING_LINES}) > {before}",
        timeout=120_000,
    )


def set_number(page: Page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(value)
    box.press("Enter")
    box.blur()
